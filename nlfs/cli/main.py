"""Entry point of the `nlfs` command: builds the parser from the verb modules and dispatches.

User errors (`NlfsError`, bad flags) become one line on stderr and exit code 2 here, and only
here; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nlfs.errors import NlfsError

# Each module defines `register(subparsers)`, adding its verbs with `set_defaults(func=...)`.
# A handler returns an exit code (None means 0). Heavy imports (torch) stay inside handlers so
# that `nlfs --help` and bad-input errors answer at once.
VERB_MODULES = (
    "nlfs.cli.genome_cmds",
    "nlfs.cli.run_cmds",
    "nlfs.cli.eval_cmds",
    "nlfs.cli.workflow_cmds",
    "nlfs.cli.results_cmds",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        _termination_message(f"{self.prog}: error: {message}")
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nlfs", description="Neural loss function search for image classifiers.")
    from nlfs import __version__

    parser.add_argument("--version", action="version", version=f"nlfs {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    subparsers.required = True
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except NlfsError as err:
        line = f"nlfs: error: {err}"
        print(line, file=sys.stderr)
        _termination_message(line)
        return err.exit_code
    except KeyboardInterrupt:
        print("nlfs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0 if code is None else int(code)


def _termination_message(line: str) -> None:
    """Also write the error where a pod's template asks ($NLFS_TERMINATION_LOG, e.g. Kubernetes'
    /dev/termination-log): Kubernetes makes it the container's termination message, and Argo puts
    that in the failed node's message ("main: Error (exit code 2): nlfs: error: ...")."""
    import os

    path = os.environ.get("NLFS_TERMINATION_LOG")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as log:
            log.write(line)
    except OSError:
        pass  # the message is on stderr already; a missing file must not hide the error


if __name__ == "__main__":
    sys.exit(main())
