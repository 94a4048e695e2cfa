"""`nlfs search` under faults around it: the S3 server down for 20 s in the middle, and an
evaluation worker killed as the out-of-memory killer kills (issue 12, points 5 and 8).

Real searches, real training, a real SeaweedFS killed and restarted on the same data and ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nlfs.runs import open_run
from s3server import SeaweedServer
from searchkit import config_file, search_argv, search_session, wait_until

pytestmark = pytest.mark.slow

OUTAGE_S = 20


def _outcome(run_uri: str) -> tuple[dict, list, object]:
    """What a search ends with: every result's fitness, the population, the counters."""
    run = open_run(run_uri)
    state = run.state()
    results = {f"{r.stage}/{r.genome_id}": (r.status, r.fitness) for r in run.results()}
    return results, state.population, state.counters


@pytest.fixture
def outage_server(no_aws_env, monkeypatch):
    """A server of the test's own (it gets killed), with the environment pointed at it."""
    server = SeaweedServer().start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()


def test_search_rides_out_a_20_s_s3_outage_and_ends_like_an_uninterrupted_run(tmp_path, outage_server,
                                                                                monkeypatch):
    config = config_file(tmp_path, initial_candidates=6, budget=2)
    whole = str(tmp_path / "whole")  # the same search, never interrupted (the store does not change results)
    done = subprocess.run(search_argv(whole, config), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    bucket, prefix = outage_server.fresh_prefix()
    uri = f"s3://{bucket}/{prefix}/run"
    monkeypatch.setenv("NLFS_STORE_RETRY_S", "120")
    client = outage_server.client()

    def four_results() -> bool:
        return client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/run/results/").get("KeyCount", 0) >= 4

    with search_session(search_argv(uri, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True) as proc:
        wait_until(proc, four_results, timeout=300)
        assert proc.poll() is None, "the search finished before the outage"
        outage_server.kill()
        time.sleep(OUTAGE_S)
        assert proc.poll() is None, f"the search gave up during the outage: {proc.communicate()[1]}"
        outage_server.restart()
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "search finished" in out and "Traceback" not in err
    assert "retrying for up to" in err  # it did meet the outage, and said so
    assert _outcome(uri) == _outcome(whole)


def _worker_pids(parent: int) -> list[int]:
    """The pool's worker processes among `parent`'s children (not multiprocessing's helpers)."""
    pids = []
    with open(f"/proc/{parent}/task/{parent}/children") as fh:
        children = [int(pid) for pid in fh.read().split()]
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    pids.append(pid)
        except FileNotFoundError:
            pass
    return pids


def test_a_worker_killed_like_the_oom_killer_does_is_one_line_that_says_how_to_resume(tmp_path):
    config = config_file(tmp_path, initial_candidates=6, budget=2)
    run = str(tmp_path / "run")
    results = Path(run) / "results"
    with search_session(search_argv(run, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True) as proc:
        wait_until(proc, lambda: results.is_dir() and any(results.rglob("*.json")), timeout=300)
        workers = _worker_pids(proc.pid)
        assert proc.poll() is None and workers, "no worker to kill"
        os.kill(workers[0], signal.SIGKILL)  # what the OOM killer sends
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    # Progress lines come first (stderr is not a terminal); the error is one line, the last.
    lines = [line for line in err.strip().splitlines() if not line.startswith("nlfs search: ")]
    assert len(lines) == 1 and lines[0].startswith("nlfs: error: an evaluation worker died"), err
    assert f"nlfs search --store {Path(run).resolve()}" in lines[0] and "Traceback" not in err
    resumed = subprocess.run(search_argv(run, config), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert open_run(run).state().done
