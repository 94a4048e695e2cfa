"""Small searches for tests: a config that runs in seconds on the `tiny` profiles, and
`nlfs search` run as a process of its own (to kill it, cut its store off, or interrupt it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nlfs.evolution.config import SearchConfig, StageProfile


def fast_config(**changes) -> SearchConfig:
    """A whole search in ~10-30 s on 2 cores: few candidates, short training (our test sizes),
    with the paper's three stages: initial, the tiny gate, main."""
    fields = dict(
        population=4, tournament=2, initial_candidates=8, budget=8, batch_size=2,
        initial_batch_size=3, seed=7,
        stages={"initial": StageProfile(profile="tiny-prefilter", overrides={"epochs": 2}),
                "gate": StageProfile(profile="tiny-gate"),
                "main": StageProfile(profile="tiny", overrides={"epochs": 2})},
    )
    fields.update(changes)
    return SearchConfig(**fields)


def config_file(tmp_path: Path, **changes) -> str:
    """fast_config(**changes) written as `search.yaml` in tmp_path; its path."""
    path = tmp_path / "search.yaml"
    path.write_text(fast_config(**changes).to_yaml())
    return str(path)


def nlfs_argv(*args: str) -> list[str]:
    """The console command `nlfs args...`, run by this interpreter."""
    return [sys.executable, "-m", "nlfs.cli.main", *args]


def search_argv(run: str, config: str, *, baseline: bool = False) -> list[str]:
    """`nlfs search` on `run` with `config`: 2 workers, no progress bar, the cross-entropy
    baseline only if asked for."""
    return nlfs_argv("search", "--store", run, "--config", config, "--workers", "2", "--no-progress",
                     "--baseline" if baseline else "--no-baseline")


@contextmanager
def search_session(argv: list[str], **popen) -> Iterator[subprocess.Popen]:
    """`argv` started in a session of its own (its workers with it); if it still runs on the way
    out, the whole session is SIGKILLed, so a failing test leaves no search behind."""
    proc = subprocess.Popen(argv, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready()` every 50 ms until it holds, `proc` ends or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
