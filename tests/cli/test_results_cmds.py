"""The verbs of nlfs/cli/results_cmds.py: the planner's output contract and one-line user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "transfer"))  # runkit

from nlfs.cli.main import main  # noqa: E402
from nlfs.runs import open_run  # noqa: E402
from nlfs.transfer.plan import plan  # noqa: E402
from runkit import TINY_PROTOCOL, finish_units, synthetic_search  # noqa: E402


@pytest.fixture
def run_uri(tmp_path) -> str:
    uri = str(tmp_path / "run")
    synthetic_search(open_run(uri), evaluations=12, top=4)
    return uri


@pytest.fixture
def protocol_file(tmp_path) -> str:
    path = tmp_path / "protocol.yaml"
    path.write_text(TINY_PROTOCOL)
    return str(path)


def test_plan_prints_items_and_writes_items_json_and_done(run_uri, protocol_file, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "nlfs.cli.main", "transfer", run_uri, "--protocol", protocol_file,
                           "--plan", "--workers", "3", "--genomes-per-item", "2", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert json.loads((out / "items.json").read_text()) == items
    assert (out / "done").read_bytes() == b"false"
    assert sum(len(i["genomes"]) for i in items) == 3 and all(len(i["genomes"]) <= 2 for i in items)
    assert all(set(i) == {"run", "batch", "stage", "genomes", "profile", "set"} for i in items)
    assert "nlfs.transfer" in proc.stderr  # logs go to stderr, never stdout


def test_plan_says_done_exactly_once_everything_is_folded(run_uri, protocol_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["transfer", run_uri, "--plan", "--output-dir", str(out), "--quiet"]
    assert main([*args, "--protocol", protocol_file]) == 0
    run = open_run(run_uri)
    for _ in range(6):
        p = plan(run)
        finish_units(run, p.units, lambda u: 0.5)
    assert main(args) == 0
    assert (out / "done").read_bytes() == b"true"
    assert json.loads((out / "items.json").read_text()) == []


def test_eliminate_plan_is_done_when_the_phases_are(run_uri, protocol_file, tmp_path):
    out = tmp_path / "out"
    args = ["eliminate", run_uri, "--plan", "--output-dir", str(out), "--quiet"]
    assert main([*args, "--protocol", protocol_file]) == 0
    run = open_run(run_uri)
    for _ in range(3):
        finish_units(run, plan(run, until="elimination").units, lambda u: 0.5)
    assert main(args) == 0 and (out / "done").read_bytes() == b"true"


@pytest.mark.parametrize("argv,message", [
    (["results", "{missing}"], "no search here"),
    (["report", "{missing}"], "no search here"),
    (["transfer", "{run}", "--set", "elimination.bogus=1", "--plan"], "unknown protocol key"),
    (["eliminate", "{run}", "--protocol", "{missing}/p.yaml"], "cannot read"),
    (["transfer", "{run}", "--output-dir", "x"], "go with --plan"),
    (["export", "0123456789abcdef", "--run", "{run}"], "no genome"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, run_uri, tmp_path, capsys):
    argv = [a.format(run=run_uri, missing=str(tmp_path / "missing")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nlfs: error:") and message in err and "\n" not in err


@pytest.mark.parametrize("verb", ["results", "report", "eliminate", "transfer", "export"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0 and verb in capsys.readouterr().out


def test_results_formats(run_uri, capsys):
    assert main(["results", run_uri, "--top", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "rank,id,fitness,vs_baseline,stage,runs,statuses,loss" and len(lines) == 3
    assert main(["results", run_uri, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["top"]) == 4
    assert main(["results", run_uri]) == 0
    assert "failures by status: rejected" in capsys.readouterr().out
