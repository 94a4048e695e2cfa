"""Benchmark of the genome layer, measured in one run on one core (issue 2, point 6).

    .venv/bin/python bench/bench_genome.py

Prints integrity checks per second for the two workloads of a search (goal: 5,000 or more) and
the forward+backward time of compiled genome losses over F.cross_entropy's (goal: 1.5 or less),
cross-entropy under both readings of log(p): log_softmax (fused, and as a program) and the
paper profiles' probabilities.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, numpy's BLAS included; set before numpy loads

import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nlfs.genome import (  # noqa: E402
    Genome, GenomeLoss, KnownLosses, check, compile_genome, infix, mutate, random_genome)
from nlfs.genome.integrity import _MEMOS  # noqa: E402
from nlfs.genome.mutate import random_accepted  # noqa: E402
from nlfs.genome.program import _plan  # noqa: E402
from nlfs.losses import get_genome  # noqa: E402

CHECK_GOAL = 5_000  # checks per second
RATIO_GOAL = 1.5  # genome forward+backward time / F.cross_entropy's
POPULATION = 100  # METHOD.md 3
REPEATS = 3


# ---- integrity checks ----------------------------------------------------------------------
def fresh(genomes: list[Genome]) -> list[Genome]:
    """Copies without cached structure, and empty program and value caches: each repeat starts
    as a new process would. The benchmark's own tens of thousands of genomes are then frozen
    out of the garbage collector's scans, which a search, holding a population of 100, never
    pays for."""
    _plan.cache_clear()
    _MEMOS.clear()
    copies = [Genome(g.nodes, g.output, g.sign, g.label_smoothing) for g in genomes]
    gc.collect()
    gc.freeze()
    return copies


def initialisation_rate(genomes: list[Genome]) -> tuple[float, int]:
    """Checks/s over a stream of random genomes, each accepted one joining the known set (as
    when the first population is drawn). Returns the median rate and the number accepted."""
    rates, accepted = [], 0
    for _ in range(REPEATS):
        stream, known = fresh(genomes), KnownLosses()
        started = time.perf_counter()
        for g in stream:
            verdict = check(g, known)
            if verdict.accepted:
                known.add(g.with_sign(verdict.sign), verdict.phenotype)
        rates.append(len(stream) / (time.perf_counter() - started))
        accepted = len(known)
    return statistics.median(rates), accepted


def evolution_rate(children: list[Genome], population: KnownLosses) -> tuple[float, int]:
    """Checks/s over mutants checked against a population of 100, and how many pass."""
    rates, passed = [], 0
    for _ in range(REPEATS):
        stream = fresh(children)
        started = time.perf_counter()
        passed = sum(check(g, population).accepted for g in stream)
        rates.append(len(stream) / (time.perf_counter() - started))
    return statistics.median(rates), passed


def accepted_random(rng: np.random.Generator, count: int) -> list[Genome]:
    """`count` distinct accepted random genomes, as a search's first population is drawn."""
    return random_accepted(rng, count, max_draws=1_000_000)


# ---- loss forward + backward ---------------------------------------------------------------
def step_time(loss_fn, logits: torch.Tensor, target: torch.Tensor, n: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(n):
        logits.grad = None
        loss_fn(logits, target).backward()
    return (time.perf_counter() - started) / n


def interleaved(fns: dict, logits: torch.Tensor, target: torch.Tensor, rounds: int = 40) -> dict:
    """Seconds per forward+backward of each fn, timed in alternating blocks (so that a busy
    moment of the machine hits all alike) and summarised by the lower quartile."""
    for fn in fns.values():
        step_time(fn, logits, target, 50)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(step_time(fn, logits, target))
    return {name: sorted(t)[len(t) // 4] for name, t in times.items()}


def complex_genome() -> Genome:
    """The first accepted random genome of seed 0 with five active nodes and no log(p)."""
    rng = np.random.default_rng(0)
    while True:
        g = accepted_random(rng, 1)[0]
        if len(g.active) == 5 and not any(g.nodes[i].op in ("log", "log10") and g.nodes[i].inputs == ("p",)
                                          for i in g.active):
            return g


def cross_entropy_by_hand(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The general program of the cross-entropy genome written inline: its floor on CPU."""
    y = torch.index_select(_eye(logits.shape[1]), 0, target)
    return (y * torch.log_softmax(logits, -1)).sum() * (-1 / logits.shape[0])


_EYES: dict[int, torch.Tensor] = {}


def _eye(classes: int) -> torch.Tensor:
    return _EYES.setdefault(classes, torch.eye(classes))


# ---- report --------------------------------------------------------------------------------
def report_checks(rng: np.random.Generator) -> None:
    check(random_genome(rng))  # load scipy and build the operator tables before timing
    randoms = [random_genome(rng) for _ in range(20_000)]
    init_rate, init_accepted = initialisation_rate(randoms)

    parents = accepted_random(rng, POPULATION)
    population = KnownLosses(parents)
    children = [mutate(parents[int(rng.integers(POPULATION))], rng) for _ in range(5_000)]
    evo_rate, evo_passed = evolution_rate(children, population)
    alone_rate, _ = evolution_rate(children, KnownLosses())
    full_rate, _ = evolution_rate([c for c in children if check(c, population).accepted], population)

    print(f"{'integrity checks per second, one core':56s}{'checks/s':>10s}{'goal':>10s}{'met':>6s}")
    rows = [
        (f"(a) random genomes, initialisation ({len(randoms)}; {init_accepted} accepted)", init_rate),
        (f"(b) mutants vs a population of {POPULATION} ({len(children)}; {evo_passed} pass)", evo_rate),
        ("    the same mutants, no population (no duplicate rule)", alone_rate),
        ("    only the mutants that pass (every check runs)", full_rate),
    ]
    for label, rate in rows:
        goal, met = _goal(label, f">= {CHECK_GOAL:,}", rate >= CHECK_GOAL)
        print(f"{label:56s}{rate:10,.0f}{goal:>10s}{met:>6s}")


def report_losses() -> None:
    complex_g = complex_genome()
    print(f"complex genome: t = {infix(complex_g)}  (sign {complex_g.sign:+d}, id {complex_g.id})")
    print(f"{'forward+backward, one core':44s}{'shape':>11s}{'loss us':>10s}{'F.ce us':>10s}"
          f"{'ratio':>8s}{'goal':>8s}{'met':>6s}")
    ce = get_genome("cross_entropy")
    # The two readings of log(p) (a profile's loss.inputs): log_softmax, fused or as a program,
    # and the paper profiles' probabilities, where log is ln(|p| + 1e-7) on softmax's output.
    losses = {"cross_entropy genome (runs fused)": compile_genome(ce),
              "cross_entropy genome, general program": GenomeLoss(ce, fuse_cross_entropy=False),
              "  (its operators by hand, no module)": cross_entropy_by_hand,
              "cross_entropy genome, probabilities (paper)": GenomeLoss(ce, inputs="probabilities",
                                                                        fuse_cross_entropy=False),
              "complex genome": compile_genome(complex_g)}
    for classes in (10, 100):
        gen = torch.Generator().manual_seed(classes)
        logits = torch.randn(128, classes, generator=gen).requires_grad_(True)
        target = torch.randint(0, classes, (128,), generator=gen)
        times = interleaved({"F.cross_entropy": F.cross_entropy, **losses}, logits, target)
        ref = times["F.cross_entropy"]
        for name in losses:
            ratio = times[name] / ref
            goal, met = _goal(name, f"<= {RATIO_GOAL}", ratio <= RATIO_GOAL)
            print(f"{name:44s}{f'[128, {classes}]':>11s}{times[name] * 1e6:10.1f}{ref * 1e6:10.1f}"
                  f"{ratio:8.2f}{goal:>8s}{met:>6s}")


def main() -> None:
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    print(f"nlfs genome benchmark: one core (torch and BLAS threads = 1), {cpu}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at start\n")
    report_checks(np.random.default_rng(2024))
    print()
    report_losses()


def _goal(label: str, goal: str, met: bool) -> tuple[str, str]:
    """Indented rows explain the row above them and carry no goal."""
    return ("", "") if label.startswith(" ") else (goal, "yes" if met else "NO")


if __name__ == "__main__":
    main()
