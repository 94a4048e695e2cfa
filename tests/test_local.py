"""`nlfs search`, the local executor: real training in a process pool, killed and resumed.

These run the real console command on a search small enough for seconds per run.
"""

import os
import signal
import subprocess
import time

import pytest

from nlfs.runs import open_run
from nlfs.store import layout
from searchkit import config_file, fast_config, nlfs_argv, search_argv, search_session, wait_until

pytestmark = pytest.mark.slow


def _search(run: str, config: str) -> subprocess.CompletedProcess:
    return subprocess.run(search_argv(run, config), capture_output=True, text=True, timeout=600)


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


def _wait_session_gone(sid: int) -> None:
    """Up to 10 s for every process of session `sid` to exit; those still alive fail the test."""
    deadline = time.monotonic() + 10
    while _session_alive(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_alive(sid) == [], "processes of the search outlived it"


def test_search_runs_to_the_end_and_prints_the_top_losses(tmp_path):
    run = str(tmp_path / "run")
    done = subprocess.run(search_argv(run, config_file(tmp_path), baseline=True),
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
    assert state.done and state.counters.children_done == 8
    assert open_run(run).store.exists(layout.baseline_key("main", "cross_entropy"))
    # The same command again resumes: it finds the run done and trains nothing.
    before = _results(run)
    again = subprocess.run(nlfs_argv("search", "--store", run, "--workers", "2", "--no-progress"),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "search finished" in again.stdout
    assert _results(run) == before


def _kill_when(run_uri: str, config: str, results_at_least: int) -> None:
    """Start a search in its own session and SIGKILL it once enough results exist."""
    with search_session(search_argv(run_uri, config), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) as proc:
        wait_until(proc, lambda: len(_results(run_uri)) >= results_at_least, timeout=300)
        assert proc.poll() is None, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)  # the parent only: its workers must die with it
        proc.wait()
        _wait_session_gone(proc.pid)


def test_sigkill_twice_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    config = config_file(tmp_path)
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
    done = _search(uri, config_file(tmp_path, budget=4))
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
    run, config = str(tmp_path / "run"), config_file(tmp_path)
    with search_session(search_argv(run, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, preexec_fn=_as_from_a_terminal) as proc:
        wait_until(proc, lambda: bool(_results(run)), timeout=120)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resumes it" in err and "Traceback" not in err
    _wait_session_gone(proc.pid)
    assert _search(run, config).returncode == 0
    assert open_run(run).state().done
