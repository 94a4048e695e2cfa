"""How a controller step's time depends on the run's history (issue: a step follows P and B only).

Builds one run per history size in a directory store (and optionally S3 via --store-root
s3://bucket/prefix), pads it with N stored evaluations, then times real controller steps:
fold a finished batch of B results, propose the next B children, compare-and-swap the state.
Prints seconds per step at each size and the ratio of the largest to the smallest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from nlfs.evolution.config import SearchConfig, StageProfile
from nlfs.evolution.controller import init_run, step
from nlfs.result import ResultRecord
from nlfs.runs import Run
from nlfs.store import layout, open_store


def _record(stage: str, gid: str, fitness: float) -> ResultRecord:
    return ResultRecord(genome_id=gid, stage=stage, profile="bench", profile_hash="0" * 16,
                        status="ok", fitness=fitness)


def _fitness(gid: str) -> float:
    return int(gid[:6], 16) / 0xFFFFFF


def _finish(run: Run, outcome) -> None:
    for gid in outcome.genomes:
        run.put_result(_record(outcome.stage, gid, _fitness(gid)))


def build(uri: str, config: SearchConfig, history: int) -> Run:
    """A run in its evolve phase whose store holds `history` evaluations."""
    run = Run(open_store(uri))
    init_run(run, config)
    outcome = step(run)
    while run.read_state()[0].phase != "evolve":
        _finish(run, outcome)
        outcome = step(run)
    done = run.read_state()[0].counters.evaluations
    for k in range(max(0, history - done)):  # stored history the step must not read
        gid = f"{k:016x}"
        run.store.put(layout.result_key("main", gid), _record("main", gid, 0.5).to_json().encode())
    return run


def time_steps(run: Run, steps: int) -> float:
    """Median seconds of one step that folds a full batch and proposes the next."""
    times = []
    outcome = step(run)
    for _ in range(steps):
        _finish(run, outcome)
        t0 = time.perf_counter()
        outcome = step(run)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="history sizes (evaluations)")
    parser.add_argument("--steps", type=int, default=5, help="steps timed per size (median)")
    parser.add_argument("--store-root", default=None, help="where to build runs (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SearchConfig(population=100, tournament=20, initial_candidates=100, budget=100_000,
                          batch_size=16, initial_batch_size=100,
                          stages={"initial": StageProfile(profile="tiny-prefilter"),
                                  "main": StageProfile(profile="tiny")})
    root = args.store_root or tempfile.mkdtemp(prefix="nlfs-bench-")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"controller step: population {config.population}, batch {config.batch_size}, store {root}")
    print(f"{'history':>10}  {'s/step':>8}")
    results = []
    for n in sizes:
        run = build(f"{root.rstrip('/')}/h{n}", config, n)
        seconds = time_steps(run, args.steps)
        results.append(seconds)
        print(f"{n:>10}  {seconds:8.3f}", flush=True)
    ratio = results[-1] / results[0]
    print(f"ratio {sizes[-1]} / {sizes[0]}: {ratio:.2f}  (goal: at most 2) -> {'met' if ratio <= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
