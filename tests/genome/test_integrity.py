"""The integrity check: METHOD.md section 2's probe rules and duplicate rule, plus the numeric
and gradient checks the paper lacks. Every rejection reason has a hand-built genome here.

The gradient check runs in numpy (a reverse pass that mirrors torch autograd); the last tests
hold it to torch autograd itself on many genomes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from genome_helpers import accepted_random, genome, mutants, structurally_valid_genomes
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.genome import REASONS, KnownLosses, check, mutate, probe_curve
from nlfs.genome.compile import GenomeLoss, flatten, run_program
from nlfs.genome.integrity import (
    _GRADIENT_LOGP, _GRADIENT_P, _GRADIENT_Y, _PROBE_P, _PROBE_Y, DUPLICATE_DISTANCE, EXTREMUM_WINDOW,
    GRADIENT_LOGITS, MAX_SIGN_CHANGES, MAX_ZERO_DIFFS, NORMALISE_MIN_RANGE, _smooth, curve_verdict,
    fill_zero_signs, gradient_problem, phenotype)
from nlfs.genome.program import logit_gradient, plan, reverse_pass, softmax_backward
from nlfs.losses import get_genome

CE = get_genome("cross_entropy")

# Constants the space can build: sigmoid(1) = 0.731, sigmoid(-1) = 0.269.
# With label smoothing 0.9 the probe's y is (0.45, 0.55) but a 10-class row's y is at most 0.19,
# so relu(y - 0.269) is positive on the probe and exactly 0 on random inputs: a way to build
# genomes that pass every probe rule and then fail on random inputs.
SMOOTHED_GATE = [("sigmoid", "-1"), ("sub", "y", 0), ("relu", 1)]  # node 2 = relu(y - 0.269)

REJECTED = {
    "cycle": genome(("log", 1), ("mul", "y", 0)),
    "missing_leaf": genome(("log", "p"), ("square", 0)),
    "nonfinite_probe": genome(("recip", "p"), ("exp", 0), ("mul", "y", 1)),  # e^(1/p) overflows
    "extremum_at_half": genome(("sub", "1", "p"), ("mul", "p", 0), ("mul", "y", 1)),  # p(1 - p)
    "constant": genome(("abs", "p"), ("sub", "p", 0), ("mul", "y", 1)),  # y * (p - |p|) = 0
    "plateau": genome(("sigmoid", "1"), ("sub", "p", 0), ("relu", 1), ("mul", "y", 2)),  # 0 below 0.73
    "turning_points": genome(("recip", "p"), ("sin", 0), ("mul", "y", 1)),  # y sin(1/p) oscillates
    "nonfinite_random": genome(*SMOOTHED_GATE, ("recip", 2), ("exp", 3), ("mul", "p", 4), ls=0.9),
    "zero_gradient": genome(*SMOOTHED_GATE, ("log", "p"), ("mul", 2, 3), ls=0.9),
    "nonfinite_gradient": genome(*SMOOTHED_GATE, ("mul", "p", 2), ("sqrt_abs", 3), ls=0.9),
}


# ---- each reason, built by hand --------------------------------------------------------------
@pytest.mark.parametrize("reason", sorted(REJECTED))
def test_each_rejection_reason_has_a_genome_that_earns_it(reason):
    verdict = check(REJECTED[reason])
    assert not verdict.accepted and verdict.reason == reason
    assert verdict.message == f"rejected: {reason}: {REASONS[reason]}"


def test_every_reason_is_covered_here():
    assert set(REASONS) == set(REJECTED) | {"duplicate_expression", "duplicate_phenotype"}


def test_a_curve_peaking_at_half_is_rejected_for_its_extremum():
    curve = probe_curve(REJECTED["extremum_at_half"])
    assert int(np.argmax(curve)) in EXTREMUM_WINDOW


def test_a_plateau_is_flat_steps_beyond_the_limit_not_a_constant():
    diffs = np.diff(probe_curve(REJECTED["plateau"]))
    assert MAX_ZERO_DIFFS < np.count_nonzero(diffs == 0) < len(diffs)


def test_two_turning_points_are_more_than_two_circular_sign_changes():
    signs = np.sign(np.diff(probe_curve(REJECTED["turning_points"])))
    assert np.count_nonzero(signs != np.roll(signs, -1)) > MAX_SIGN_CHANGES


def test_the_random_input_checks_catch_what_the_probe_cannot_see():
    """The smoothed-label genomes are finite with a proper curve on the probe."""
    for reason in ("nonfinite_random", "zero_gradient", "nonfinite_gradient"):
        curve = probe_curve(REJECTED[reason])
        assert np.all(np.isfinite(curve)) and curve_verdict(curve).accepted


def test_duplicate_expression_is_the_same_graph_written_another_way():
    written_again = genome(("mul", 1, "y"), ("log", "p"), output=0)
    verdict = check(written_again, KnownLosses([CE]))
    assert verdict.reason == "duplicate_expression" and verdict.sign == -1


def test_duplicate_phenotype_is_a_different_graph_with_the_same_curve():
    """log10 p = ln p / ln 10: another expression, the same normalised curve as cross-entropy."""
    log10_ce = genome(("log10", "p"), ("mul", "y", 0))
    assert log10_ce.with_sign(-1).id != CE.id
    verdict = check(log10_ce, KnownLosses([CE]))
    assert verdict.reason == "duplicate_phenotype"
    assert np.linalg.norm(verdict.phenotype - phenotype(probe_curve(CE), -1)) <= DUPLICATE_DISTANCE


def test_a_new_function_is_not_a_duplicate():
    assert check(get_genome("focal"), KnownLosses([CE, get_genome("mse")])).accepted


# ---- accepted losses and the flip ------------------------------------------------------------
@pytest.mark.parametrize("name, sign", [("cross_entropy", -1), ("baikal", -1), ("focal", -1),
                                        ("poly1", -1), ("label_smoothing", -1), ("mse", 1)])
def test_reference_losses_pass_with_the_sign_their_files_carry(name, sign):
    g = get_genome(name)
    verdict = check(g.with_sign(1))  # the check chooses the sign whatever the file says
    assert verdict.accepted and verdict.sign == sign == g.sign


def test_a_u_shaped_curve_keeps_its_sign():
    """y (p - 0.73)^2 first falls then rises as the true-class probability drops: a U."""
    u = genome(("sigmoid", "1"), ("sub", "p", 0), ("square", 1), ("mul", "y", 2))
    diffs = np.diff(probe_curve(u))
    assert diffs[0] < 0 < diffs[-1]
    assert check(u).sign == 1 and check(u).accepted


def test_an_inverted_u_is_flipped_into_a_u():
    cap = genome(("sigmoid", "1"), ("sub", "p", 0), ("square", 1), ("mul", "y", 2), ("neg", 3))
    verdict = check(cap)
    assert verdict.accepted and verdict.sign == -1
    flipped = verdict.sign * probe_curve(cap)
    assert np.diff(flipped)[0] < 0 < np.diff(flipped)[-1]


def test_the_phenotype_is_the_flipped_curve_scaled_to_unit_range():
    verdict = check(CE)
    assert verdict.phenotype.shape == (1000,) and verdict.phenotype.dtype == np.float32
    assert verdict.phenotype.min() == 0 and verdict.phenotype.max() == 1
    assert verdict.phenotype[0] == 0  # after the flip, loss is lowest where p_true ~ 1


def test_a_curve_narrower_than_the_normalisation_floor_is_compared_unscaled():
    """The authors' Loss.normalize leaves a curve whose range is below 1e-4 as it is: two
    near-constant ramps at different levels are far apart, where scaled they would coincide."""
    ramp = np.linspace(0, 5e-5, 1000, dtype=np.float32)
    low, high = 0.5 + ramp, 0.6 + ramp
    assert np.ptp(low) < NORMALISE_MIN_RANGE
    np.testing.assert_array_equal(phenotype(low, 1), low)
    np.testing.assert_array_equal(phenotype(low, -1), -low)
    known = KnownLosses()
    known.add(CE, phenotype(low, 1))
    assert known.match(phenotype(high, 1)) is None
    wide_low, wide_high = 0.5 + 100 * ramp, 0.6 + 100 * ramp  # range 5e-3: scaled, equal
    np.testing.assert_allclose(phenotype(wide_low, 1), phenotype(wide_high, 1), atol=1e-3)


# ---- the probe as the authors compute it (Loss.check_integrity, Loss.call) -------------------
def test_the_probe_takes_one_minus_q_in_float64_then_casts():
    q = np.linspace(1e-7, 1 - 1e-7, 1000)
    np.testing.assert_array_equal(_PROBE_P, np.stack([q, 1 - q], axis=1).astype(np.float32))
    assert _PROBE_P.dtype == _PROBE_Y.dtype == np.float32
    # Cast first, 1 - q would be another number in hundreds of rows: 1.19e-7, not 1e-7, last.
    cast_first = 1 - q.astype(np.float32)
    assert _PROBE_P[-1, 1] == np.float32(1e-7) != cast_first[-1]
    assert np.count_nonzero(_PROBE_P[:, 1] != cast_first) > 100


def test_the_cast_probe_puts_the_last_true_class_probability_exactly_on_the_guard():
    """y / (eps - p y): the last row's true-class probability is float32(1e-7), the eps itself,
    so the denominator is 0 there and L is infinite; with 1 - q computed in float32 it is not."""
    g = genome(("mul", "p", "y"), ("neg", 0), ("div", "y", 1))
    curve = probe_curve(g)
    assert np.isinf(curve[-1]) and np.isfinite(curve[:-1]).all()
    assert check(g).reason == "nonfinite_probe"
    q = np.linspace(1e-7, 1 - 1e-7, 1000).astype(np.float32)
    with np.errstate(all="ignore"):
        t = run_program(*flatten(g, backend="numpy"), {"y": _PROBE_Y, "p": np.stack([q, 1 - q], axis=1)})
    assert np.isfinite(t).all()


def test_classes_are_summed_in_float32_so_large_values_tie_into_plateaus():
    """1 / (min(p, y) + eps): the wrong class gives 1/eps = 1e7, where float32 steps by 1, so
    the true class's 1/p, which moves by less than 1 per row over most of the probe, is lost
    in the sum: flat steps (the authors' tf.reduce_sum in float32). Summed in float64, the same
    float32 terms make a strictly rising curve that would be accepted."""
    g = genome(("min", "p", "y"), ("recip", 0))
    with np.errstate(all="ignore"):
        t = run_program(*flatten(g, backend="numpy"), {"y": _PROBE_Y, "p": _PROBE_P})
    assert t.dtype == np.float32
    assert (np.diff(t[:, 0].astype(np.float64) + t[:, 1]) > 0).all()
    curve = probe_curve(g)
    assert curve.dtype == np.float32
    np.testing.assert_array_equal(curve, t[:, 0] + t[:, 1])
    assert np.count_nonzero(np.diff(curve) == 0) > MAX_ZERO_DIFFS
    assert check(g).reason == "plateau"


def test_probe_curves_are_float32_for_every_genome():
    for g in structurally_valid_genomes(seed=11, count=200):
        assert probe_curve(g).dtype == np.float32


# ---- the sign corrections of METHOD.md 7 -----------------------------------------------------
def authors_fill(signs: np.ndarray) -> np.ndarray:
    """METHOD.md 2's fill as the authors' loop does it: every zero takes the value on its left
    (the first takes the last), all at once, again until no zero is left."""
    t = list(signs)
    while 0 in t:
        t = [t[i - 1] if v == 0 else v for i, v in enumerate(t)]  # t[-1] when i = 0
    return np.array(t)


def authors_sign(curve: np.ndarray) -> int:
    """The sign the authors' rules give an accepted curve: strictly monotone curves by rule 2,
    every other one by the U branch, read at the third difference of the filled signs."""
    d = np.diff(curve)
    if (d > 0).all() or (d < 0).all():
        return 1 if d[0] > 0 else -1
    return 1 if authors_fill(np.sign(d))[2] < 0 else -1


def test_a_child_decides_its_sign_afresh_never_inheriting_its_parents_flip():
    """y log10(p), a child of cross-entropy, carrying its parent's sign -1 as the authors'
    deep copy does. Its curve falls, so it takes -1 whatever it carries. The authors' probe
    runs through the inherited flip, sees -L rise, keeps it, and the child gets +1: a loss
    that falls as the true class becomes unlikely."""
    child = genome(("log10", "p"), ("mul", "y", 0), sign=-1)
    inherited, fresh = check(child), check(child.with_sign(1))
    assert inherited.accepted and inherited.sign == fresh.sign == -1
    np.testing.assert_array_equal(inherited.phenotype, fresh.phenotype)
    assert curve_verdict(child.sign * probe_curve(child)).sign == 1  # the authors' reading
    assert mutate(CE, np.random.default_rng(0)).sign == 1  # mutation resets the sign too


def test_a_turning_point_in_the_first_step_is_read_at_the_first_difference():
    """atan(p / y): the wrong class's atan(q / eps) jumps from pi/4 to ~pi/2 in the first step,
    then the true class's atan(1 - q) falls to 0: L rises once, then falls. Read at the first
    difference it starts increasing and is flipped; the authors' third difference says it
    starts decreasing and keeps +1, a loss that falls as the true class becomes unlikely."""
    g = genome(("div", "p", "y"), ("atan", 0))
    d = np.diff(probe_curve(g))
    assert d[0] > 0 and (d[1:] < 0).all()
    verdict = check(g)
    assert verdict.accepted and verdict.sign == -1
    assert authors_sign(probe_curve(g)) == 1


def test_a_curve_that_starts_flat_starts_where_it_first_moves():
    """y (min(p, tanh(e)) - sigmoid(1))^2: flat for 8 steps (p clipped at 0.9913), then a U.
    Its start is where it first moves, down: it keeps +1. The authors' circular fill gives
    the flat start the direction of the curve's end, up, and flips the U."""
    g = genome(("exp", "1"), ("tanh", 0), ("min", "p", 1), ("sigmoid", "1"), ("sub", 2, 3),
               ("square", 4), ("mul", "y", 5))
    s = np.sign(np.diff(probe_curve(g)))
    assert (s[:8] == 0).all() and s[8] < 0 < s[-1]
    verdict = check(g)
    assert verdict.accepted and verdict.sign == 1
    assert authors_sign(probe_curve(g)) == -1


@pytest.mark.parametrize("nodes, sign", [((("add", "p", "y"), ("softplus", 0)), -1),
                                         ((("div", "p", "y"), ("asinh", 0)), 1)])
def test_a_monotone_curve_with_flat_steps_takes_the_monotone_sign(nodes, sign):
    """softplus(p + y) falls and asinh(p / y) rises, each but for one float32 tie in its last
    step. They take the sign of rule 2 (a rising curve +1, a falling one -1); the authors send
    them to the U branch, which gives each the opposite."""
    g = genome(*nodes)
    s = np.sign(np.diff(probe_curve(g)))
    assert np.count_nonzero(s == 0) == 1 and set(s[s != 0]) == {sign}
    verdict = check(g)
    assert verdict.accepted and verdict.sign == sign
    assert authors_sign(probe_curve(g)) == -sign


def test_zero_signs_are_filled_circularly_the_first_taking_the_last():
    signs = np.array([0, 0, 1, 0, 0, -1, 0], dtype=np.float32)
    np.testing.assert_array_equal(fill_zero_signs(signs), [-1, -1, 1, 1, 1, -1, -1])
    np.testing.assert_array_equal(fill_zero_signs(np.array([0.0, 1, 0])), [1, 1, 1])


@settings(max_examples=200, deadline=None)
@given(signs=st.lists(st.sampled_from([-1.0, 0.0, 0.0, 1.0]), min_size=3, max_size=40)
       .filter(lambda v: any(v)))
def test_the_fill_is_the_authors_loop_and_never_changes_the_turning_point_count(signs):
    signs = np.array(signs)
    filled = fill_zero_signs(signs)
    np.testing.assert_array_equal(filled, authors_fill(signs))
    # Filling each run of zeros from its right instead counts the same circular changes.
    from_right = fill_zero_signs(signs[::-1])[::-1]
    assert np.count_nonzero(filled != np.roll(filled, 1)) == np.count_nonzero(from_right != np.roll(from_right, 1))


# ---- the probe rules against plain transcriptions of METHOD.md 2 and 7 -----------------------
def method_rules(curve: np.ndarray) -> tuple[bool, str | None, int]:
    """METHOD.md 2, steps 1-3, with the corrections of METHOD.md 7, written as the text reads:
    (accepted, reason, sign)."""
    if not np.all(np.isfinite(curve)):
        return False, "nonfinite_probe", 1
    if int(np.argmin(curve)) in range(490, 510) or int(np.argmax(curve)) in range(490, 510):
        return False, "extremum_at_half", 1
    d = np.diff(curve)
    if np.all(d > 0):
        return True, None, 1
    if np.all(d < 0):
        return True, None, -1
    s = np.sign(d)
    if np.all(s == 0):
        return False, "constant", 1
    if np.count_nonzero(s == 0) > 10:
        return False, "plateau", 1
    filled = authors_fill(s)
    changes = np.count_nonzero(filled != np.roll(filled, 1))
    if changes > 2:
        return False, "turning_points", 1
    first_move = s[s != 0][0]
    if changes == 0:  # monotone but for flat steps: rule 2's sign
        return True, None, 1 if first_move > 0 else -1
    return True, None, 1 if first_move < 0 else -1  # a U keeps +1, an inverted U is flipped


curves = st.builds(
    lambda kind, a, b, k, flat, lead, seed: _curve(kind, a, b, k, flat, lead, seed),
    st.sampled_from(["line", "u", "wave", "step", "kink"]), st.floats(-5, 5), st.floats(0.01, 0.99),
    st.integers(1, 4), st.integers(0, 30), st.integers(0, 12), st.integers(0, 2**16))


def _curve(kind, a, b, k, flat, lead, seed):
    """A float32 curve of 1000 points, as the probe gives: lines, U shapes, waves, steps, and
    kinks (one turning point within the first steps), with runs of flat steps."""
    x = np.linspace(0, 1, 1000)
    c = {"line": a * x, "u": a * (x - b) ** 2, "wave": np.sin(k * np.pi * x + a),
         "step": np.floor(x * k * 7) + a * x, "kink": a * np.abs(x - x[k - 1])}[kind]
    rng = np.random.default_rng(seed)
    if flat:  # a run of equal values somewhere
        i = int(rng.integers(0, 1000 - flat))
        c[i:i + flat] = c[i]
    c[:lead] = c[lead]  # a flat start
    return c.astype(np.float32)


@settings(max_examples=300, deadline=None)
@given(curve=curves)
def test_the_fast_probe_rules_decide_as_method_md_reads(curve):
    verdict = curve_verdict(curve)
    assert (verdict.accepted, verdict.reason, verdict.sign) == method_rules(curve)


@settings(max_examples=300, deadline=None)
@given(curve=curves)
def test_the_rules_depart_from_the_authors_only_in_a_sign_a_correction_sets(curve):
    """Same verdict and reason as the authors' rules always; another sign only for a curve
    monotone but for flat steps, or one whose start the authors read elsewhere."""
    verdict = curve_verdict(curve)
    if not verdict.accepted or verdict.sign == authors_sign(curve):
        return
    s = np.sign(np.diff(curve))
    filled = authors_fill(s)
    monotone_with_flats = (s == 0).any() and len(set(filled)) == 1
    start_read_elsewhere = filled[2] != s[s != 0][0]
    assert monotone_with_flats or start_read_elsewhere


# ---- the duplicate rule's index --------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), members=st.integers(1, 70), noise=st.floats(1e-5, 0.02))
def test_known_losses_match_finds_the_plain_nearest_within_distance(seed, members, noise):
    """The block-sum lower bound only prunes: match() answers as a brute-force scan would."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, 1000)
    phenos = [np.clip(x ** rng.uniform(0.2, 5) + rng.normal(0, 0.002, 1000), 0, 1) for _ in range(members)]
    known = KnownLosses()
    for k, ph in enumerate(phenos):
        known.add(CE, ph)  # the genome only supplies an id here
        known.ids[-1] = f"m{k}"
    query = phenos[int(rng.integers(members))] + rng.normal(0, noise / 30, 1000)
    dist = np.array([np.sqrt(((ph - query) ** 2).sum()) for ph in phenos])
    expected = f"m{int(np.argmin(dist))}" if dist.min() <= DUPLICATE_DISTANCE else None
    assert known.match(query) == expected


# ---- precision: the probe computes in float32, like training ---------------------------------
def test_a_constant_operand_does_not_turn_the_probe_into_float64():
    """ndiv(x, c) once divided by a float64 sqrt(1 + c^2) in numpy; torch stays in float32,
    where x / sqrt(1 + 1e-14) is x itself, so x - ndiv(x, log(1)) is exactly 0: constant."""
    g = genome(("log", "1"), ("ndiv", 2, 0), ("ndiv", "y", "p"), ("sub", 2, 1))
    steps, out = flatten(g, backend="numpy")
    t = run_program(steps, out, {"y": np.ones((3, 2), np.float32), "p": np.full((3, 2), 0.5, np.float32)})
    assert t.dtype == np.float32
    assert check(g).reason == "constant"


# ---- the numpy gradient is torch autograd's --------------------------------------------------
TARGET = torch.from_numpy(_GRADIENT_Y.argmax(axis=1))


def torch_logit_gradient(g) -> np.ndarray | None:
    """d loss / d logits through GenomeLoss by torch autograd, on the check's own inputs."""
    logits = torch.tensor(GRADIENT_LOGITS, requires_grad=True)
    (grad,) = torch.autograd.grad(GenomeLoss(g)(logits, TARGET), logits, allow_unused=True)
    return None if grad is None else grad.numpy()


def torch_gradient_problem(g) -> str | None:
    """The autograd gradient check the numpy one replaced, verbatim in its logic."""
    grad = torch_logit_gradient(g)
    if grad is None or not np.any(grad != 0):
        return "zero_gradient"
    if not np.all(np.isfinite(grad)):
        return "nonfinite_gradient"
    return None


def test_reference_losses_have_the_autograd_gradient():
    for name in ("cross_entropy", "baikal", "focal", "poly1", "label_smoothing", "mse"):
        g = get_genome(name)
        with np.errstate(all="ignore"):
            mine = logit_gradient(g, _smooth(_GRADIENT_Y, g.label_smoothing), _GRADIENT_P, _GRADIENT_LOGP)
        np.testing.assert_allclose(mine, torch_logit_gradient(g), rtol=1e-4, atol=1e-7)


def test_numpy_and_autograd_gradient_checks_agree_on_every_hand_built_genome():
    for g in [*REJECTED.values(), CE, get_genome("baikal")]:
        if g.structural_problem() is None:
            assert gradient_problem(g) == torch_gradient_problem(g)


def test_numpy_and_autograd_gradient_checks_agree_on_thousands_of_genomes():
    """The same verdict, in float32 on the check's inputs, for random genomes and mutants."""
    genomes = structurally_valid_genomes(seed=7, count=1500)
    assert len(genomes) >= 2000
    disagreements = [g.to_json() for g in genomes if gradient_problem(g) != torch_gradient_problem(g)]
    assert disagreements == []


def torch_forward_and_leaf_gradients(g, y, p, logp):
    """Every step's value, and d loss / d p, d loss / d logp by autograd, all on torch."""
    leaves = {"y": torch.from_numpy(y), "p": torch.from_numpy(p).requires_grad_(),
              "logp": torch.from_numpy(logp).requires_grad_()}
    values: list = []
    t = run_program(*plan(g, True).bind("torch"), leaves, values)
    grads = torch.autograd.grad(t.sum() * (g.sign / y.shape[0]), [leaves["p"], leaves["logp"]],
                                allow_unused=True)
    return [v.detach().numpy() for v in values], [None if x is None else x.numpy() for x in grads]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_reverse_pass_equals_autograd_in_float64(seed):
    """Given torch's forward values (so that last-ulp differences are not amplified by
    ill-conditioned steps such as y - i0(p) at small p), the reverse pass gives autograd's
    gradients, in float64, for accepted genomes and mutants."""
    g = accepted_random(seed, 1)[0] if seed % 3 else mutants(accepted_random(seed, 1), seed, 1)[0]
    if g.structural_problem():
        return
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(0, 3, (8, 10)))
    y = np.eye(10)[rng.integers(0, 10, 8)] * (1 - g.label_smoothing) + g.label_smoothing / 10
    p, logp = torch.softmax(logits, -1).numpy(), torch.log_softmax(logits, -1).numpy()
    values, expected_grads = torch_forward_and_leaf_gradients(g, y, p, logp)
    with np.errstate(all="ignore"):
        mine = reverse_pass(plan(g, True), values, {"y": y, "p": p, "logp": logp}, g.sign)
    for got, expected in zip(mine, expected_grads):
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got.dtype == np.float64
            for test in (np.isnan, np.isposinf, np.isneginf):
                assert np.array_equal(test(got), test(expected))
            finite = np.isfinite(expected)
            # 1e-6, not 1e-15: an operator's float32 constant (sqrt(1 + c^2) of ndiv(x, c))
            # may round one ulp apart on the two backends; a wrong formula is off by far more.
            np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-12)


def test_softmax_backward_is_torchs():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0, 3, (16, 10)).astype(np.float32)).requires_grad_()
    g_p, g_logp = (rng.normal(size=(16, 10)).astype(np.float32) for _ in range(2))
    p, logp = torch.softmax(logits, -1), torch.log_softmax(logits, -1)
    expected = torch.autograd.grad([p, logp], logits, [torch.from_numpy(g_p), torch.from_numpy(g_logp)])[0]
    got = softmax_backward(g_p, g_logp, p.detach().numpy(), logp.detach().numpy())
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert softmax_backward(None, None, p.detach().numpy(), logp.detach().numpy()) is None


# ---- the shortcuts keep the plain semantics --------------------------------------------------
def plain_duplicate(g, pheno, members) -> str | None:
    """METHOD.md 2 step 4 as written: the same expression, else a phenotype within 0.01."""
    if g.id in {m.id for m in members}:
        return "duplicate_expression"
    dist = [np.linalg.norm(pheno - phenotype(probe_curve(m), m.sign)) for m in members]
    return "duplicate_phenotype" if min(dist) <= DUPLICATE_DISTANCE else None


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_duplicate_rule_answers_as_written_for_mutants_of_the_population(seed):
    """The id is only computed once a phenotype is near; the answer is the plain rule's."""
    members = accepted_random(seed, 12)
    known = KnownLosses(members)
    for child in mutants(members, seed, 30):
        if child.structural_problem():
            continue
        curve = probe_curve(child)
        verdict = curve_verdict(curve)
        if verdict.accepted:
            signed, pheno = child.with_sign(verdict.sign), phenotype(curve, verdict.sign)
            assert known.duplicate(signed, pheno) == plain_duplicate(signed, pheno, members)


def test_a_member_whose_phenotype_is_not_finite_is_still_found_by_its_id():
    """A member with an infinite curve (phenotype NaN) never matches by distance; its id still does."""
    member = REJECTED["nonfinite_probe"]
    pheno = phenotype(probe_curve(member), 1)
    assert not np.isfinite(pheno).all()
    known = KnownLosses([member])
    assert known.match(pheno) is None
    assert known.duplicate(member, pheno) == "duplicate_expression"


def test_memoised_leaf_values_are_the_values_computed_afresh():
    """Steps that read only leaves are computed once per set of inputs and shared."""
    memo: dict = {}
    leaves = {"y": _GRADIENT_Y, "p": _GRADIENT_P}
    for g in structurally_valid_genomes(seed=3, count=200):
        pl = plan(g, logp=False)
        with np.errstate(all="ignore"):
            fresh = run_program(*pl.numpy, leaves)
            shared = run_program(*pl.numpy, leaves, memo=memo, memo_keys=pl.memo_keys)
        np.testing.assert_array_equal(shared, fresh)
    assert memo and all(key is not None for key in memo)
