"""Verbs that read and finish a run: `results`, `report`, `eliminate`, `transfer`, `export`.

Parsing and dispatch only; the work is in nlfs.report, nlfs.transfer and nlfs.export.
"""

from __future__ import annotations

import logging
import sys

from nlfs.cli.common import emit_work_items, pod_logging, positive_int

RUN_HELP = "run URI: a directory, file://PATH or s3://BUCKET/PREFIX"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "results", help="the top losses of a run and its progress",
        description="Print the top K losses (id, loss, fitness, stage reached, evaluations and their "
                    "statuses) and the run's progress. Reads state.json and a few small files, never "
                    "a listing of results/, so it answers at once on a run of any size.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--top", type=positive_int, default=10, metavar="K", help="how many losses (default: %(default)s)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default: %(default)s)")
    p.set_defaults(func=cmd_results)

    p = subparsers.add_parser(
        "report", help="write an HTML report with figures into the run's reports/",
        description="Render reports/index.html (figures embedded, also kept as PNG files beside it): "
                    "fitness of every evaluation with the best so far, population fitness over time, "
                    "probe curves of the top losses beside cross-entropy, operator frequency, and the "
                    "elimination rankings, transfer table and surrogate fidelity when present.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--top", type=positive_int, default=5, metavar="K",
                   help="losses drawn in the probe-curve figure (default: %(default)s)")
    p.add_argument("--output", metavar="DIR", default=None,
                   help="also copy the report's files into this local directory")
    p.set_defaults(func=cmd_report)

    for verb, until, short, text in (
            ("eliminate", "elimination", "the elimination phases of METHOD.md 5 (resumable)",
             "Run the elimination phases of METHOD.md 5 on the search's best losses: each phase trains "
             "every entrant once under its profile, ranks them (stored as elimination/phase-<k>.json) "
             "and keeps its survivors. Resumable: the same command continues."),
            ("transfer", "transfer", "elimination, then the transfer grid of METHOD.md 6 (resumable)",
             "Run the whole protocol after a search: the elimination phases, then the transfer grid "
             "(finalists and baselines x models x datasets x augmentations x seeds), aggregated into "
             "transfer/table.json (mean ± std, n, a test against cross-entropy, wins/ties/losses) with "
             "surrogate fidelity. With --plan, one planner round for the nlfs-transfer workflow.")):
        p = subparsers.add_parser(verb, help=short, description=text)
        p.add_argument("run", help=RUN_HELP)
        p.add_argument("--protocol", metavar="FILE", default=None,
                       help="protocol YAML (nlfs.protocol/v1); default: the run's stored one, else METHOD.md's")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override a protocol field, e.g. elimination.candidates=50 (repeatable)")
        p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="evaluation processes; with --plan: units handed out per call (default: "
                            "CPU count, at most 8; with --plan, all)")
        p.add_argument("--plan", action="store_true",
                       help="one planner call: fold finished results, print the next work items as JSON")
        p.add_argument("--genomes-per-item", type=positive_int, default=1, metavar="K",
                       help="with --plan: genomes per work item (default: 1)")
        p.add_argument("--output-dir", metavar="DIR",
                       help="with --plan: also write items.json and done (true/false) there")
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        p.set_defaults(func=cmd_protocol, until=until)

    p = subparsers.add_parser(
        "export", help="a loss as a standalone PyTorch module file or LaTeX",
        description="Export a loss: a genome id (or unique id prefix) of --run, a registered loss name "
                    "or a genome file. --format python writes a module file that needs only torch "
                    "(class <Name>Loss, alias Loss; a drop-in for nn.CrossEntropyLoss); --format latex "
                    "writes the equation.")
    p.add_argument("ref", metavar="ID_OR_NAME", help="genome id or prefix (with --run), loss name, or genome file")
    p.add_argument("--run", metavar="RUN_URI", default=None, help="the run holding the genome")
    p.add_argument("--format", choices=("python", "latex"), default="python", help="(default: %(default)s)")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write here instead of stdout")
    p.set_defaults(func=cmd_export)


def cmd_results(args) -> int:
    from nlfs.report.results import summarize, to_csv, to_json, to_text
    from nlfs.runs import open_run

    summary = summarize(open_run(args.run), args.top)
    text = {"table": to_text, "csv": to_csv, "json": to_json}[args.format](summary)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_report(args) -> int:
    from nlfs.report.html import write_report
    from nlfs.runs import open_run

    run = open_run(args.run)
    keys = write_report(run, top=args.top, local_dir=args.output)
    print(f"report: {run.uri.rstrip('/')}/{keys[0]} ({len(keys) - 1} figure(s))", file=sys.stderr)
    return 0


def cmd_protocol(args) -> int:
    from nlfs.errors import NlfsError
    from nlfs.notebook import open_run
    from nlfs.formats import parse_overrides
    from nlfs.transfer.protocol import load_protocol

    overrides = parse_overrides(args.overrides)
    protocol = load_protocol(args.protocol, overrides) if (args.protocol or overrides) else None
    run = open_run(args.run)
    if args.plan:
        return _plan(args, run, protocol)
    if args.output_dir or args.genomes_per_item != 1:
        raise NlfsError("--output-dir and --genomes-per-item go with --plan")
    from nlfs.local import default_workers
    from nlfs.report.text import elimination_text, transfer_text
    from nlfs.transfer.runner import run_protocol

    run_protocol(run.uri, protocol, until=args.until, workers=args.workers or default_workers(), quiet=args.quiet)
    print(elimination_text(run.elimination()))
    if args.until == "transfer":
        table = run.transfer_table()
        if table is not None:
            print()
            print(transfer_text(table))
    return 0


def _plan(args, run, protocol) -> int:
    from nlfs.transfer.plan import plan

    pod_logging(args.quiet)
    outcome = plan(run, protocol, until=args.until, workers=args.workers)
    items = outcome.items(run.uri, args.genomes_per_item)
    logging.getLogger("nlfs.transfer").info(
        "step %s, round %d: %d item(s), %d evaluation(s)%s", outcome.state.step, outcome.state.round,
        len(items), len(outcome.units), ", done" if outcome.done else "")
    emit_work_items(items, outcome.done, args.output_dir)
    return 0


def cmd_export(args) -> int:
    from nlfs.errors import NlfsError
    from nlfs.export import resolve, to_latex, to_python

    genome, name = resolve(args.ref, args.run)
    text = to_python(genome, name) if args.format == "python" else to_latex(genome) + "\n"
    if args.output:
        try:
            with open(args.output, "w") as fh:
                fh.write(text)
        except OSError as err:
            raise NlfsError(f"--output {args.output}: {err.strerror}") from None
        print(f"wrote {args.output} ({args.format}, genome {genome.id})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
