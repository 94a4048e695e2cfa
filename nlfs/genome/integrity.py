"""The integrity check: is a genome worth training, which sign does it take, and is it new?

The paper's probe rules (METHOD.md 2) run first, on the 2-class probe computed in numpy as the
authors' TensorFlow code computes it (float32 operators, float32 class sum), with the sign
corrections of METHOD.md 7; then the checks the public method lacks: finite values on random
multi-class inputs and a finite, non-zero gradient with respect to the logits. Every rejection
carries a named reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from nlfs.genome.graph import Genome
from nlfs.genome.program import logit_gradient, plan, run_program, softmax

PROBE_SIZE = 1000
PROBE_LOW, PROBE_HIGH = 1e-7, 1 - 1e-7
EXTREMUM_WINDOW = range(490, 510)  # rows 490..509: an extremum near p = 0.5
MAX_ZERO_DIFFS = 10
MAX_SIGN_CHANGES = 2  # circularly: at most one turning point
DUPLICATE_DISTANCE = 0.01
NORMALISE_MIN_RANGE = 1e-4  # the authors' Loss.normalize leaves a narrower curve unscaled

# Reasons, in the order the checks run. `accepted` verdicts have reason None.
REASONS = {
    "cycle": "the active graph has a cycle",
    "missing_leaf": "y or p is not reachable from the output",
    "nonfinite_probe": "NaN or Inf on the probe",
    "extremum_at_half": "the probe curve has its minimum or maximum near p = 0.5",
    "constant": "the probe curve is constant",
    "plateau": f"the probe curve has more than {MAX_ZERO_DIFFS} flat steps",
    "turning_points": "the probe curve has more than one turning point",
    "duplicate_expression": "the same function as a population member",
    "duplicate_phenotype": f"probe curve within {DUPLICATE_DISTANCE} of a population member's",
    "nonfinite_random": "NaN or Inf on random multi-class inputs",
    "nonfinite_gradient": "NaN or Inf gradient with respect to the logits",
    "zero_gradient": "gradient with respect to the logits is identically zero",
}


def _probe_leaves() -> tuple[np.ndarray, np.ndarray]:
    """y and p of the probe, [1000, 2] float32, as the authors build them (`Loss.check_integrity`
    in loss_function_evolution.py): q and 1 - q in float64, the pair then cast to float32. Cast
    first, 1 - q would be another number where q is near 1 (1.19e-7 for 1 - float32(1 - 1e-7),
    not 1e-7): the last rows, where log p lives, would differ."""
    q = np.linspace(PROBE_LOW, PROBE_HIGH, PROBE_SIZE, dtype=np.float64)
    p = np.stack([q, 1 - q], axis=1).astype(np.float32)  # true-class probability 1 - q falls from ~1 to ~0
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


def _gradient_inputs(seed: int = 1, batch: int = 16, classes: int = 10):
    """Logits [16, 10] ~ N(0, 3^2), their softmax and log-softmax, and one-hot labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(batch, classes)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, size=batch)]
    return (logits, y, *softmax(logits))


GRADIENT_LOGITS, _GRADIENT_Y, _GRADIENT_P, _GRADIENT_LOGP = _gradient_inputs()


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


def _smooth_probe(y: np.ndarray, ls: float) -> np.ndarray:
    """The probe's smoothed labels as the authors' `Loss.call` computes them: every term in
    float32, the smoothing itself a float32 number (identical to `_smooth` at ls = 0)."""
    if not ls:
        return y
    ls32 = np.float32(ls)
    return y * (np.float32(1) - ls32) + ls32 / np.float32(y.shape[1])


def probe_curve(genome: Genome) -> np.ndarray:
    """L: the per-sample loss before the flip, the float32 sum over the 2 classes of t on the
    probe. Shape [1000], float32."""
    with np.errstate(all="ignore"):
        return _probe_curve(genome)


def _memo(inputs: str, ls: float) -> dict:
    """The memo of leaf-only values for one set of fixed inputs (see `run_program`)."""
    return _MEMOS.setdefault((inputs, ls), {})


_MEMOS: dict[tuple[str, float], dict] = {}


def _probe_curve(genome: Genome) -> np.ndarray:
    pl = plan(genome, logp=False)
    ls = genome.label_smoothing
    t = run_program(*pl.numpy, {"y": _smooth_probe(_PROBE_Y, ls), "p": _PROBE_P},
                    memo=_memo("probe", ls), memo_keys=pl.memo_keys)
    # The authors' tf.reduce_sum(t, axis=-1) in float32 (Loss.call): at large values two
    # neighbouring rows can round to the same sum, a flat step the rules count. A float64
    # sum would see a strictly monotone curve there.
    return t[:, 0] + t[:, 1]


def phenotype(curve: np.ndarray, sign: int) -> np.ndarray:
    """The flipped probe curve min-max normalised to [0, 1]; shape [1000], float32 for the
    probe's float32 curve.

    As the authors' `Loss.normalize` (loss_function_evolution.py): a curve whose range is
    below NORMALISE_MIN_RANGE is left unscaled, so near-constant curves are compared by
    their values rather than by their rounding noise blown up to [0, 1].
    """
    flipped = curve if sign == 1 else -curve
    lo, hi = flipped.min(), flipped.max()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if abs(hi - lo) < NORMALISE_MIN_RANGE:
            return flipped
        return (flipped - lo) / (hi - lo)


def curve_verdict(curve: np.ndarray) -> Verdict:
    """The paper's probe rules (METHOD.md 2, steps 1-3) applied to L, with the sign
    corrections of METHOD.md 7. `curve`: L, shape [1000] (float32, as `probe_curve` gives it).

    The authors' `Loss.check_integrity` (loss_function_evolution.py), in its order: the
    extremum window, the strictly monotone curves, then the flat steps and turning points of
    sign(diff(L)). Where nlfs departs from it (each a correction of METHOD.md 7):
    - a non-finite L is rejected (the authors' rules have no such test);
    - the start of a one-turning-point curve is read at its first difference, not the third;
    - a curve monotone apart from flat steps takes the sign of the strictly monotone rule.
    """
    with np.errstate(all="ignore"):  # an infinite L overflows its differences
        return _curve_verdict(curve)


def _curve_verdict(curve: np.ndarray) -> Verdict:
    # A float64 sum of float32 values cannot overflow, so it is finite iff every value is.
    if not np.isfinite(curve.sum(dtype=np.float64)):
        return Verdict(False, "nonfinite_probe")
    diffs = curve[1:] - curve[:-1]  # in L's own precision: a float32 tie is a flat step
    # A strictly monotone curve has its extrema at the ends, outside the window, so the
    # monotone rules may run before the extremum rule without changing any verdict.
    if (diffs > 0).all():
        return Verdict(True, sign=1)
    if (diffs < 0).all():
        return Verdict(True, sign=-1)
    # argmin and argmax take the first of equal values, as the authors' minimum of L and
    # minimum of -L do.
    if int(np.argmin(curve)) in EXTREMUM_WINDOW or int(np.argmax(curve)) in EXTREMUM_WINDOW:
        return Verdict(False, "extremum_at_half")
    signs = np.sign(diffs)
    zeros = int(np.count_nonzero(signs == 0))
    if zeros == len(signs):
        return Verdict(False, "constant")
    if zeros > MAX_ZERO_DIFFS:
        return Verdict(False, "plateau")
    filled = fill_zero_signs(signs) if zeros else signs
    # Counted circularly, as the authors count them: the last sign meets the first.
    changes = int(np.count_nonzero(filled[1:] != filled[:-1])) + int(filled[-1] != filled[0])
    if changes > MAX_SIGN_CHANGES:
        return Verdict(False, "turning_points")
    if changes == 0:
        # Correction (METHOD.md 7): monotone apart from 1..10 flat steps. The authors send
        # it to the turning-point branch below, which keeps a falling curve and flips a
        # rising one: the sign that rewards wrong answers either way. It takes the sign of
        # the strictly monotone rule instead: rising +1, falling -1.
        return Verdict(True, sign=1 if filled[0] > 0 else -1)
    # One turning point. Starts decreasing (a U) keeps s = +1; starts increasing (an
    # inverted U) is flipped. Correction (METHOD.md 7): the start is the first difference,
    # and where the curve begins flat, the direction it first moves in. The authors read the
    # third difference of their circularly filled signs: a turning point within the first
    # two steps, or three flat steps at the start (filled from the curve's end), gives them
    # the end's direction, and the sign that makes the curve fall as the true class becomes
    # unlikely.
    start = signs[int(np.flatnonzero(signs)[0])] if zeros else signs[0]
    return Verdict(True, sign=1 if start < 0 else -1)


def fill_zero_signs(signs: np.ndarray) -> np.ndarray:
    """Each 0 of `signs` [n] replaced by the nearest non-zero sign before it, circularly: zeros
    at the start take the last non-zero sign. The result of the authors' loop in
    `Loss.check_integrity` (every zero takes the sign on its left, the first the last one's,
    repeated until none is left), in one pass. At least one sign must be non-zero.

    The fill decides no verdict on its own: filling a run of zeros from either neighbour
    leaves the number of circular sign changes as it is.
    """
    n = len(signs)
    nonzero = np.flatnonzero(signs)
    # The index of the latest non-zero at or before each position; before the first, the
    # last non-zero (circularly).
    idx = np.maximum.accumulate(np.where(signs != 0, np.arange(n), -1))
    idx[idx < 0] = nonzero[-1]
    return signs[idx]


def numeric_ok(genome: Genome) -> bool:
    """Finite t on random 10-class softmax outputs and one-hot labels."""
    with np.errstate(all="ignore"):
        return _numeric_ok(genome)


def _numeric_ok(genome: Genome) -> bool:
    pl = plan(genome, logp=False)
    ls = genome.label_smoothing
    t = run_program(*pl.numpy, {"y": _smooth(_RANDOM_Y, ls), "p": _RANDOM_P},
                    memo=_memo("random", ls), memo_keys=pl.memo_keys)
    return bool(np.isfinite(t).all())


def gradient_problem(genome: Genome, readings: tuple[str, ...] = ("log_softmax",)) -> str | None:
    """None if d loss / d logits is finite and not identically zero on random inputs, under
    every reading of log(p) in `readings` (`nlfs.genome.compile.INPUTS`, a profile's
    `loss.inputs`: the search passes each one its stages train with).

    The gradient is numpy's mirror of torch autograd through `GenomeLoss`, on 16 random 10-class
    rows; tests hold it to torch's.
    """
    with np.errstate(all="ignore"):
        return _gradient_problem(genome, readings)


def _gradient_problem(genome: Genome, readings: tuple[str, ...]) -> str | None:
    ls = genome.label_smoothing
    y = _smooth(_GRADIENT_Y, ls)
    for reading in readings:
        grad = logit_gradient(genome, y, _GRADIENT_P, _GRADIENT_LOGP, memo=_memo("gradient", ls),
                              log_softmax=reading == "log_softmax")
        if grad is None or not grad.any():  # NaN counts as non-zero, as in torch's `grad != 0`
            return "zero_gradient"
        if not np.isfinite(grad).all():
            return "nonfinite_gradient"
    return None


class KnownLosses:
    """What the duplicate rule compares against: content ids and phenotypes of population members.

    Also AutoML-Zero's functional-equivalence cache in miniature: `match(phenotype)` finds a
    member whose probe curve is (nearly) the same function.
    """

    def __init__(self, genomes: Iterable[Genome] = ()):
        self.ids: list[str] = []
        self._id_set: set[str] = set()
        self._unmatchable: set[str] = set()
        # Phenotypes as rows of buffers that grow by doubling, with their block sums.
        self._rows = np.empty((0, PROBE_SIZE))
        self._blocks = np.empty((0, PROBE_SIZE // _BLOCK))
        self._totals = np.empty(0)
        for g in genomes:
            self.add(g)

    def add(self, genome: Genome, pheno: np.ndarray | None = None) -> None:
        if pheno is None:
            pheno = phenotype(probe_curve(genome), genome.sign)
        n = len(self.ids)
        if n == len(self._rows):
            capacity = max(16, 2 * n)
            rows, blocks = np.empty((capacity, PROBE_SIZE)), np.empty((capacity, self._blocks.shape[1]))
            rows[:n], blocks[:n] = self._rows[:n], self._blocks[:n]
            totals = np.empty(capacity)
            totals[:n] = self._totals[:n]
            self._rows, self._blocks, self._totals = rows, blocks, totals
        self._rows[n] = pheno
        self._blocks[n] = _block_sums(self._rows[n])
        self._totals[n] = self._blocks[n].sum()
        self.ids.append(genome.id)
        self._id_set.add(genome.id)
        if not np.isfinite(self._rows[n]).all():  # never within any distance: see duplicate()
            self._unmatchable.add(genome.id)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, genome_id: str) -> bool:
        return genome_id in self._id_set

    def duplicate(self, genome: Genome, pheno: np.ndarray) -> str | None:
        """"duplicate_expression" if a member has the genome's id, else "duplicate_phenotype"
        if one is within DUPLICATE_DISTANCE, else None. `pheno` is the genome's phenotype.

        The same id means the same function, hence the same phenotype, at distance 0; so the
        id (the costlier test) is only computed once the phenotype has found a neighbour,
        except for members whose phenotype is not finite and so never matches.

        The authors' "same expression" (`Loss.mutate` in loss_function_evolution.py) compares
        `Loss.msg`, the infix string of the active graph as written: operand order counts,
        node numbering, the flip and label smoothing do not. Every such match is an id match
        here (the check gives one function one sign, and a population shares its smoothing);
        the id also matches operands of add, mul, max and min written the other way round,
        which the authors' phenotype test rejects anyway, at distance 0. So the verdict is
        theirs; only the reason can read "expression" where theirs would be the phenotype.
        """
        near = self.match(pheno)
        if near is None and not self._unmatchable:
            return None
        if genome.id in self._id_set:
            return "duplicate_expression"
        return None if near is None else "duplicate_phenotype"

    def match(self, pheno: np.ndarray) -> str | None:
        """The id of the nearest known loss if its phenotype is within DUPLICATE_DISTANCE, else None."""
        n = len(self.ids)
        if not n:
            return None
        # Cauchy-Schwarz: for a block of m values, (sum of differences)^2 / m <= sum of squared
        # differences. Summed over blocks this bounds the squared distance from below: first
        # with one block (the totals), then with blocks of 20, each at a fraction of the cost
        # of the distance. Only members neither bound rules out are measured exactly, so the
        # answer is that of the plain distance. (The slack covers rounding in the bounds.)
        limit = DUPLICATE_DISTANCE**2 * (1 + 1e-6)
        blocks = _block_sums(pheno)
        near = np.flatnonzero((self._totals[:n] - blocks.sum()) ** 2 <= limit * PROBE_SIZE)
        if len(near):
            near = near[((self._blocks[near] - blocks) ** 2).sum(axis=1) <= limit * _BLOCK]
        if not len(near):
            return None
        dist = np.sqrt(((self._rows[near] - pheno) ** 2).sum(axis=1))
        k = int(np.argmin(dist))
        return self.ids[near[k]] if dist[k] <= DUPLICATE_DISTANCE else None


_BLOCK = 20  # values per block of the duplicate rule's lower bound; divides PROBE_SIZE


def _block_sums(pheno: np.ndarray) -> np.ndarray:
    return pheno.reshape(-1, _BLOCK).sum(axis=1)


def check(genome: Genome, known: KnownLosses | None = None, *,
          readings: tuple[str, ...] = ("log_softmax",)) -> Verdict:
    """Run every check in order; the first failure is the reason. `known`: the population;
    `readings`: how training will read log(p) (the search passes those of its stages' profiles).

    The paper's rules come first (probe rules, then duplicates, METHOD.md 2), then the checks
    it lacks, on random inputs: the cheap population test spares mutants that only repeat a
    member the cost of the gradient.
    """
    problem = genome.structural_problem()
    if problem:
        return Verdict(False, problem)
    with np.errstate(all="ignore"):
        curve = _probe_curve(genome)
        verdict = _curve_verdict(curve)
        if not verdict.accepted:
            return verdict
        sign = verdict.sign
        pheno = phenotype(curve, sign)
        signed = genome.with_sign(sign)
        if known is not None and len(known):
            duplicate = known.duplicate(signed, pheno)
            if duplicate:
                return Verdict(False, duplicate, sign, pheno)
        if not _numeric_ok(genome):
            return Verdict(False, "nonfinite_random", sign, pheno)
        problem = _gradient_problem(signed, readings)
        if problem:
            return Verdict(False, problem, sign, pheno)
    return Verdict(True, None, sign, pheno)
