"""The local executor behind `nlfs search`: controller steps and evaluations in a process pool.

The same two functions the Argo workflow runs (a controller step, an evaluation), against any
store. All state lives in the store, so Ctrl-C or a kill loses at most the evaluations in
flight and the same command resumes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig
from nlfs.evolution.controller import init_run, step
from nlfs.evolution.state import Member, State
from nlfs.result import ResultRecord
from nlfs.runs import Run, open_run
from nlfs.store import layout

DEFAULT_RUN = os.path.join("runs", "default")
BASELINE = "cross_entropy"


# ---- worker side ------------------------------------------------------------------------------

def _init_worker() -> None:
    # Die with the parent (a SIGKILLed `nlfs search` must leave no orphan still training),
    # and leave Ctrl-C to the parent, which stops the pool in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_PROFILES: dict = {}


def _stage_plan(run: Run, stage: str):
    from nlfs.evaluate import stage_plan

    key = (run.uri, stage)
    if key not in _PROFILES:
        _PROFILES[key] = stage_plan(run.store, stage)
    return _PROFILES[key]


def _named_profile(name: str, overrides: dict[str, str] | None):
    from nlfs.train.profiles import load_profile

    key = (name, tuple(sorted((overrides or {}).items())))
    if key not in _PROFILES:
        _PROFILES[key] = load_profile(name, dict(overrides or {}))
    return _PROFILES[key]


def evaluate_one(run_uri: str, stage: str, genome_id: str, profile: str | None = None,
                 overrides: dict[str, str] | None = None) -> tuple[str, str | None, float | None]:
    """Evaluate one genome of the run into results/<stage>/; returns (id, status, fitness).

    The profile is the one the run's config gives the stage, or `profile` (a name or YAML
    path) with `overrides` for stages outside the config (elimination and transfer).
    """
    from nlfs.evaluate import evaluate_in_run

    run = open_run(run_uri)
    chosen = _stage_plan(run, stage) if profile is None else _named_profile(profile, overrides)
    records = evaluate_in_run(run.store, stage, [genome_id], chosen)
    if records:
        return genome_id, records[0].status, records[0].fitness
    existing = run.result(stage, genome_id)
    return genome_id, existing.status if existing else None, existing.fitness if existing else None


def evaluate_baseline(run_uri: str, stage: str) -> ResultRecord:
    """Cross-entropy on the stage's profile, stored once under baselines/ for comparison."""
    from nlfs.evaluate import evaluate

    run = open_run(run_uri)
    stored = run.baseline(stage, BASELINE)
    if stored is not None:
        return stored
    record = evaluate(BASELINE, _stage_plan(run, stage).profile, stage=stage)
    run.store.put_if_absent(layout.baseline_key(stage, BASELINE), record.to_json().encode())
    return record


# ---- parent side ------------------------------------------------------------------------------

# Thresholds the closing summary reports against (fitness is a validation accuracy).
LOW_FITNESS = 0.25  # about chance for 10 classes, plus a margin
WEAK_FITNESS = 0.5


@dataclass(frozen=True)
class MainStageTally:
    """The main-stage trainings of a run (reused results and failed gates are not trainings)."""

    trained: int
    low: int  # of which ended with no fitness or a fitness below LOW_FITNESS

    @property
    def low_share(self) -> float:
        return self.low / self.trained if self.trained else 0.0

    @classmethod
    def of(cls, records: list[ResultRecord]) -> "MainStageTally":
        trained = [r for r in records if not r.reused_from and r.status != "gate_failed"]
        low = sum(1 for r in trained if r.fitness is None or r.fitness < LOW_FITNESS)
        return cls(len(trained), low)


@dataclass
class Summary:
    run_uri: str
    state: State
    config: SearchConfig
    baseline: ResultRecord | None
    main: MainStageTally | None = None


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn: workers are direct children started from a clean interpreter, so the parent's
    # threads and torch state are not forked into them, and PR_SET_PDEATHSIG ties them to us.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the workers now (their evaluation in flight is the work lost) and reap them."""
    procs = list(getattr(pool, "_processes", {}).values())
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)


class _Progress:
    """A tqdm bar when stderr is a terminal or `progress` is forced; plain lines otherwise."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = None
        self.last_line = 0.0
        self.total, self.done = total, done
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="eval", dynamic_ncols=True,
                            desc="search", file=sys.stderr)

    def update(self, done: int, total: int, best: float | None, phase: str) -> None:
        self.done, self.total = done, total
        text = f"{phase} best={best:.4f}" if best is not None else phase
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
        elif time.monotonic() - self.last_line > 10:
            self.last_line = time.monotonic()
            print(f"nlfs search: {done}/{total} evaluations, {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def search(run_uri: str, config: SearchConfig | None, workers: int, *,
           progress: bool | None = None, baseline: bool = True) -> Summary:
    """Run (or resume) a search to the end; returns what to print."""
    run = open_run(run_uri)
    if config is not None:
        init_run(run, config)
    config = run.config
    state, _ = run.read_state()
    done = state.counters.evaluations if state else 0
    bar = _Progress(config.total_evaluations, done, sys.stderr.isatty() if progress is None else progress)
    pool = _pool(workers)
    try:
        base_future = pool.submit(evaluate_baseline, run.uri, "main") if baseline else None
        while True:
            outcome = step(run)
            state = outcome.state
            total = config.total_evaluations + state.counters.remutations
            best = state.best.fitness if state.best else None
            bar.update(state.counters.evaluations, total, best, state.phase)
            if outcome.done:
                break
            futures = [pool.submit(evaluate_one, run.uri, outcome.stage, g) for g in outcome.genomes]
            pending = set(futures)
            finished = 0
            while pending:
                complete, pending = wait(pending, return_when=FIRST_EXCEPTION, timeout=1.0)
                for f in complete:
                    f.result()  # a worker's error (bad store, bug) stops the search here
                    finished += 1
                if complete:
                    bar.update(state.counters.evaluations + finished, total, best, state.phase)
        base = base_future.result() if base_future else None
    except BrokenProcessPool:
        # A worker died without a word: killed by the OOM killer or a signal. Its evaluation is
        # lost, nothing stored is; the same command resumes from the store.
        _stop(pool)
        raise NlfsError(f"an evaluation worker died (killed by a signal, e.g. the out-of-memory killer); "
                        f"the results so far are stored, and `nlfs search --store {run.uri}` resumes "
                        "(fewer --workers use less memory)") from None
    except BaseException:
        _stop(pool)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    # One listing of results/main at the end: the tally is not kept in the state.
    return Summary(run.uri, state, config, base, MainStageTally.of(run.results("main")))


def format_summary(summary: Summary, top: int = 5) -> str:
    """The closing text: counts, the top losses beside cross-entropy, and where results are."""
    from nlfs.genome import Genome, describe

    s, c = summary.state, summary.state.counters
    base = summary.baseline.fitness if summary.baseline and summary.baseline.fitness is not None else None
    lines = [f"search {'finished' if s.done else 'stopped'}: {c.evaluations} evaluations "
             f"({c.reused} reused), {c.children_done}/{summary.config.budget} children, "
             f"{c.discarded} scored 0 (not inserted), {c.remutations} re-mutations"]
    if summary.config.gated:
        lines.append(f"gate: {c.gate_failures} failed, each saving a main-stage training "
                     f"({c.gate_failures} saved)")
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(c.statuses.items()))
    if statuses:
        lines.append(f"result statuses: {statuses}")
    if summary.main is not None:
        m = summary.main
        lines.append(f"main-stage trainings: {m.trained}, {m.low} ({m.low_share:.1%}) with fitness "
                     f"below {LOW_FITNESS}")
    if s.population:
        fits = sorted(m.fitness for m in s.population)
        median = (fits[(len(fits) - 1) // 2] + fits[len(fits) // 2]) / 2
        below = sum(f < WEAK_FITNESS for f in fits)
        vs = f" ({median - base:+.4f} vs cross-entropy)" if base is not None else ""
        lines.append(f"population: {len(fits)} members, median fitness {median:.4f}{vs}, "
                     f"{below} below {WEAK_FITNESS}")
    lines.append("")
    lines.append(f"{'rank':>4}  {'fitness':>7}  {'vs CE':>7}  {'id':16}  loss")
    members: list[Member] = s.top[:top]
    for rank, m in enumerate(members, 1):
        delta = f"{m.fitness - base:+.4f}" if base is not None else "n/a"
        lines.append(f"{rank:>4}  {m.fitness:7.4f}  {delta:>7}  {m.id:16}  {describe(Genome.from_json(m.genome))}")
    if not members:
        lines.append("   (no loss has a main-stage fitness yet)")
    if base is not None:
        lines.append(f"cross-entropy on the same profile ({summary.baseline.profile}): {base:.4f}")
    lines.append("")
    lines.append(f"results: {summary.run_uri}  (state.json, results/<stage>/<id>.json, genomes/<id>.json)")
    return "\n".join(lines)


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))

