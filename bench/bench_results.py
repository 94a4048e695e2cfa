"""`nlfs results` cost against history length: wall time (directory store) and S3 requests per call.

Run: `.venv/bin/python bench/bench_results.py [--sizes 100 1000 10000] [--s3-sizes 20 400]`;
prints one line per (store, history size). The claim it measures: the time and the request
count stay flat as the history grows, because `results` reads state.json, never results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # searchkit and the SeaweedFS helper live with the tests
sys.path.insert(0, str(ROOT / "tests" / "transfer"))  # runkit: synthetic finished searches

from nlfs.report.results import summarize  # noqa: E402
from nlfs.runs import Run, open_run  # noqa: E402
from nlfs.store import open_store  # noqa: E402
from runkit import synthetic_search  # noqa: E402
from s3server import SeaweedServer, find_weed  # noqa: E402


def bench_dir(sizes: list[int], repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            uri = os.path.join(tmp, f"run-{n}")
            synthetic_search(open_run(uri), evaluations=n, top=25)
            cli = []
            for _ in range(repeat):
                started = time.monotonic()
                subprocess.run([sys.executable, "-m", "nlfs.cli.main", "results", uri], check=True,
                               capture_output=True)
                cli.append(time.monotonic() - started)
            started = time.monotonic()
            summarize(open_run(uri), top=10)
            inproc = time.monotonic() - started
            print(f"dir  evaluations={n:>6}  `nlfs results` {min(cli):.2f}s (best of {repeat}), "
                  f"summarize() {inproc * 1000:.0f} ms")


def bench_s3(sizes: list[int]) -> None:
    if find_weed() is None:
        print("s3   skipped: SeaweedFS `weed` is not installed")
        return
    server = SeaweedServer().start()
    try:
        os.environ.update(server.env())
        bucket = server.make_bucket()
        for n in sizes:
            uri = f"s3://{bucket}/run-{n}"
            synthetic_search(open_run(uri), evaluations=n, top=25)
            store = open_store(uri)
            started = time.monotonic()
            summarize(Run(store), top=10)
            print(f"s3   evaluations={n:>6}  requests per call {store.request_count}, "
                  f"{(time.monotonic() - started) * 1000:.0f} ms")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--s3-sizes", type=int, nargs="+", default=[20, 400])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench_dir(args.sizes, args.repeat)
    bench_s3(args.s3_sizes)


if __name__ == "__main__":
    main()
