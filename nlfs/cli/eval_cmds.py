"""CLI verbs `evaluate` and `data stage`: parsing and dispatch only; the work is in
`nlfs.evaluate` and `nlfs.train.staging`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlfs.cli.common import positive_int, seed


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="train with a loss under a profile and print the result record",
        description="Evaluate losses: by name or genome file (--loss), or genomes of a run's store "
                    "(--run/--stage/--genome, results written create-only to results/<stage>/<id>.json). "
                    "A one-line summary per loss goes to stderr, records (JSON, one per line when "
                    "several) to stdout or --out.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--loss", action="append", metavar="NAME_OR_FILE",
                        help="a registered loss name or a genome JSON file (repeatable)")
    source.add_argument("--run", metavar="RUN_URI", help="a run's store: a directory or s3://bucket/prefix")
    p.add_argument("--genome", action="append", metavar="ID", help="with --run: a genome id (repeatable)")
    p.add_argument("--stage", default=None,
                   help="the result stage (with --run: required; its profile comes from the run's config, and "
                        "the main stage of a gated search trains its gate first)")
    p.add_argument("--profile", default=None, metavar="NAME_OR_YAML",
                   help="a built-in profile name or a YAML file (default: tiny; with --run: the config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a profile field, e.g. optimizer.lr=0.01 (repeatable)")
    p.add_argument("--seed", type=seed, default=None, help="training seed (default: the profile's)")
    p.add_argument("--cohort", type=_cohort, default=None, metavar="auto|N",
                   help="with --run: train N genomes at once on the device, or auto (1 on CPU; default: "
                        "the profile's runtime.cohort, for the gate's profile too)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the record(s) here, not stdout")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    p.set_defaults(func=_evaluate)

    data = subparsers.add_parser("data", help="datasets: stage them into object storage")
    data_sub = data.add_subparsers(dest="data_verb", metavar="VERB")
    data_sub.required = True
    stage = data_sub.add_parser(
        "stage", help="upload a dataset's files into a store once, for pods without internet",
        description="Put the files of dataset NAME (torchvision's on-disk format) under <URI>/<NAME>/ "
                    "with a manifest; evaluation then fetches them into its local cache.")
    stage.add_argument("name", help="dataset name, e.g. cifar10")
    stage.add_argument("--to", required=True, metavar="URI", help="the datasets store: a directory or s3://bucket/prefix")
    stage.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                       help="local root holding the files (default: the cache; see --download)")
    stage.add_argument("--download", action="store_true", help="download with torchvision first (needs internet)")
    stage.set_defaults(func=_data_stage)


def _cohort(text: str):
    """argparse type of --cohort: "auto" or a positive integer."""
    return "auto" if text == "auto" else positive_int(text)


def _summary(record) -> str:
    fitness = "none" if record.fitness is None else f"{record.fitness:.4f}"
    reason = f" ({record.reason})" if record.reason else ""
    return (f"{record.genome_id} {record.stage} {record.status} fitness {fitness} "
            f"{record.seconds:.1f}s {record.profile} [{record.loss[:60]}]{reason}")


def _evaluate(args: argparse.Namespace) -> int:
    from nlfs.errors import NlfsError
    from nlfs.formats import parse_overrides
    from nlfs.train.profiles import load_profile

    overrides = parse_overrides(args.overrides)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.run:
        if not args.genome or not args.stage:
            raise NlfsError("--run needs --stage and at least one --genome")
        from nlfs.evaluate import StagePlan, evaluate_in_run, stage_plan
        from nlfs.store import open_store

        store = open_store(args.run)
        plan = (StagePlan(load_profile(args.profile, overrides)) if args.profile
                else stage_plan(store, args.stage, overrides))
        records = evaluate_in_run(store, args.stage, args.genome, plan, seed=args.seed, log=log, cohort=args.cohort)
    else:
        if args.genome:
            raise NlfsError("--genome needs --run; give genome files with --loss")
        if args.cohort is not None:
            raise NlfsError("--cohort goes with --run (the genomes of a run's stage)")
        from nlfs.evaluate import evaluate, resolve_loss

        profile = load_profile(args.profile or "tiny", overrides)
        for name in args.loss:
            resolve_loss(name)  # every name checked before any training
        records = [evaluate(name, profile, stage=args.stage or "main", seed=args.seed, log=log)
                   for name in args.loss]
    for record in records:
        print(_summary(record), file=sys.stderr)
    text = (records[0].to_json() + "\n") if len(records) == 1 else "".join(
        r.model_dump_json() + "\n" for r in records)
    if args.out is not None:
        try:
            args.out.write_text(text)
        except OSError as err:
            raise NlfsError(f"--out {args.out}: {err.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0


def _data_stage(args: argparse.Namespace) -> int:
    from nlfs.train.staging import stage_dataset

    count, total = stage_dataset(args.name, args.to, source=args.source, download=args.download)
    print(f"staged {args.name}: {count} files, {total / 1e6:.1f} MB -> {args.to.rstrip('/')}/{args.name}/",
          file=sys.stderr)
    return 0
