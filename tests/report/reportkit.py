"""Helpers of the report and end-to-end tests: run the CLI, copy a run into S3, take a run through
the protocol keeping what each command printed."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from runkit import TINY_PROTOCOL


@dataclass
class Finished:
    """A run taken through the protocol by the real CLI, and what each command printed."""

    kind: str
    uri: str
    out: dict[str, str] = field(default_factory=dict)  # verb -> stdout
    err: dict[str, str] = field(default_factory=dict)  # verb -> stderr
    codes: dict[str, int] = field(default_factory=dict)
    local: Path | None = None  # a directory holding a copy of reports/


def nlfs_inprocess(*argv: str) -> tuple[int, str, str]:
    """`nlfs ARGV` in this process (cheap verbs): exit code, stdout, stderr."""
    from nlfs.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def nlfs_process(*argv: str) -> tuple[int, str, str]:
    """`nlfs ARGV` as its own process (the verbs that start a worker pool)."""
    proc = subprocess.run([sys.executable, "-m", "nlfs.cli.main", *argv], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def copy_into(src: Path, uri: str) -> None:
    from nlfs.store import open_store

    store = open_store(uri)
    for path in sorted(src.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            store.put(path.relative_to(src).as_posix(), path.read_bytes())


def finish(kind: str, uri: str, tmp: Path) -> Finished:
    done = Finished(kind, uri)
    protocol = tmp / "protocol.yaml"
    protocol.write_text(TINY_PROTOCOL)

    def record(name, result):
        done.codes[name], done.out[name], done.err[name] = result

    record("results-before", nlfs_inprocess("results", uri, "--format", "json"))
    record("eliminate", nlfs_process("eliminate", uri, "--protocol", str(protocol), "--workers", "2", "--quiet"))
    record("transfer", nlfs_process("transfer", uri, "--workers", "2", "--quiet"))
    record("results", nlfs_inprocess("results", uri, "--top", "5"))
    record("results-json", nlfs_inprocess("results", uri, "--format", "json"))
    record("results-csv", nlfs_inprocess("results", uri, "--format", "csv", "--top", "3"))
    done.local = tmp / "report"
    record("report", nlfs_inprocess("report", uri, "--output", str(done.local)))
    from nlfs.runs import open_run

    best = open_run(uri).state().top[0].id
    record("export-python", nlfs_inprocess("export", best, "--run", uri, "--format", "python"))
    record("export-latex", nlfs_inprocess("export", best[:8], "--run", uri, "--format", "latex"))
    return done
