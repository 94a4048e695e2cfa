"""Pieces several verb modules share: argument types, pod logging, the work-item output."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    return _int_at_least(text, 0)


def seed(text: str) -> int:
    """argparse type: a random seed, 0..2**32-1 (`nlfs.formats.SEED_MAX`)."""
    from nlfs.errors import NlfsError
    from nlfs.formats import check_seed

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    except NlfsError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("seed ")) from None


def pod_logging(quiet: bool = False) -> None:
    """Our own lines at INFO on stderr (pod logs); libraries such as botocore only on trouble."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("nlfs").setLevel(logging.WARNING if quiet else logging.INFO)


def emit_work_items(items: list[dict], done: bool, output_dir: str | None, *, stopped: bool = False) -> None:
    """Print the items as one JSON list on stdout; with `output_dir`, also write `items.json`
    and `done`: exactly `true`, `false` or, for a search that stopped (its failure budget spent),
    `stopped` (Argo does not trim output parameters, and a step's `when` compares them as text)."""
    text = json.dumps(items)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "items.json"), "w") as fh:
            fh.write(text)
        with open(os.path.join(output_dir, "done"), "w") as fh:
            fh.write("stopped" if stopped else "true" if done else "false")
    print(text)
