"""`nlfs show`, `nlfs check`, `nlfs random`: a genome as text and picture, its verdict, new ones.

Only the genome format is imported up front; the integrity check (numpy, scipy), rendering
(sympy) and plotting (matplotlib) load inside the handlers, and torch never, so a bad file
is answered at once.
"""

from __future__ import annotations

import argparse
import sys

from nlfs.cli.common import positive_int, seed
from nlfs.errors import NlfsError


def register(subparsers) -> None:
    show = subparsers.add_parser(
        "show", help="a loss as text (infix, simplified, LaTeX), its id and integrity verdict",
        description="Print a loss genome (a registry name such as cross_entropy, or a genome file) "
                    "as infix text, a sympy-simplified form and LaTeX, with its content id and "
                    "the integrity check's verdict.")
    show.add_argument("loss", metavar="NAME_OR_FILE", help="registry name or genome JSON file")
    show.add_argument("--plot", metavar="FILE.png",
                      help="also draw its probe curve beside cross-entropy's into this PNG")
    show.set_defaults(func=cmd_show)

    check = subparsers.add_parser(
        "check", help="run the integrity check on a genome file",
        description="Exit 0 if the genome passes the integrity check, 1 if it is rejected (the "
                    "reason on one line), 2 if the file is not a usable genome.")
    check.add_argument("file", metavar="FILE", help="genome JSON file")
    check.set_defaults(func=cmd_check)

    rand = subparsers.add_parser(
        "random", help="print random genomes that pass the integrity check, as JSON lines",
        description="Draw random genomes of the search space until COUNT pass the integrity "
                    "check with no duplicates among them; print each, with the sign the check "
                    "chose, as one JSON line. The same seed gives the same genomes.")
    rand.add_argument("--seed", type=seed, required=True, help="random seed (0..2**32-1)")
    rand.add_argument("--count", type=positive_int, default=1, help="how many genomes (default 1)")
    rand.set_defaults(func=cmd_random)


# ---- check ---------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """0 accepted, 1 rejected (reason on stdout), 2 malformed (NlfsError, via main)."""
    from nlfs.genome.graph import Genome

    genome = Genome.from_file(args.file).validate(source=args.file)
    from nlfs.genome.integrity import check

    verdict = check(genome)
    if verdict.accepted:
        print(f"{args.file}: accepted, sign {verdict.sign:+d}, id {genome.with_sign(verdict.sign).id}")
        return 0
    print(f"{args.file}: {verdict.message}")
    return 1


# ---- random --------------------------------------------------------------------------------
MAX_DRAWS_PER_GENOME = 10_000  # about 7% of draws pass; this bound is never reached in practice


def cmd_random(args: argparse.Namespace) -> int:
    for genome in accepted_random_genomes(args.seed, args.count):
        sys.stdout.write(genome.to_json() + "\n")
    sys.stdout.flush()
    return 0


def accepted_random_genomes(seed: int, count: int) -> list:
    """`count` random genomes that pass the check, signed, none a duplicate of another."""
    import numpy as np

    from nlfs.genome.mutate import random_accepted

    found = random_accepted(np.random.default_rng(seed), count, count * MAX_DRAWS_PER_GENOME)
    if len(found) < count:
        raise NlfsError(f"only {len(found)} of {count} genomes found in {count * MAX_DRAWS_PER_GENOME} draws")
    return found


# ---- show ----------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from nlfs.formats import printable
    from nlfs.genome.integrity import check
    from nlfs.genome.render import describe, render
    from nlfs.losses import get_genome

    genome = get_genome(args.loss)
    verdict = check(genome)
    shown = render(genome)  # simplified once, within a time limit
    simple = (f"{shown.text}   (p in (0, 1), y in [0, 1])" if shown.simplified
              else f"(not simplified: {shown.note}; t as written is in the loss line)")
    # The name is the file's to choose: escape sequences and newlines in it must not reach the
    # terminal or forge lines of this output.
    name = printable(genome.name or args.loss)
    rows = [
        ("name", name),
        ("loss", describe(genome)),
        ("t simplified", simple),
        ("latex", shown.latex),
        ("id", genome.id),
        ("integrity", _verdict_text(genome, verdict)),
    ]
    for key, value in rows:
        print(f"{key + ':':14s}{value}")
    if args.plot:
        _plot(genome, name, args.plot)
        print(f"{'plot:':14s}{printable(args.plot)}")
    return 0


def _verdict_text(genome, verdict) -> str:
    if not verdict.accepted:
        return verdict.message
    agrees = "as the genome has it" if verdict.sign == genome.sign else f"the genome has {genome.sign:+d}"
    return f"accepted, sign {verdict.sign:+d} ({agrees})"


def _plot(genome, label: str, path: str) -> None:
    """Draw the genome's probe curve (after its sign) beside cross-entropy's, raw and normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from nlfs.genome.integrity import PROBE_HIGH, PROBE_LOW, PROBE_SIZE, probe_curve
    from nlfs.losses import get_genome

    # Probe row i has true-class probability 1 - q_i (METHOD.md 2).
    p_true = 1 - np.linspace(PROBE_LOW, PROBE_HIGH, PROBE_SIZE)
    ce = get_genome("cross_entropy")
    curves = [(label, genome.sign * probe_curve(genome), dict(color="C0", lw=2)),
              ("cross-entropy (reference)", ce.sign * probe_curve(ce),
               dict(color="0.2", lw=1.2, ls="--", zorder=3))]
    fig, (raw_ax, norm_ax) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for name, curve, style in curves:
        curve = np.where(np.isfinite(curve), curve, np.nan)
        raw_ax.plot(p_true, curve, label=name, **style)
        norm_ax.plot(p_true, _normalised(curve), label=name, **style)
    raw_ax.set(title="raw: sign * sum over classes of t", xlabel="true-class probability", ylabel="loss")
    norm_ax.set(title="normalised to [0, 1] (the phenotype)", xlabel="true-class probability",
                ylabel="loss (min-max normalised)")
    for ax in (raw_ax, norm_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Probe curve of {label} (id {genome.id}; 2 classes, {PROBE_SIZE} points)")
    try:
        fig.savefig(path, dpi=110)
    except OSError as err:
        raise NlfsError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        plt.close(fig)


def _normalised(curve):
    import numpy as np

    finite = curve[np.isfinite(curve)]
    if not len(finite) or finite.max() == finite.min():
        return curve * np.nan
    return (curve - finite.min()) / (finite.max() - finite.min())
