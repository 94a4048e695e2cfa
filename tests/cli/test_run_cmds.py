"""`nlfs init`, `nlfs controller step|check`, `nlfs search` at the command line: output and bad input.

Bad input is one line on stderr and exit code 2, and leaves what is stored as it was.
"""

import json
import socket
import subprocess
import sys

import pytest

from nlfs.runs import open_run
from nlfs.store import layout
from searchkit import fast_config


def nlfs(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nlfs.cli.main", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def _one_line_error(done, fragment):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nlfs: error:"), done.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in done.stderr


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(fast_config().to_yaml())
    return str(path)


def _snapshot(run_uri):
    store = open_run(run_uri).store
    return {k: store.get(k).data for k in store.list()}


def test_init_then_step_prints_work_items_as_json_and_writes_argo_outputs(tmp_path, config_file):
    run = str(tmp_path / "run")
    assert nlfs("init", run, "--config", config_file).returncode == 0
    out_dir = tmp_path / "out"
    done = nlfs("controller", "step", run, "--genomes-per-item", "2", "--output-dir", str(out_dir))
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)  # stdout is the JSON list and nothing else
    assert [len(i["genomes"]) for i in items] == [2, 1]
    assert json.loads((out_dir / "items.json").read_text()) == items
    assert (out_dir / "done").read_text() == "false"
    assert "phase initial" in done.stderr


def test_past_the_failure_budget_step_exits_2_or_writes_stopped_and_check_gives_the_reason(tmp_path, config_file):
    """The Argo template's three parts: the step with --stop-as-output ends the steps quietly, and
    the exit handler (`controller check`) fails the Workflow with the reason."""
    run, out_dir = str(tmp_path / "run"), tmp_path / "out"
    assert nlfs("init", run, "--config", config_file).returncode == 0
    assert nlfs("controller", "check", run, "--max-failed-evaluations", "0").returncode == 0  # not started
    for _ in range(2):  # two hand-outs, and no evaluation ever reports
        assert nlfs("controller", "step", run, "--max-failed-evaluations", "0").returncode == 0
    stopped = nlfs("controller", "step", run, "--max-failed-evaluations", "0")  # logs what it records, then stops
    assert stopped.returncode == 2
    assert stopped.stderr.strip().splitlines()[-1].startswith("nlfs: error: failure budget exhausted: 3 evaluations")
    before = _snapshot(run)

    done = nlfs("controller", "step", run, "--max-failed-evaluations", "0", "--stop-as-output",
                "--output-dir", str(out_dir))
    assert done.returncode == 0 and json.loads(done.stdout) == []
    assert (out_dir / "done").read_text() == "stopped" and "search stopped: failure budget" in done.stderr
    _one_line_error(nlfs("controller", "check", run, "--max-failed-evaluations", "0"), "failure budget exhausted")
    checked = nlfs("controller", "check", run, "--max-failed-evaluations", "100")
    assert checked.returncode == 0 and "lost (budget 100)" in checked.stderr
    assert _snapshot(run) == before  # neither a stopped step nor a check writes


def test_check_refuses_a_run_that_does_not_exist_and_stop_as_output_needs_an_output_dir(tmp_path, config_file):
    _one_line_error(nlfs("controller", "check", str(tmp_path / "nowhere"), "--max-failed-evaluations", "1"),
                    "no search here")
    run = str(tmp_path / "run")
    assert nlfs("init", run, "--config", config_file).returncode == 0
    _one_line_error(nlfs("controller", "step", run, "--stop-as-output"), "--stop-as-output needs --output-dir")


def test_init_twice_is_a_no_op_and_another_config_is_refused(tmp_path, config_file):
    run = str(tmp_path / "run")
    assert nlfs("init", run, "--config", config_file).returncode == 0
    before = _snapshot(run)
    assert nlfs("init", run, "--config", config_file).returncode == 0
    _one_line_error(nlfs("init", run, "--config", "paper"), "different search config")
    assert _snapshot(run) == before


def test_bad_config_file_is_refused_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("population: many\n")
    _one_line_error(nlfs("search", "--store", str(tmp_path / "run"), "--config", str(bad)), "population")
    assert not (tmp_path / "run").exists()
    _one_line_error(nlfs("init", str(tmp_path / "run"), "--config", str(tmp_path / "missing.yaml")),
                    "missing.yaml")


def test_corrupt_state_is_reported_and_left_alone(tmp_path, config_file):
    run = str(tmp_path / "run")
    nlfs("init", run, "--config", config_file)
    assert nlfs("controller", "step", run).returncode == 0
    store = open_run(run).store
    store.put(layout.state_key(), b"{truncated")
    before = _snapshot(run)
    _one_line_error(nlfs("controller", "step", run), "state.json is corrupt")
    _one_line_error(nlfs("search", "--store", run, "--no-progress"), "state.json is corrupt")
    assert _snapshot(run) == before


def test_corrupt_result_is_reported_and_left_alone(tmp_path, config_file):
    run = str(tmp_path / "run")
    nlfs("init", run, "--config", config_file)
    items = json.loads(nlfs("controller", "step", run).stdout)
    store = open_run(run).store
    store.put(layout.result_key("initial", items[0]["genomes"][0]), b'{"format": "nlfs.result/v1"}')
    before = _snapshot(run)
    _one_line_error(nlfs("controller", "step", run), "invalid result record")
    assert _snapshot(run) == before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_store_is_one_line(tmp_path, config_file, no_aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    _one_line_error(nlfs("init", "s3://bucket/runs/x", "--config", config_file), "cannot reach")
    _one_line_error(nlfs("controller", "step", "s3://bucket/runs/x"), "cannot reach")


def test_missing_credentials_are_one_line(s3_server, config_file, no_aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    bucket = s3_server.make_bucket()
    _one_line_error(nlfs("search", "--store", f"s3://{bucket}/runs/x", "--config", config_file,
                         "--no-progress"), "credentials")


def test_bad_flags_are_one_line():
    done = nlfs("controller", "step")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    done = nlfs("search", "--workers", "0")
    assert done.returncode == 2 and "at least 1" in done.stderr
