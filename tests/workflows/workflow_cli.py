"""Run `nlfs workflow ...` in-process the way nlfs.cli.main does (one-line errors, exit 2).

The parser holds only the workflow verbs, so these tests do not depend on the other verb modules;
test_cli_registers_workflow_verbs checks that nlfs.cli.main lists this module.
"""

from __future__ import annotations

import contextlib
import io

from nlfs.cli import main as cli_main
from nlfs.cli import workflow_cmds
from nlfs.errors import NlfsError


def run(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `nlfs workflow ARGV...`."""
    parser = cli_main._Parser(prog="nlfs")
    subparsers = parser.add_subparsers(dest="verb", parser_class=cli_main._Parser)
    subparsers.required = True
    workflow_cmds.register(subparsers)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(["workflow", *argv])
            code = args.func(args) or 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except NlfsError as error:
            print(f"nlfs: error: {error}", file=err)
            code = error.exit_code
    return code, out.getvalue(), err.getvalue()
