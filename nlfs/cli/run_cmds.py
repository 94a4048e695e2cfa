"""Verbs that drive a search: `init`, `controller step|check`, `search`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from nlfs.cli.common import emit_work_items, non_negative_int, pod_logging, positive_int
from nlfs.errors import NlfsError


def register(subparsers) -> None:
    p = subparsers.add_parser("init", help="create a run in a store (idempotent)",
                              description="Store a search config in a run; the same config again is a no-op.")
    p.add_argument("run", help="run URI: a directory, file://PATH or s3://BUCKET/PREFIX")
    p.add_argument("--config", default="default",
                   help="built-in config name (default, paper) or a YAML file (default: %(default)s)")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser("controller", help="the aging-evolution controller")
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    s = sub.add_parser("step", help="fold finished results and propose the next batch",
                       description="Advance a run by at most one batch. Prints the work items still to "
                                   "evaluate as a JSON list on stdout (logs go to stderr).")
    s.add_argument("run", help="run URI")
    s.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="hand out at most N genomes this step (the rest of the batch comes at the "
                        "next step); bounds a generation's fan-out (default: the whole batch)")
    s.add_argument("--genomes-per-item", type=positive_int, default=1, metavar="K",
                   help="genomes per work item, to share one pod's start-up (default: 1)")
    s.add_argument("--output-dir", metavar="DIR",
                   help="also write items.json and done (true/false) there, for Argo output parameters")
    s.add_argument("--max-failed-evaluations", type=non_negative_int, default=None, metavar="N",
                   help="count hand-outs: a genome handed out twice without a result is recorded as a "
                        "failed evaluation and the search goes on, until more than N are lost; then "
                        "exit 2 (the Argo workflow passes it; default: no counting, so stepping by "
                        "hand changes nothing)")
    s.add_argument("--stop-as-output", action="store_true",
                   help="with --output-dir: a search stopped by its failure budget writes done=stopped "
                        "and exits 0 instead of 2, so that the Workflow's exit handler (controller "
                        "check) can fail it with the reason as its message")
    s.set_defaults(func=cmd_step)

    c = sub.add_parser("check", help="exit 2 with the reason if the search stopped on its failure budget",
                       description="Read-only: exit 2 with one line if more evaluations of the run were "
                                   "lost than the budget allows, else report the search's state and "
                                   "exit 0. The Argo workflow's exit handler.")
    c.add_argument("run", help="run URI")
    c.add_argument("--max-failed-evaluations", type=non_negative_int, required=True, metavar="N",
                   help="the failure budget the search ran with")
    c.set_defaults(func=cmd_check)

    p = subparsers.add_parser("search", help="run a whole search on this machine",
                              description="Run or resume a search with a local process pool. With no "
                                          "arguments: the embedded default (./runs/default, tiny profile).")
    p.add_argument("--store", default=os.path.join("runs", "default"), metavar="URI",
                   help="run URI (default: %(default)s); the same command again resumes it")
    p.add_argument("--config", default=None,
                   help="built-in config name or YAML file (default: the run's own, or 'default' for a new run)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="evaluation processes (default: the CPU count, at most 8)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="evaluate cross-entropy on the main profile for comparison (default: on)")
    p.set_defaults(func=cmd_search)


def cmd_init(args) -> int:
    from nlfs.evolution.config import load_config
    from nlfs.evolution.controller import init_run
    from nlfs.runs import open_run

    config = load_config(args.config)
    run = open_run(args.run)
    created = init_run(run, config)
    print(f"{'created' if created else 'exists'}: {run.uri} (config {config.hash})", file=sys.stderr)
    return 0


def cmd_step(args) -> int:
    from nlfs.evolution.controller import FailureBudgetExhausted, step
    from nlfs.runs import open_run

    if args.stop_as_output and not args.output_dir:
        raise NlfsError("--stop-as-output needs --output-dir")
    pod_logging()
    run = open_run(args.run)
    try:
        outcome = step(run, max_genomes=args.workers, max_failed=args.max_failed_evaluations)
    except FailureBudgetExhausted as stop:
        if not args.stop_as_output:
            raise
        logging.getLogger("nlfs.controller").error("search stopped: %s", stop)
        emit_work_items([], False, args.output_dir, stopped=True)
        return 0
    items = outcome.items(run.uri, args.genomes_per_item)
    c = outcome.state.counters
    logging.getLogger("nlfs.controller").info(
        "phase %s, %d evaluations, %d/%d children, best %s; %d item(s) to evaluate%s",
        outcome.state.phase, c.evaluations, c.children_done, run.config.budget,
        f"{outcome.state.best.fitness:.4f}" if outcome.state.best else "n/a", len(items),
        ", search done" if outcome.done else "")
    emit_work_items(items, outcome.done, args.output_dir)
    return 0


def cmd_check(args) -> int:
    from nlfs.evolution.controller import check_failure_budget
    from nlfs.runs import open_run

    pod_logging()
    run = open_run(args.run)
    state = check_failure_budget(run, args.max_failed_evaluations)
    if state is None:
        logging.getLogger("nlfs.controller").info("%s: not started", run.uri)
    else:
        logging.getLogger("nlfs.controller").info(
            "%s: phase %s, %d evaluations, %d lost (budget %d)%s", run.uri, state.phase,
            state.counters.evaluations, state.counters.lost, args.max_failed_evaluations,
            ", search done" if state.done else "")
    return 0


def cmd_search(args) -> int:
    from nlfs.evolution.config import load_config
    from nlfs.local import default_workers, format_summary, search
    from nlfs.runs import open_run
    from nlfs.store import layout

    run = open_run(args.store)
    config = None
    if args.config is not None:
        config = load_config(args.config)
    elif run.read_state()[0] is None and not run.store.exists(layout.config_key()):
        config = load_config("default")
    try:
        summary = search(run.uri, config, args.workers or default_workers(), progress=args.progress,
                         baseline=args.baseline)
    except KeyboardInterrupt:
        print(f"nlfs search: interrupted; `nlfs search --store {run.uri}` resumes it", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0
