"""Contract tests: the `nlfs` command lines inside the WorkflowTemplates, run for real.

argo_sim runs the templates as Argo would (parameters substituted, withParam fan-out over the
controller's items.json, `done` steering next/continuation/finalize, recursion bounded by
generations-per-workflow), each pod a local process against a directory store. Against
fake_nlfs.py (the CLI contract, exactly) they prove the templates' plumbing; against the real
`nlfs` they prove the CLI still honours the contract: a template and the CLI cannot drift apart.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argo_docs import schema_errors
from argo_sim import DELETED, EVICTED, NODE_SHUTDOWN, OOM_KILLED, ArgoSim, Fault, SimError, evaluate, pod_path
from fake_nlfs import _gid

from nlfs.argo import chain

FAKE = Path(__file__).with_name("fake_nlfs.py")
VENV_BIN = Path(sys.executable).parent
# Test credentials: they must reach pods only as env from the Secret and show up in no output.
SECRETS = {"nlfs-s3": {"AWS_ACCESS_KEY_ID": "AKIAZZZZSIMULATED000",
                       "AWS_SECRET_ACCESS_KEY": "sim-secret-4b1d9e7f0c2a"}}


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory whose `nlfs` is fake_nlfs.py."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nlfs"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def _sim(templates, tmp_path: Path, bin_dir: Path, log: Path | None = None, **env: str) -> ArgoSim:
    (tmp_path / "home").mkdir(exist_ok=True)
    if log:
        env["FAKE_NLFS_LOG"] = str(log)
    if os.environ.get("PYTHONPATH"):  # a checkout run without installing it: pods import it too
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return ArgoSim(templates, path=pod_path(bin_dir), secrets=SECRETS, workdir=tmp_path, base_env=env)


def _calls(log: Path, verb: str) -> list[list[str]]:
    return [a for a in map(json.loads, log.read_text().splitlines()) if a[0] == verb]


def _assert_no_credentials(result) -> None:
    texts = [json.dumps(result.created)]
    texts += [e.stdout + e.stderr + json.dumps(e.outputs) + " ".join(e.argv) for e in result.executions]
    for secret in SECRETS["nlfs-s3"].values():
        assert not any(secret in t for t in texts), "a credential leaked into argv, logs or outputs"


def _assert_items_contract(items_text: str, workers: int, per_pod: int) -> list[dict]:
    items = json.loads(items_text)
    assert isinstance(items, list)
    for item in items:
        assert {"run", "batch", "stage", "genomes"} <= set(item), item
        assert isinstance(item["batch"], int) and isinstance(item["stage"], str)
        assert 1 <= len(item["genomes"]) <= per_pod
    assert sum(len(i["genomes"]) for i in items) <= workers
    return items


def test_search_fans_out_bounds_generations_and_hands_over(templates, tmp_path, fake_bin):
    log, run = tmp_path / "calls.jsonl", tmp_path / "run"
    sim = _sim(templates, tmp_path, fake_bin, log)
    args = {"run": str(run), "config": "fake", "parallelism": "2", "genomes-per-pod": "2",
            "generations-per-workflow": "2", "profile": "main-p", "initial-profile": "initial-p",
            "profile-set": '["epochs=1"]'}
    first = sim.run("nlfs-search", args)

    assert len(first.ran("init")) == 1
    assert len(first.ran("controller-step")) == 2  # the bound: 2 generations, no finalize
    assert [len(items) for _, items in first.fan_outs] == [1, 1]
    for execution in first.ran("controller-step"):
        assert execution.outputs["outputs.parameters.done"] in ("true", "false")
        _assert_items_contract(execution.outputs["outputs.parameters.items"], 2, 2)
    evaluations = _calls(log, "evaluate")
    assert [c[c.index("--stage") + 1] for c in evaluations] == ["initial", "main"]
    assert [c[c.index("--profile") + 1] for c in evaluations] == ["initial-p", "main-p"]
    assert all(c[c.index("--set") + 1] == "epochs=1" and c.count("--genome") == 2 for c in evaluations)
    assert len(list(run.glob("results/*/*.json"))) == 4

    # Not done after the bound: exactly one continuation, a valid Workflow with the same parameters.
    (continuation,) = first.created
    assert schema_errors(continuation) == []
    assert continuation["spec"]["workflowTemplateRef"] == {"name": "nlfs-search"}
    entry = continuation["spec"]["entrypoint"]
    assert entry in {t["name"] for t in templates["nlfs-search"]["spec"]["templates"]}
    carried = {p["name"]: p["value"] for p in continuation["spec"]["arguments"]["parameters"]}
    assert {k: carried[k] for k in args} == args

    # The continuation resumes the same run without init, finishes the budget and folds it in.
    second = sim.run("nlfs-search", carried, entrypoint=entry)
    assert second.ran("init") == [] and second.created == []
    assert len(second.ran("controller-step")) == 2  # one generation + finalize
    assert json.loads(second.ran("controller-step")[-1].outputs["outputs.parameters.items"]) == []
    assert len(list(run.glob("results/*/*.json"))) == 6
    _assert_no_credentials(first)
    _assert_no_credentials(second)


def test_search_skips_init_for_an_initialised_run(templates, tmp_path, fake_bin):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("custom")
    result = _sim(templates, tmp_path, fake_bin).run(
        "nlfs-search", {"run": str(run), "config": "", "parallelism": "1", "generations-per-workflow": "1"})
    assert result.ran("init") == [] and "init" in result.skipped


def test_done_must_read_exactly_false_to_go_on():
    go_on = "'{done}' == 'false' && {remaining} > 1"
    assert evaluate(go_on.format(done="false", remaining=2)) is True
    assert evaluate(go_on.format(done="false\n", remaining=2)) is False  # stops, never loops
    assert evaluate(go_on.format(done="false", remaining=1)) is False
    assert evaluate("{{=asInt(x) - 1}}".strip("{}=").replace("x", "'4'")) == 3


def test_evaluate_template_runs_one_genome_or_one_named_loss(templates, tmp_path, fake_bin):
    log, run = tmp_path / "calls.jsonl", tmp_path / "run"
    sim = _sim(templates, tmp_path, fake_bin, log)
    sim.run("nlfs-evaluate", {"run": str(run), "stage": "main", "genome": "0123456789abcdef",
                              "profile": "surrogate"})
    assert (run / "results" / "main" / "0123456789abcdef.json").exists()
    result = sim.run("nlfs-evaluate", {"loss": "cross_entropy", "profile": "tiny"})
    assert json.loads(result.ran("evaluate-item")[0].stdout)["loss"] == "cross_entropy"
    assert _calls(log, "evaluate")[-1] == ["evaluate", "--loss", "cross_entropy", "--profile", "tiny"]


def test_evaluate_template_rejects_a_run_without_genome_once_with_its_reason(templates, tmp_path, fake_bin):
    result = _sim(templates, tmp_path, fake_bin).run("nlfs-evaluate", {"run": str(tmp_path / "r"), "genome": ""})
    assert result.phase == "Failed"
    (attempt,) = result.attempts("evaluate-item")  # exit 2 is deterministic: never retried
    assert attempt.exit_code == "2" and attempt.message.startswith("main: Error (exit code 2): nlfs-evaluate: error:")
    assert result.message.startswith("child '")  # Argo's own words for a failed steps Workflow
    assert chain.summarize(result.workflow())["message"] == attempt.message


def test_the_simulator_refuses_a_container_without_command_as_the_controller_does(templates, tmp_path, fake_bin):
    """Without `command` Argo's emissary must look the image's entrypoint up in its registry."""
    docs = copy.deepcopy(templates)
    init = next(t for t in docs["nlfs-search"]["spec"]["templates"] if t["name"] == "init")
    del init["container"]["command"]
    with pytest.raises(SimError, match="failed to look-up entrypoint/cmd for image"):
        _sim(docs, tmp_path, fake_bin).run("nlfs-search", {"run": str(tmp_path / "run"), "config": "c"})


def test_output_parameters_lose_one_trailing_newline_as_argo_trims_them(templates, tmp_path, fake_bin):
    run = tmp_path / "run"
    result = _sim(templates, tmp_path, fake_bin).run(
        "nlfs-search", {"run": str(run), "config": "c", "parallelism": "2", "generations-per-workflow": "2"})
    assert (run / "state.json").exists()
    dones = [e.outputs["outputs.parameters.done"] for e in result.ran("controller-step")]
    assert dones[0] == "false"  # the fake writes "false\n", as `echo` would
    assert len(result.ran("controller-step")) == 2  # so the loop went on


def _search_args(run: Path, **extra: str) -> dict[str, str]:
    return {"run": str(run), "config": "fake", "parallelism": "4", "genomes-per-pod": "1",
            "generations-per-workflow": "6", **extra}


def test_search_retries_evicted_oom_killed_and_deleted_pods_not_a_failing_loss_and_completes(
        templates, tmp_path, fake_bin):
    """Issue 11, done 2: three infrastructure faults mid-training are retried (with backoff), a
    loss that fails deterministically is not, and the search finishes with every result."""
    run = tmp_path / "run"
    # The fake's children in order: a failed loss is re-mutated, so 6 evaluations take 7 children.
    genomes = [_gid(run, i) for i in range(7)]
    sim = _sim(templates, tmp_path, fake_bin, FAKE_NLFS_FAILING_LOSSES=genomes[3])
    sim.inject("evaluate-item", genomes[0], EVICTED)
    sim.inject("evaluate-item", genomes[1], OOM_KILLED)
    sim.inject("evaluate-item", genomes[2], DELETED)
    sim.inject("evaluate-item", genomes[4], NODE_SHUTDOWN)
    result = sim.run("nlfs-search", _search_args(run))

    assert result.phase == "Succeeded", result.message
    ran = {g: sum(g in e.env["NLFS_ITEM"] for e in result.ran("evaluate-item")) for g in genomes}
    assert [ran[g] for g in genomes] == [1] * 7  # each trained to the end exactly once
    failed_attempts = [n for n in result.attempts("evaluate-item") if n.phase != "Succeeded"]
    assert [(n.phase, n.exit_code) for n in failed_attempts] == [
        ("Failed", "137"), ("Failed", "137"), ("Error", "-1"), ("Failed", "143")]
    assert all(n.name.endswith("(0)") for n in failed_attempts)  # first attempts, then a retry
    assert len(result.attempts("evaluate-item")) == 7 + 4
    assert [wait for _, wait in result.backoffs] == [120.0] * 4  # 2m, the first retry's wait
    records = {g: json.loads((run / "results" / ("initial" if i < 4 else "main") / f"{g}.json").read_text())
               for i, g in enumerate(genomes)}
    assert [records[g]["status"] for g in genomes] == ["ok", "ok", "ok", "failed", "ok", "ok", "ok"]
    assert len(result.ran("controller-step")) == 3  # two generations and the finalize


def test_a_crashing_evaluation_is_not_retried_and_the_search_goes_on_within_the_budget(
        templates, tmp_path, fake_bin):
    """Exit 1 (a bug) is deterministic: the pod is not retried, its step continues, the controller
    hands the genome out again and, after a second hand-out, records it as a failed evaluation."""
    run = tmp_path / "run"
    bad = _gid(run, 0)
    sim = _sim(templates, tmp_path, fake_bin, FAKE_NLFS_CRASH=bad)
    result = sim.run("nlfs-search", _search_args(run, **{"max-failed-evaluations": "1"}))
    assert result.phase == "Succeeded", result.message
    crashed = [n for n in result.attempts("evaluate-item") if n.phase == "Failed"]
    assert len(crashed) == 2 and all(n.exit_code == "1" and n.name.endswith("(0)") for n in crashed)
    record = json.loads((run / "results" / "initial" / f"{bad}.json").read_text())
    assert record["status"] == "failed"
    assert len(list(run.glob("results/*/*.json"))) == 7  # 6 children and the failed one


def test_past_the_failure_budget_the_search_stops_with_a_one_line_reason(templates, tmp_path, fake_bin):
    """Issue 11, done 2: the reason is the Workflow's own message, not Argo's "child ... failed"."""
    run = tmp_path / "run"
    crash = ",".join(_gid(run, i) for i in range(12))
    sim = _sim(templates, tmp_path, fake_bin, FAKE_NLFS_CRASH=crash)
    result = sim.run("nlfs-search", _search_args(run, **{"max-failed-evaluations": "2"}))

    assert result.phase == "Failed"
    assert result.message.startswith("main: Error (exit code 2): nlfs: error: failure budget exhausted:")
    assert "\n" not in result.message and "more than --max-failed-evaluations 2" in result.message
    last_step = result.ran("controller-step")[-1]
    assert last_step.returncode == 0 and last_step.outputs["outputs.parameters.done"] == "stopped"
    assert "finalize" in result.skipped  # a stopped search folds nothing more
    (check,) = result.attempts("report-stop")
    assert check.phase == "Failed" and check.exit_code == "2"  # exit 2 is Failed: not retried
    assert chain.summarize(result.workflow())["message"] == result.message
    assert result.created == []  # no continuation of a stopped search


def test_the_exit_handler_passes_a_search_that_did_not_stop_and_keeps_a_failed_ones_message(
        templates, tmp_path, fake_bin):
    run = tmp_path / "run"
    ok = _sim(templates, tmp_path, fake_bin).run("nlfs-search", _search_args(run))
    assert (ok.phase, ok.message) == ("Succeeded", "")
    assert [n.phase for n in ok.attempts("report-stop")] == ["Succeeded"]

    # A run that was never initialised: the controller step fails, and so does the handler, but a
    # Workflow whose steps failed keeps their message, as Argo words it.
    bad = _sim(templates, tmp_path, fake_bin).run("nlfs-search", _search_args(tmp_path / "r2", config=""))
    assert bad.phase == "Failed" and bad.message.startswith("child '")
    assert [n.exit_code for n in bad.attempts("report-stop")] == ["2"]


def test_a_deleted_exit_handler_pod_is_retried_and_still_reports_the_stop(templates, tmp_path, fake_bin):
    run = tmp_path / "run"
    crash = ",".join(_gid(run, i) for i in range(12))
    sim = _sim(templates, tmp_path, fake_bin, FAKE_NLFS_CRASH=crash)
    sim.inject("report-stop", "check", DELETED)
    result = sim.run("nlfs-search", _search_args(run, **{"max-failed-evaluations": "2"}))
    assert [n.phase for n in result.attempts("report-stop")] == ["Error", "Failed"]
    assert "failure budget exhausted" in result.message


def test_max_duration_would_have_stopped_the_retry_of_a_long_training(templates, tmp_path, fake_bin):
    """The old evaluate retryStrategy (maxDuration 30m from the first attempt's start) never
    retried a pod that ran longer; the current one does."""
    old = copy.deepcopy(templates)
    item = next(t for t in old["nlfs-evaluate"]["spec"]["templates"] if t["name"] == "evaluate-item")
    item["retryStrategy"] = {"limit": "3", "retryPolicy": "OnError",
                             "backoff": {"duration": "1m", "factor": "2", "maxDuration": "30m"}}
    args = {"run": str(tmp_path / "run"), "stage": "main", "genome": "0123456789abcdef"}
    for docs, attempts in ((old, 1), (templates, 2)):
        sim = _sim(docs, tmp_path, fake_bin)
        sim.inject("evaluate-item", "0123456789abcdef", Fault("Failed", "137", "main: OOMKilled (exit code 137)",
                                                              seconds=2 * 3600))
        result = sim.run("nlfs-evaluate", args)
        assert len(result.attempts("evaluate-item")) == attempts


def test_a_retried_continuation_step_starts_no_second_chain(templates, tmp_path, fake_bin):
    """The step created the next Workflow, then its pod was lost: the retry applies the same name."""
    run = tmp_path / "run"
    sim = _sim(templates, tmp_path, fake_bin)
    sim.inject("submit-continuation", "nlfs-search", Fault("Error", "-1", "pod deleted", after=True))
    result = sim.run("nlfs-search", _search_args(run, **{"generations-per-workflow": "1"}))
    assert result.phase == "Succeeded", result.message
    assert [n.phase for n in result.attempts("submit-continuation")] == ["Error", "Succeeded"]
    assert len(result.created) == 1 and len(sim.objects) == 1


def test_workflow_parameters_json_has_argos_shape_and_carries_every_value(templates, tmp_path, fake_bin):
    run = tmp_path / "run"
    args = _search_args(run, **{"generations-per-workflow": "1", "profile-set": '["note=a<b&c"]'})
    first = _sim(templates, tmp_path, fake_bin).run("nlfs-search", args)
    (continuation,) = first.created
    params = continuation["spec"]["arguments"]["parameters"]
    declared = templates["nlfs-search"]["spec"]["arguments"]["parameters"]
    assert [p["name"] for p in params] == [p["name"] for p in declared]  # all of them, in order
    assert all(p.get("description") == d.get("description") for p, d in zip(params, declared))
    assert {p["name"]: p["value"] for p in params}["profile-set"] == '["note=a<b&c"]'
    assert schema_errors(continuation) == []


def test_transfer_rounds_fan_out_planned_items_with_their_profiles(templates, tmp_path, fake_bin):
    log, run = tmp_path / "calls.jsonl", tmp_path / "run"
    sim = _sim(templates, tmp_path, fake_bin, log)
    args = {"run": str(run), "parallelism": "3", "genomes-per-pod": "1", "rounds-per-workflow": "1"}
    first = sim.run("nlfs-transfer", args)
    assert [len(items) for _, items in first.fan_outs] == [3]
    assert all(c[c.index("--profile") + 1] == "large-1" and "epochs=1" in c for c in _calls(log, "evaluate"))
    (continuation,) = first.created
    assert schema_errors(continuation) == []
    carried = {p["name"]: p["value"] for p in continuation["spec"]["arguments"]["parameters"]}
    second = sim.run("nlfs-transfer", carried, entrypoint=continuation["spec"]["entrypoint"])
    assert second.created == [] and len(second.ran("plan")) == 2  # last round + finalize
    _assert_no_credentials(first)


# --- the real CLI ------------------------------------------------------------------------------


def _real_cli(*verb: str) -> None:
    """Fail unless the installed `nlfs` has the verb the templates call."""
    nlfs = VENV_BIN / "nlfs"
    assert nlfs.exists(), "nlfs is not installed in .venv: `make test` installs it"
    proc = subprocess.run([str(nlfs), *verb, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"`nlfs {' '.join(verb)}` is missing: {proc.stderr.strip()}"


def test_real_cli_runs_a_search_generation_as_the_template_says(templates, tmp_path):
    for verb in (("init",), ("controller", "step"), ("evaluate",)):
        _real_cli(*verb)
    run = tmp_path / "run"
    sim = _sim(templates, tmp_path, VENV_BIN)
    args = {"run": str(run), "config": "default", "parallelism": "2", "genomes-per-pod": "2",
            "generations-per-workflow": "1", "profile-set": '["epochs=1"]'}
    try:
        result = sim.run("nlfs-search", args)
    except SimError as err:
        pytest.fail(f"the real CLI broke the template contract: {err}")
    failed = [n.message for n in result.nodes if n.phase != "Succeeded"]
    assert result.phase == "Succeeded", f"the real CLI broke the template contract: {failed}"
    (step, *finalize) = result.ran("controller-step")
    items = _assert_items_contract(step.outputs["outputs.parameters.items"], 2, 2)
    assert json.loads(step.stdout) == items, "stdout must be exactly the items list"
    done = step.outputs["outputs.parameters.done"]
    assert done in ("true", "false"), f"done must read exactly true or false, got {done!r}"
    for item in items:
        for genome in item["genomes"]:
            assert (run / "results" / item["stage"] / f"{genome}.json").exists()
    if done == "false":
        (continuation,) = result.created
        assert schema_errors(continuation) == []
    _assert_no_credentials(result)

    # init is idempotent with the same config and refuses another one.
    nlfs = str(VENV_BIN / "nlfs")
    again = subprocess.run([nlfs, "init", str(run), "--config", "default"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    other = subprocess.run([nlfs, "init", str(run), "--config", "paper"], capture_output=True, text=True)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1


def test_real_cli_plans_transfer_rounds_as_the_template_says(templates, tmp_path):
    _real_cli("transfer")
    help_text = subprocess.run([str(VENV_BIN / "nlfs"), "transfer", "--help"], capture_output=True,
                               text=True).stdout
    assert "--plan" in help_text, "`nlfs transfer --plan` is the planner nlfs-transfer runs"
    # A finished search written directly (tests/transfer/runkit.py: no search training), a tiny
    # protocol stored in it (the template takes none), then the real planner and real evaluate pods.
    sys.path.insert(0, str(Path(__file__).parent.parent / "transfer"))
    from runkit import synthetic_search, tiny_protocol

    from nlfs.notebook import open_run
    from nlfs.transfer.plan import ensure_protocol

    run = tmp_path / "run"
    synthetic_search(open_run(str(run)), evaluations=6, top=2)
    ensure_protocol(open_run(str(run)), tiny_protocol(**{
        "elimination.candidates": "2", "elimination.phases": "[{profile: tiny, set: {epochs: 1}, survivors: 1}]",
        "elimination.references": "[]", "transfer.seeds": "[0]"}))
    sim = _sim(templates, tmp_path, VENV_BIN)
    args = {"run": str(run), "parallelism": "2", "genomes-per-pod": "2", "rounds-per-workflow": "2"}
    try:
        first = sim.run("nlfs-transfer", args)
        assert first.phase == "Succeeded", [n.message for n in first.nodes if n.phase != "Succeeded"]
        (continuation,) = first.created  # 2 rounds (phase 1, then 2 of the 3 grid units): not done
        assert schema_errors(continuation) == []
        carried = {p["name"]: p["value"] for p in continuation["spec"]["arguments"]["parameters"]}
        second = sim.run("nlfs-transfer", carried, entrypoint=continuation["spec"]["entrypoint"])
        assert second.phase == "Succeeded", [n.message for n in second.nodes if n.phase != "Succeeded"]
    except SimError as err:
        pytest.fail(f"the real CLI broke the template contract: {err}")
    plans = first.ran("plan") + second.ran("plan")
    for execution in plans:
        items = _assert_items_contract(execution.outputs["outputs.parameters.items"], 2, 2)
        assert json.loads(execution.stdout) == items, "stdout must be exactly the items list"
        assert execution.outputs["outputs.parameters.done"] in ("true", "false")
        for item in items:
            assert item["profile"] == "tiny" and "epochs=1" in item["set"]
    assert [p.outputs["outputs.parameters.done"] for p in plans] == ["false", "false", "false", "true", "true"]
    assert second.created == []  # the last round, then finalize: no further continuation
    pods = first.ran("evaluate-item") + second.ran("evaluate-item")
    assert len(pods) == 3  # phase 1 (2 genomes in one pod), then the grid's 3 units as 2 + 1
    table = open_run(str(run)).transfer_table()
    assert table is not None and [loss.name for loss in table.losses][-2:] == ["cross_entropy", "baikal"]
    assert all(e.n + e.failures == 1 for e in table.entries)
    _assert_no_credentials(first)
    _assert_no_credentials(second)


def test_pods_see_no_credential_outside_the_secret_env(templates, tmp_path, fake_bin):
    """The only env a pod gets from the Secret is the S3 variables, by secretKeyRef."""
    result = _sim(templates, tmp_path, fake_bin).run(
        "nlfs-evaluate", {"loss": "cross_entropy", "profile": "tiny"})
    env = result.executions[0].env
    assert env["AWS_ACCESS_KEY_ID"] == SECRETS["nlfs-s3"]["AWS_ACCESS_KEY_ID"]
    from_secret = {k for k, v in env.items() if v in SECRETS["nlfs-s3"].values()}
    assert from_secret == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert os.environ.get("AWS_SECRET_ACCESS_KEY", "\0") not in env.values()
