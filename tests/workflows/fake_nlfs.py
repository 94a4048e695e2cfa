"""A stand-in `nlfs` that implements only the CLI contract the WorkflowTemplates rely on.

Strict argparse with exactly the contract's flags (docs/kubernetes.md, "CLI contract"), a run as a
plain directory, instant "training". The contract tests run the templates against it to prove the
templates' plumbing (items -> withParam -> evaluate, done -> next/continuation/finalize), and
against the real `nlfs` to prove the CLI keeps the same contract. Every call is appended to
$FAKE_NLFS_LOG as JSON.

The failure contract, as the real CLI keeps it:
- `controller step --max-failed-evaluations N` (default 10): a genome of the pending batch handed
  out twice without a result is recorded as a failed evaluation (a `failed` result record) and
  replaced by a new child; once more than N evaluations are recorded so, the step exits 2 with
  `nlfs: error: failure budget exhausted: ...`, or with `--stop-as-output` writes done=stopped and
  exits 0.
- `controller check RUN --max-failed-evaluations N`: that same line and exit 2 once the budget is
  spent, else exit 0.
- `evaluate`: a loss that fails (genomes in $FAKE_NLFS_FAILING_LOSSES) is a `failed` record and
  exit 0; a bug (genomes in $FAKE_NLFS_CRASH) exits 1 and writes nothing.
- Errors go to stderr and to $NLFS_TERMINATION_LOG, as nlfs/cli/main.py writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

BUDGET = 6  # evaluations in a fake search; 3 genomes per round in a fake transfer protocol


def _log(argv: list[str]) -> None:
    if os.environ.get("FAKE_NLFS_LOG"):
        with open(os.environ["FAKE_NLFS_LOG"], "a") as f:
            f.write(json.dumps(argv) + "\n")


def _fail(message: str) -> None:
    line = f"nlfs: error: {message}"
    print(line, file=sys.stderr)
    if os.environ.get("NLFS_TERMINATION_LOG"):
        Path(os.environ["NLFS_TERMINATION_LOG"]).write_text(line)
    sys.exit(2)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


class _Stopped(Exception):
    """The failure budget is spent."""


def _write_outputs(items: list, done: bool | str, output_dir: str | None) -> None:
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "items.json").write_text(json.dumps(items))
        # With a newline, as `echo` writes it: Argo trims one from an output parameter.
        text = done if isinstance(done, str) else "true" if done else "false"
        (Path(output_dir) / "done").write_text(text + "\n")
    print(json.dumps(items))


def _check_budget(run: Path, state: dict, max_failed: int) -> None:
    if state["failed"] > max_failed:
        raise _Stopped(f"failure budget exhausted: {state['failed']} evaluations of {run} failed, more "
                       f"than --max-failed-evaluations {max_failed}")


def _gid(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]


def _plan(run: Path, state_name: str, workers: int, per_item: int, stage_of, limit: int, profile_of=None,
          max_failed: int | None = None):
    """Shared by controller step and transfer --plan: fold, then propose (idempotently)."""
    state_path = run / state_name
    run.mkdir(parents=True, exist_ok=True)
    state = json.loads(state_path.read_text()) if state_path.exists() else {
        "batch": 0, "pending": [], "done": 0, "handed": {}, "failed": 0, "children": 0}

    def result(stage: str, genome: str) -> Path:
        return run / "results" / stage / f"{genome}.json"

    pending = state["pending"]
    if max_failed is not None:
        for stage, genome in pending:
            if not result(stage, genome).exists() and state["handed"].get(genome, 0) >= 2:
                path = result(stage, genome)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"genome_id": genome, "stage": stage, "status": "failed",
                                            "reason": "handed out twice without a result"}))
                state["failed"] += 1
        state_path.write_text(json.dumps(state))
        _check_budget(run, state, max_failed)
    if pending and all(result(stage, g).exists() for stage, g in pending):
        ok = [g for stage, g in pending if json.loads(result(stage, g).read_text()).get("status") != "failed"
              or max_failed is None]
        state["done"] += len(ok)  # a failed child is re-mutated: its slot comes back in the next batch
        state["pending"] = pending = []
    if not pending and state["done"] < limit:
        state["batch"] += 1
        n = min(workers, limit - state["done"])
        pending = [[stage_of(state["batch"]), _gid(run, state["children"] + i)] for i in range(n)]
        state["children"] += n
        state["pending"] = pending
    missing = [[stage, g] for stage, g in pending if not result(stage, g).exists()]
    for _, genome in missing:
        state["handed"][genome] = state["handed"].get(genome, 0) + 1
    state_path.write_text(json.dumps(state))
    items = []
    for i in range(0, len(missing), per_item):
        chunk = missing[i:i + per_item]
        item = {"run": str(run), "batch": state["batch"], "stage": chunk[0][0], "genomes": [g for _, g in chunk]}
        if profile_of:
            item["profile"], item["set"] = profile_of(state["batch"]), ["epochs=1"]
        items.append(item)
    exhausted = state["done"] + len(pending) >= limit
    return items, exhausted


def main(argv: list[str]) -> int:
    _log(argv)
    parser = argparse.ArgumentParser(prog="nlfs")
    verbs = parser.add_subparsers(dest="verb", required=True)

    init = verbs.add_parser("init")
    init.add_argument("run")
    init.add_argument("--config", required=True)

    controller = verbs.add_parser("controller").add_subparsers(dest="action", required=True)
    step = controller.add_parser("step")
    step.add_argument("run")
    step.add_argument("--workers", type=_positive, default=1)
    step.add_argument("--genomes-per-item", type=_positive, default=1)
    step.add_argument("--max-failed-evaluations", type=_non_negative, default=10)
    step.add_argument("--output-dir")
    step.add_argument("--stop-as-output", action="store_true")
    check = controller.add_parser("check")
    check.add_argument("run")
    check.add_argument("--max-failed-evaluations", type=_non_negative, required=True)

    evaluate = verbs.add_parser("evaluate")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--loss")
    source.add_argument("--run")
    evaluate.add_argument("--stage")
    evaluate.add_argument("--genome", action="append")
    evaluate.add_argument("--profile")
    evaluate.add_argument("--set", action="append", default=[])
    evaluate.add_argument("--out")

    transfer = verbs.add_parser("transfer")
    transfer.add_argument("run")
    transfer.add_argument("--plan", action="store_true", required=True)
    transfer.add_argument("--workers", type=_positive, default=1)
    transfer.add_argument("--genomes-per-item", type=_positive, default=1)
    transfer.add_argument("--output-dir")

    args = parser.parse_args(argv)
    for override in getattr(args, "set", []) or []:
        if "=" not in override:
            _fail(f"--set {override!r}: expected KEY=VALUE")

    if args.verb == "init":
        run = Path(args.run)
        config = run / "config.yaml"
        if config.exists() and config.read_text() != args.config:
            _fail(f"{args.run} was initialised with another config")
        run.mkdir(parents=True, exist_ok=True)
        config.write_text(args.config)
        return 0

    if args.verb in ("controller", "transfer"):
        run = Path(args.run)
        if not (run / "config.yaml").exists() and args.verb == "controller":
            _fail(f"{args.run} is not initialised (nlfs init)")
        if args.verb == "controller" and args.action == "check":
            state = run / "state.json"
            try:
                if state.exists():
                    _check_budget(run, json.loads(state.read_text()), args.max_failed_evaluations)
            except _Stopped as stop:
                _fail(str(stop))
            return 0
        if args.verb == "controller":
            try:
                items, done = _plan(run, "state.json", args.workers, args.genomes_per_item,
                                    lambda b: "initial" if b == 1 else "main", BUDGET,
                                    max_failed=args.max_failed_evaluations)
            except _Stopped as stop:
                if not args.stop_as_output:
                    _fail(str(stop))
                items, done = [], "stopped"
        else:
            items, done = _plan(run, "transfer-state.json", args.workers, args.genomes_per_item,
                                lambda b: f"phase{b}", 3 * 2, lambda b: f"large-{b}")
        _write_outputs(items, done, args.output_dir)
        return 0

    if args.verb == "evaluate":
        if args.loss:
            if not args.profile:
                _fail("--loss needs --profile")
            print(json.dumps({"loss": args.loss, "profile": args.profile, "status": "ok"}))
            return 0
        if not args.genome or not args.stage:
            _fail("--run needs --stage and --genome")
        failing = set(filter(None, os.environ.get("FAKE_NLFS_FAILING_LOSSES", "").split(",")))
        crashing = set(filter(None, os.environ.get("FAKE_NLFS_CRASH", "").split(",")))
        for genome in args.genome:
            if genome in crashing:
                print(f"Traceback (most recent call last): a bug while training {genome}", file=sys.stderr)
                return 1
            path = Path(args.run) / "results" / args.stage / f"{genome}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # create-only
                status = "failed" if genome in failing else "ok"
                path.write_text(json.dumps({"genome_id": genome, "stage": args.stage, "profile": args.profile,
                                            "set": args.set, "status": status,
                                            "fitness": None if status == "failed" else 0.5}))
            print(f"evaluate genome={genome} epoch=1 val_accuracy=0.5", file=sys.stderr)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
