"""Wall-clock of `nlfs show` and `nlfs export --format latex` on large random genomes, beside
what sympy alone would take on the same genomes (issue 12, point 7: under 5 s for any genome).

Run: `.venv/bin/python bench/bench_render.py [--genomes 20] [--sympy-cap 20]`. Each verb runs
as a user runs it (a fresh process), on genomes of 8..64 nodes (the format's limit); the sympy
column is `simplified()` unbounded, in a child stopped at the cap, so "> cap" means at least.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the genome generator lives with the tests

from genomekit import large_random_genome  # noqa: E402
from nlfs.genome.render import SIMPLIFY_SECONDS, _bounded, expanded_size, simplified  # noqa: E402


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nlfs.cli.main", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"nlfs {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


def sympy_alone(genome, cap: float) -> float | None:
    started = time.perf_counter()
    answer = _bounded(lambda g: str(simplified(g)), genome, cap)
    return None if answer is None else time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=20, help="random genomes (default 20)")
    parser.add_argument("--sympy-cap", type=float, default=20.0, help="seconds sympy alone is given (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    show, export, alone = [], [], []
    print(f"{'nodes':>5} {'active':>6} {'written':>7}  {'show s':>7} {'latex s':>7} {'sympy s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.genomes):
            genome = large_random_genome(rng, int(rng.integers(8, 65)))
            path = Path(tmp) / f"g{k}.json"
            path.write_text(genome.to_json())
            show.append(timed(["show", str(path)]))
            export.append(timed(["export", str(path), "--format", "latex"]))
            sympy = sympy_alone(genome, args.sympy_cap)
            alone.append(args.sympy_cap if sympy is None else sympy)
            shown = f"> {args.sympy_cap:.0f}" if sympy is None else f"{sympy:.2f}"
            print(f"{len(genome.nodes):5d} {len(genome.active):6d} {expanded_size(genome):7d}  "
                  f"{show[-1]:7.2f} {export[-1]:7.2f} {shown:>8}")
    print(f"nlfs show:            max {max(show):.2f} s, median {statistics.median(show):.2f} s")
    print(f"nlfs export --latex:  max {max(export):.2f} s, median {statistics.median(export):.2f} s")
    slow = sum(a >= SIMPLIFY_SECONDS for a in alone)
    print(f"sympy alone:          {slow}/{len(alone)} genomes past the {SIMPLIFY_SECONDS:g} s bound, "
          f"{sum(a >= args.sympy_cap for a in alone)} past {args.sympy_cap:g} s; "
          f"max show / max sympy-alone = {max(show) / max(alone):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
