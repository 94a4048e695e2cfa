"""The integrity check: is a genome worth training, which sign does it take, and is it new?

The paper's probe rules (METHOD.md 2) run first on a 2-class probe in numpy, then the checks
the public method lacks: finite values on random multi-class inputs and a finite, non-zero
gradient with respect to the logits. Every rejection carries a named reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from nlfs.genome.compile import flatten, run_program
from nlfs.genome.graph import Genome

PROBE_SIZE = 1000
PROBE_LOW, PROBE_HIGH = 1e-7, 1 - 1e-7
EXTREMUM_WINDOW = range(490, 510)  # rows 490..509: an extremum near p = 0.5
MAX_ZERO_DIFFS = 10
MAX_SIGN_CHANGES = 2  # circularly: at most one turning point
DUPLICATE_DISTANCE = 0.01

# Reasons, in the order the checks run. `accepted` verdicts have reason None.
REASONS = {
    "cycle": "the active graph has a cycle",
    "missing_leaf": "y or p is not reachable from the output",
    "nonfinite_probe": "NaN or Inf on the probe",
    "extremum_at_half": "the probe curve has its minimum or maximum near p = 0.5",
    "constant": "the probe curve is constant",
    "plateau": f"the probe curve has more than {MAX_ZERO_DIFFS} flat steps",
    "turning_points": "the probe curve has more than one turning point",
    "nonfinite_random": "NaN or Inf on random multi-class inputs",
    "nonfinite_gradient": "NaN or Inf gradient with respect to the logits",
    "zero_gradient": "gradient with respect to the logits is identically zero",
    "duplicate_expression": "the same function as a population member",
    "duplicate_phenotype": f"probe curve within {DUPLICATE_DISTANCE} of a population member's",
}


def _probe_leaves() -> tuple[np.ndarray, np.ndarray]:
    q = np.linspace(PROBE_LOW, PROBE_HIGH, PROBE_SIZE, dtype=np.float64).astype(np.float32)
    p = np.stack([q, 1 - q], axis=1)  # true-class probability 1 - q falls from ~1 to ~0
    y = np.zeros_like(p)
    y[:, 1] = 1
    return y, p


_PROBE_Y, _PROBE_P = _probe_leaves()


def _random_leaves(seed: int = 0, batch: int = 64, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(batch, classes)).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, size=batch)]
    return y, p


_RANDOM_Y, _RANDOM_P = _random_leaves()


@dataclass(frozen=True)
class Verdict:
    """accepted, or rejected with `reason` (a key of REASONS); `sign` is the chosen flip."""

    accepted: bool
    reason: str | None = None
    sign: int = 1
    phenotype: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> str:
        return "accepted" if self.accepted else f"rejected: {self.reason}: {REASONS[self.reason]}"


def _smooth(y: np.ndarray, ls: float) -> np.ndarray:
    return y * (1 - ls) + ls / y.shape[1] if ls else y


def probe_curve(genome: Genome) -> np.ndarray:
    """L: the per-sample loss before the flip, sum over 2 classes of t on the probe. Shape [1000]."""
    steps, out = flatten(genome, backend="numpy")
    with np.errstate(all="ignore"):
        t = run_program(steps, out, {"y": _smooth(_PROBE_Y, genome.label_smoothing), "p": _PROBE_P})
        return np.asarray(t, dtype=np.float64).sum(axis=1)


def phenotype(curve: np.ndarray, sign: int) -> np.ndarray:
    """The flipped probe curve min-max normalised to [0, 1]; shape [1000]."""
    flipped = sign * curve
    lo, hi = flipped.min(), flipped.max()
    return (flipped - lo) / (hi - lo)


def curve_verdict(curve: np.ndarray) -> Verdict:
    """The paper's probe rules (METHOD.md 2, steps 1-3) applied to L."""
    if not np.all(np.isfinite(curve)):
        return Verdict(False, "nonfinite_probe")
    if int(np.argmin(curve)) in EXTREMUM_WINDOW or int(np.argmax(curve)) in EXTREMUM_WINDOW:
        return Verdict(False, "extremum_at_half")
    diffs = np.diff(curve)
    if np.all(diffs > 0):
        return Verdict(True, sign=1)
    if np.all(diffs < 0):
        return Verdict(True, sign=-1)
    signs = np.sign(diffs)
    zeros = int(np.count_nonzero(signs == 0))
    if zeros == len(signs):
        return Verdict(False, "constant")
    if zeros > MAX_ZERO_DIFFS:
        return Verdict(False, "plateau")
    signs = _fill_zero_signs(signs)
    changes = int(np.count_nonzero(signs != np.roll(signs, -1)))  # circular
    if changes > MAX_SIGN_CHANGES:
        return Verdict(False, "turning_points")
    # Starts decreasing (a U) keeps s = +1; starts increasing (an inverted U) is flipped.
    return Verdict(True, sign=1 if signs[0] < 0 else -1)


def _fill_zero_signs(signs: np.ndarray) -> np.ndarray:
    """Replace each 0 by the previous non-zero sign (the next one for leading zeros)."""
    out = signs.copy()
    nonzero = np.flatnonzero(out)
    idx = np.maximum.accumulate(np.where(out != 0, np.arange(len(out)), -1))
    idx[idx < 0] = nonzero[0]
    return out[idx]


def numeric_ok(genome: Genome) -> bool:
    """Finite t on random 10-class softmax outputs and one-hot labels."""
    steps, out = flatten(genome, backend="numpy")
    with np.errstate(all="ignore"):
        t = run_program(steps, out, {"y": _smooth(_RANDOM_Y, genome.label_smoothing), "p": _RANDOM_P})
    return bool(np.all(np.isfinite(t)))


def gradient_problem(genome: Genome) -> str | None:
    """None if d loss / d logits is finite and not identically zero on random inputs."""
    import torch

    from nlfs.genome.compile import GenomeLoss

    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(16, 10, generator=gen) * 3).requires_grad_(True)
    target = torch.randint(0, 10, (16,), generator=gen)
    loss = GenomeLoss(genome)(logits, target)
    (grad,) = torch.autograd.grad(loss, logits, allow_unused=True)
    if grad is None or not bool(torch.any(grad != 0)):
        return "zero_gradient" if grad is None or bool(torch.all(torch.isfinite(grad))) else "nonfinite_gradient"
    if not bool(torch.all(torch.isfinite(grad))):
        return "nonfinite_gradient"
    return None


class KnownLosses:
    """What the duplicate rule compares against: content ids and phenotypes of population members.

    Also AutoML-Zero's functional-equivalence cache in miniature: `match(phenotype)` finds a
    member whose probe curve is (nearly) the same function.
    """

    def __init__(self, genomes: Iterable[Genome] = ()):
        self.ids: list[str] = []
        self._phenotypes: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        for g in genomes:
            self.add(g)

    def add(self, genome: Genome, pheno: np.ndarray | None = None) -> None:
        if pheno is None:
            pheno = phenotype(probe_curve(genome), genome.sign)
        self.ids.append(genome.id)
        self._phenotypes.append(np.asarray(pheno, dtype=np.float64))
        self._matrix = None

    def __len__(self) -> int:
        return len(self.ids)

    def match(self, pheno: np.ndarray) -> str | None:
        """The id of a known loss whose phenotype is within DUPLICATE_DISTANCE, else None."""
        if not self._phenotypes:
            return None
        if self._matrix is None:
            self._matrix = np.stack(self._phenotypes)
        dist = np.sqrt(((self._matrix - pheno) ** 2).sum(axis=1))
        k = int(np.argmin(dist))
        return self.ids[k] if dist[k] <= DUPLICATE_DISTANCE else None


def check(genome: Genome, known: KnownLosses | None = None) -> Verdict:
    """Run every check in order; the first failure is the reason. `known`: the population."""
    problem = genome.structural_problem()
    if problem:
        return Verdict(False, problem)
    curve = probe_curve(genome)
    verdict = curve_verdict(curve)
    if not verdict.accepted:
        return verdict
    if not numeric_ok(genome):
        return Verdict(False, "nonfinite_random", verdict.sign)
    signed = genome.with_sign(verdict.sign)
    grad_problem = gradient_problem(signed)
    if grad_problem:
        return Verdict(False, grad_problem, verdict.sign)
    pheno = phenotype(curve, verdict.sign)
    if known is not None and len(known):
        if signed.id in known.ids:
            return Verdict(False, "duplicate_expression", verdict.sign, pheno)
        if known.match(pheno) is not None:
            return Verdict(False, "duplicate_phenotype", verdict.sign, pheno)
    return Verdict(True, None, verdict.sign, pheno)

