"""Latency and request cost of each ObjectStore operation, directory store vs SeaweedFS S3.

Run: `.venv/bin/python bench/bench_store.py [--n 100]`; prints one line per (store, operation).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the SeaweedFS helper lives with the tests

from nlfs.store import ObjectStore, S3Store, open_store  # noqa: E402
from s3server import SeaweedServer, find_weed  # noqa: E402

PAYLOAD = b'{"format": "nlfs.genome/v1", "nodes": []}' * 20  # about a genome's size


def measure(store: ObjectStore, n: int) -> list[tuple[str, float, float]]:
    """(operation, median ms, requests per call) for each operation, `n` calls each."""
    ops: list[tuple[str, Callable[[int], object]]] = [
        ("put", lambda i: store.put(f"genomes/{i:016x}.json", PAYLOAD)),
        ("get", lambda i: store.get(f"genomes/{i:016x}.json")),
        ("exists", lambda i: store.exists(f"genomes/{i:016x}.json")),
        ("put_if_absent (new)", lambda i: store.put_if_absent(f"results/s/{i:016x}.json", PAYLOAD)),
        ("put_if_absent (exists)", lambda i: store.put_if_absent(f"results/s/{i:016x}.json", PAYLOAD)),
        ("compare_and_swap", lambda i: store.compare_and_swap("state.json", PAYLOAD + str(i).encode(),
                                                              store.get("state.json").etag)),
        ("list (n keys)", lambda i: store.list("genomes/")),
    ]
    store.put("state.json", b"{}")
    rows = []
    for name, op in ops:
        before = getattr(store, "request_count", 0)
        times = []
        for i in range(n):
            t = time.perf_counter()
            op(i)
            times.append((time.perf_counter() - t) * 1000)
        requests = (getattr(store, "request_count", 0) - before) / n
        rows.append((name, statistics.median(times), requests))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="calls per operation (default 100)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = {"dir": measure(open_store(tmp), args.n)}
    if find_weed():
        with SeaweedServer() as server:
            os.environ.update(server.env())
            store = open_store(f"s3://{server.make_bucket()}/bench")
            assert isinstance(store, S3Store)
            results["s3 (SeaweedFS)"] = measure(store, args.n)
    else:
        print("weed not found: S3 skipped", file=sys.stderr)

    print(f"{'store':<16} {'operation':<24} {'median ms':>10} {'requests/call':>14}")
    for kind, rows in results.items():
        for name, ms, requests in rows:
            req = f"{requests:.2f}" if kind != "dir" else "-"
            print(f"{kind:<16} {name:<24} {ms:>10.2f} {req:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
