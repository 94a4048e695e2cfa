"""Contract tests: the `nlfs` command lines inside the WorkflowTemplates, run for real.

argo_sim runs the templates as Argo would (parameters substituted, withParam fan-out over the
controller's items.json, `done` steering next/continuation/finalize, recursion bounded by
generations-per-workflow), each pod a local process against a directory store. Against
fake_nlfs.py (the CLI contract, exactly) they prove the templates' plumbing; against the real
`nlfs` they prove the CLI still honours the contract: a template and the CLI cannot drift apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argo_docs import schema_errors
from argo_sim import ArgoSim, SimError, evaluate, pod_path

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


def _sim(templates, tmp_path: Path, bin_dir: Path, log: Path | None = None) -> ArgoSim:
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {"FAKE_NLFS_LOG": str(log)} if log else {}
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


def test_evaluate_template_rejects_a_run_without_genome(templates, tmp_path, fake_bin):
    with pytest.raises(SimError, match="exited 2"):
        _sim(templates, tmp_path, fake_bin).run("nlfs-evaluate", {"run": str(tmp_path / "r"), "genome": ""})


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

    from nlfs.runs import open_run
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
        (continuation,) = first.created  # 2 rounds (phase 1, then 2 of the 3 grid units): not done
        assert schema_errors(continuation) == []
        carried = {p["name"]: p["value"] for p in continuation["spec"]["arguments"]["parameters"]}
        second = sim.run("nlfs-transfer", carried, entrypoint=continuation["spec"]["entrypoint"])
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
