"""`nlfs evaluate` and `nlfs data stage` through the CLI entry point (in process)."""

from __future__ import annotations

import json

import pytest

import nlfs.cli.main as cli
from nlfs.genome import Genome
from nlfs.result import ResultRecord
from nlfs.store import layout

CE = {"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}],
      "output": 1, "sign": -1}
# A valid genome that learns nothing useful: -max(y, p) (stays at chance on digits).
FLAT = {"format": "nlfs.genome/v1", "nodes": [{"op": "max", "in": ["y", "p"]}, {"op": "neg", "in": [0]}],
        "output": 1, "sign": 1}


@pytest.fixture(autouse=True)
def only_our_verbs(monkeypatch):
    # Other verb modules are written concurrently; this file tests `evaluate` and `data` only.
    monkeypatch.setattr(cli, "VERB_MODULES", ("nlfs.cli.eval_cmds",))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_cross_entropy_on_tiny_prints_summary_and_record(capsys):
    code, out, err = run(capsys, "evaluate", "--loss", "cross_entropy", "--profile", "tiny")
    assert code == 0
    record = ResultRecord.from_json(out)
    assert record.status == "ok" and record.fitness >= 0.95
    assert "epoch 10 train_acc" in err
    assert err.strip().splitlines()[-1].startswith(f"{record.genome_id} main ok fitness ")


def test_several_losses_and_a_genome_file_give_json_lines(capsys, tmp_path):
    path = tmp_path / "ce.json"
    path.write_text(json.dumps(CE))
    out_file = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "evaluate", "--loss", "cross_entropy", "--loss", str(path), "--set", "epochs=1",
                         "--seed", "5", "--out", str(out_file), "--quiet")
    assert code == 0 and out == ""
    records = [ResultRecord.from_json(line) for line in out_file.read_text().splitlines()]
    assert [r.seed for r in records] == [5, 5]
    assert records[0].genome_id == records[1].genome_id == Genome.from_json(CE).id
    assert records[0].fitness == records[1].fitness
    assert len(err.strip().splitlines()) == 2


@pytest.mark.parametrize("argv,needle", [
    (["--loss", "cross_entropy", "--set", "optimizer.lrr=1"], "unknown profile key 'optimizer.lrr'"),
    (["--loss", "cross_entropy", "--set", "dataset.name=imagenet42"], "unknown dataset 'imagenet42'"),
    (["--loss", "cross_entropy", "--set", "model.name=nope"], "unknown model 'nope'"),
    (["--loss", "cross_entropy", "--profile", "nope"], "unknown profile 'nope'"),
    (["--loss", "no_such_loss"], "unknown loss 'no_such_loss'"),
    (["--loss", "cross_entropy", "--genome", "abcdef0123456789"], "--genome needs --run"),
    (["--run", "somewhere"], "--run needs --stage"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    code, out, err = run(capsys, "evaluate", *argv)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1 and err.startswith("nlfs: error: ")


def _init_run(store, gated: bool = False) -> None:
    """A run holding the CE and FLAT genomes; `gated`: its main stage trains the tiny gate first."""
    from nlfs.evolution.config import SearchConfig, StageProfile

    stages = {"initial": StageProfile(profile="tiny-prefilter", overrides={"epochs": 1}),
              "main": StageProfile(profile="tiny", overrides={"epochs": 1})}
    if gated:
        stages["gate"] = StageProfile(profile="tiny-gate")
    config = SearchConfig(population=2, tournament=1, initial_candidates=2, budget=0, stages=stages)
    store.put(layout.config_key(), config.to_yaml().encode())
    for genome in (CE, FLAT):
        store.put(layout.genome_key(Genome.from_json(genome).id), json.dumps(genome).encode())


def test_run_mode_writes_results_create_only_and_skips_existing(capsys, store):
    _init_run(store)
    ids = [Genome.from_json(CE).id, Genome.from_json(FLAT).id]
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "initial",
                         "--genome", ids[0], "--genome", ids[1])
    assert code == 0
    records = {r.genome_id: r for r in map(ResultRecord.from_json, out.splitlines())}
    assert set(records) == set(ids)
    assert records[ids[0]].profile == "tiny-prefilter" and records[ids[0]].stage == "initial"
    assert len(records[ids[0]].epochs) == 1  # the config's override reached the profile
    assert records[ids[1]].status == "rejected"
    assert f"genome {ids[0]} epoch 1 train_acc" in err
    stored = ResultRecord.from_json(store.get(layout.result_key("initial", ids[0])).data)
    assert stored.fitness == records[ids[0]].fitness
    # A retried pod: nothing trains again, nothing is overwritten.
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "initial", "--genome", ids[0])
    assert code == 0 and out == "" and "skipped" in err
    assert ResultRecord.from_json(store.get(layout.result_key("initial", ids[0])).data).created == stored.created


def test_run_mode_profile_flag_overrides_the_config(capsys, tmp_path):
    from nlfs.store import open_store

    store = open_store(str(tmp_path / "run"))
    _init_run(store)
    gid = Genome.from_json(CE).id
    code, out, _ = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", gid,
                       "--profile", "tiny-prefilter", "--set", "epochs=1", "--quiet")
    assert code == 0 and ResultRecord.from_json(out).profile == "tiny-prefilter"


def test_run_mode_unknown_genome_or_stage_exits_2(capsys, tmp_path):
    from nlfs.store import open_store

    store = open_store(str(tmp_path / "run"))
    _init_run(store)
    code, _, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", "0123456789abcdef")
    assert code == 2 and "no genome 0123456789abcdef" in err
    code, _, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "other", "--genome", Genome.from_json(CE).id)
    assert code == 2 and "stage 'other'" in err
    code, _, err = run(capsys, "evaluate", "--run", str(tmp_path / "empty"), "--stage", "main", "--genome",
                       Genome.from_json(CE).id)
    assert code == 2 and "config.yaml" in err


def test_run_mode_checks_every_genome_before_training_any(capsys, tmp_path):
    from nlfs.store import open_store

    store = open_store(str(tmp_path / "run"))
    _init_run(store)
    broken_id = "00000000deadbeef"
    store.put(layout.genome_key(broken_id), b'{"format": "nlfs.genome/v1", "nodes": [')
    good = Genome.from_json(CE).id
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", good,
                         "--genome", broken_id)
    assert code == 2 and out == "" and broken_id in err and len(err.strip().splitlines()) == 1
    assert not store.exists(layout.result_key("main", good))


def test_the_main_stage_of_a_gated_run_trains_the_gate_first_and_only_passers_further(capsys, store):
    _init_run(store, gated=True)
    ce, flat = Genome.from_json(CE).id, Genome.from_json(FLAT).id
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", ce, "--genome", flat)
    assert code == 0
    records = {r.genome_id: r for r in map(ResultRecord.from_json, out.splitlines())}
    gate = {g: ResultRecord.from_json(store.get(layout.result_key("gate", g)).data) for g in (ce, flat)}
    assert gate[ce].status == "ok" and gate[ce].profile == "tiny-gate" and len(gate[ce].epochs) == 2
    assert records[ce].status == "ok" and records[ce].profile == "tiny" and len(records[ce].epochs) == 1
    assert gate[flat].status == "rejected"
    assert records[flat].status == "gate_failed" and records[flat].fitness is None and not records[flat].epochs
    assert "gate (tiny-gate) rejected" in records[flat].reason
    assert f"genome {flat} gate rejected" in err


def test_a_retried_pod_reuses_the_stored_gate_result(capsys, store):
    _init_run(store, gated=True)
    ce = Genome.from_json(CE).id
    run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", ce)
    gate_before = store.get(layout.result_key("gate", ce)).data
    store.delete(layout.result_key("main", ce))  # the pod died after its gate, before its main result
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", ce)
    assert code == 0 and ResultRecord.from_json(out).status == "ok"
    assert store.get(layout.result_key("gate", ce)).data == gate_before
    assert "epoch 1 train_acc" in err and err.count("train_acc") == 1  # only the main run trained


def test_a_genome_file_that_does_not_match_its_id_is_never_trained(capsys, store):
    _init_run(store)
    ce, flat = Genome.from_json(CE).id, Genome.from_json(FLAT).id
    store.put(layout.genome_key(flat), json.dumps(CE).encode())  # a planted file under FLAT's id
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", flat)
    assert code == 2 and out == "" and "corrupt" in err and len(err.strip().splitlines()) == 1
    assert not store.exists(layout.result_key("main", flat))


def test_a_result_key_that_can_be_neither_read_nor_created_is_an_error_not_a_silent_success(capsys, tmp_path):
    from nlfs.store import open_store

    store = open_store(str(tmp_path / "run"))
    _init_run(store)
    ce = Genome.from_json(CE).id
    (tmp_path / "run" / "results" / "main" / f"{ce}.json").mkdir(parents=True)  # a directory at the key
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", ce, "--quiet")
    assert code == 2 and "can be neither created nor read" in err and len(err.strip().splitlines()) == 1


def test_cohort_flag_trains_the_genomes_of_a_gated_run_together(capsys, store):
    _init_run(store, gated=True)
    ce, flat = Genome.from_json(CE).id, Genome.from_json(FLAT).id
    code, out, err = run(capsys, "evaluate", "--run", store.uri, "--stage", "main", "--genome", ce, "--genome", flat,
                         "--cohort", "2")
    assert code == 0
    records = {r.genome_id: r for r in map(ResultRecord.from_json, out.splitlines())}
    assert records[ce].status == "ok" and len(records[ce].epochs) == 1
    assert records[flat].status == "gate_failed"
    assert ResultRecord.from_json(store.get(layout.result_key("gate", flat)).data).status == "rejected"
    # one cohort: both gates' first epochs before either gate's second
    lines = [line.split()[1] + ":" + line.split()[3] for line in err.splitlines() if " epoch " in line]
    assert lines[:4] == [f"{ce}:1", f"{flat}:1", f"{ce}:2", f"{flat}:2"]


@pytest.mark.parametrize("argv,needle", [
    (["--run", "r", "--stage", "main", "--genome", "g", "--cohort", "0"], "--cohort: must be at least 1, got 0"),
    (["--run", "r", "--stage", "main", "--genome", "g", "--cohort", "many"], "--cohort: not an integer: 'many'"),
    (["--loss", "cross_entropy", "--cohort", "2"], "--cohort goes with --run"),
])
def test_a_bad_cohort_is_a_one_line_error(capsys, argv, needle):
    try:
        code = cli.main(["evaluate", *argv])
    except SystemExit as exit_:  # argparse's own exit, one line through nlfs's parser
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1
