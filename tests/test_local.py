"""`nlfs search`, the local executor: real training in a process pool, killed and resumed.

These run the real console command on a search small enough for seconds per run.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlfs.runs import open_run
from nlfs.store import layout
from searchkit import fast_config

pytestmark = pytest.mark.slow


def _nlfs(*args, env=None, **kw):
    return [sys.executable, "-m", "nlfs.cli.main", *args]


def _config_file(tmp_path: Path, **changes) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(fast_config(**changes).to_yaml())
    return str(path)


def _search(run: str, config: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(_nlfs("search", "--store", run, "--config", config, "--workers", "2",
                                "--no-progress", "--no-baseline"),
                          capture_output=True, text=True, timeout=600, **kw)


def _results(run_uri: str) -> dict[str, float | None]:
    run = open_run(run_uri)
    return {f"{r.stage}/{r.genome_id}": r.fitness for r in run.results()}


def _session_alive(sid: int) -> list[int]:
    alive = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getsid(int(pid)) == sid:
                    with open(f"/proc/{pid}/stat") as fh:
                        if fh.read().split()[2] != "Z":
                            alive.append(int(pid))
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                pass
    return alive


def test_search_runs_to_the_end_and_prints_the_top_losses(tmp_path):
    run = str(tmp_path / "run")
    done = subprocess.run(_nlfs("search", "--store", run, "--config", _config_file(tmp_path),
                                "--workers", "2", "--no-progress"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "search finished" in out and "8/8 children" in out
    state = open_run(run).state()
    saved = state.counters.gate_failures
    assert f"gate: {saved} failed, each saving a main-stage training ({saved} saved)" in out
    assert "main-stage trainings: " in out and "population: 4 members, median fitness" in out
    assert "cross-entropy on the same profile (tiny)" in out
    assert out.count("mean_b sum_c") == 5  # the top five, best first
    state = open_run(run).state()
    assert state.done and state.counters.children_done == 8
    assert open_run(run).store.exists(layout.baseline_key("main", "cross_entropy"))
    # The same command again resumes: it finds the run done and trains nothing.
    before = _results(run)
    again = subprocess.run(_nlfs("search", "--store", run, "--workers", "2", "--no-progress"),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "search finished" in again.stdout
    assert _results(run) == before


def _kill_when(run_uri: str, config: str, results_at_least: int) -> None:
    """Start a search in its own session and SIGKILL it once enough results exist."""
    proc = subprocess.Popen(_nlfs("search", "--store", run_uri, "--config", config, "--workers", "2",
                                  "--no-progress", "--no-baseline"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_results(run_uri)) >= results_at_least:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # the parent only: its workers must die with it
    proc.wait()
    deadline = time.monotonic() + 10
    while _session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_alive(proc.pid) == [], "workers outlived the killed search"


def test_sigkill_twice_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    config = _config_file(tmp_path)
    whole = str(tmp_path / "whole")
    assert _search(whole, config).returncode == 0
    expected = _results(whole)

    killed = str(tmp_path / "killed")
    _kill_when(killed, config, results_at_least=4)  # during the cheap initial stage
    first_cut = _results(killed)
    _kill_when(killed, config, results_at_least=len(first_cut) + 8)  # during evolution
    finish = _search(killed, config)
    assert finish.returncode == 0, finish.stderr

    state_whole, state_killed = open_run(whole).state(), open_run(killed).state()
    assert state_killed.counters.children_done == fast_config().budget
    # Same results, same fitness: nothing lost, nothing evaluated twice into another value.
    assert _results(killed) == expected
    assert state_killed.population == state_whole.population
    assert state_killed.counters == state_whole.counters


def test_search_against_s3(s3_env, tmp_path):
    uri = s3_env.uri("runs/x")
    done = _search(uri, _config_file(tmp_path, budget=4))
    assert done.returncode == 0, done.stderr
    assert "search finished" in done.stdout and uri in done.stdout
    state = open_run(uri).state()
    assert state.done and state.counters.children_done == 4


def _as_from_a_terminal() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and Python
    # then leaves it ignored (as nohup intends); `make test &` in a script would pass that on
    # to the search here. A terminal's foreground job has SIGINT at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    run = str(tmp_path / "run")
    proc = subprocess.Popen(_nlfs("search", "--store", run, "--config", _config_file(tmp_path),
                                  "--workers", "2", "--no-progress", "--no-baseline"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _results(run):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resumes it" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while _session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_alive(proc.pid) == []
    assert _search(run, _config_file(tmp_path)).returncode == 0
    assert open_run(run).state().done
