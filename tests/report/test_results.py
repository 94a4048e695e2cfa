"""Issue 6, point 5: `nlfs results` costs the same however long the history is.

Synthetic finished searches (tests/transfer/runkit.py) give histories of any length in seconds:
10,000 evaluations on a directory store must answer in under 3 s through the real command, and
on S3 the number of requests per call must not change between a short and a long history.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from nlfs.report.results import summarize
from nlfs.runs import Run, open_run
from nlfs.store import DirectoryStore, open_store
from runkit import synthetic_search


class CountingStore(DirectoryStore):
    """A directory store that records every call, to show which keys `results` touches."""

    def __init__(self, root):
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    def get(self, key):
        self.calls.append(("get", key))
        return super().get(key)

    def list(self, prefix=""):
        self.calls.append(("list", prefix))
        return super().list(prefix)

    def exists(self, key):
        self.calls.append(("exists", key))
        return super().exists(key)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("big") / "run")
    synthetic_search(open_run(uri), evaluations=10_000, top=25)
    return uri


def test_results_of_10000_evaluations_answer_in_under_3_seconds(big_run):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nlfs.cli.main", "results", big_run, "--top", "10"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "10000/10000 evaluations" in proc.stdout and "rejected 1995" in proc.stdout
    assert elapsed < 3.0, f"nlfs results took {elapsed:.2f}s"


def test_results_read_a_fixed_set_of_keys_and_list_nothing(big_run):
    store = CountingStore(DirectoryStore(big_run).root)
    summary = summarize(Run(store), top=10)
    assert len(summary.top) == 10 and summary.progress.evaluations == 10_000
    assert not [c for c in store.calls if c[0] == "list"]
    reads = [key for op, key in store.calls if op == "get"]
    assert len(reads) == 14  # config, state, baseline, protocol state, and one record per row
    assert len([k for k in reads if k.startswith("results/")]) == 10


def _request_count(uri: str, top: int) -> int:
    store = open_store(uri)
    summarize(Run(store), top=top)
    return store.request_count


def test_s3_request_count_does_not_grow_with_the_history(s3_env):
    short, long = s3_env.uri("short"), s3_env.uri("long")
    synthetic_search(open_run(short), evaluations=20, top=8)
    synthetic_search(open_run(long), evaluations=400, top=8, seed=1)
    for top in (3, 8):
        assert _request_count(short, top) == _request_count(long, top)
    assert 4 + 8 <= _request_count(long, 8) <= 4 + 8 + 2  # the fixed reads, one per row, bucket checks


def test_results_over_s3_through_the_cli(s3_env):
    uri = s3_env.uri("cli")
    members = synthetic_search(open_run(uri), evaluations=30, top=5)
    proc = subprocess.run([sys.executable, "-m", "nlfs.cli.main", "results", uri, "--format", "json", "--top", "3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["id"] for r in out["top"]] == [m.id for m in members[:3]]
    assert out["progress"]["failures"] == {"rejected": 5}
