"""Compilation: a genome becomes a drop-in for nn.CrossEntropyLoss.

The cross-entropy genome must be F.cross_entropy (value and gradient, hard and soft targets),
since every search result is compared with it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from genome_helpers import accepted_random, genome

import nlfs
from nlfs.genome import GenomeError, GenomeLoss, compile_genome
from nlfs.genome.compile import targets_to_probs
from nlfs.losses import get_genome

SHAPES = [(64, 10), (32, 100)]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def logits_and_targets(shape, soft: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=gen) * 3).requires_grad_(True)
    if soft:
        target = torch.softmax(torch.randn(shape, generator=gen) * 2, dim=-1)
    else:
        target = torch.randint(0, shape[1], (shape[0],), generator=gen)
    return logits, target


def value_and_grad(loss_fn, logits, target):
    value = loss_fn(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("soft", [False, True], ids=["class-index", "soft"])
@pytest.mark.parametrize("name, smoothing", [("cross_entropy", 0.0), ("label_smoothing", 0.1)])
def test_cross_entropy_genomes_equal_torch_cross_entropy(shape, soft, name, smoothing):
    """Value and gradient w.r.t. the logits within 1e-5 relative error in float32."""
    logits, target = logits_and_targets(shape, soft)
    mine = value_and_grad(nlfs.load_loss(name), logits, target)
    torchs = value_and_grad(lambda z, t: F.cross_entropy(z, t, label_smoothing=smoothing), logits, target)
    assert mine[0].dtype == torch.float32 and mine[1].dtype == torch.float32
    assert relative_error(mine[0], torchs[0]) < 1e-5
    assert relative_error(mine[1], torchs[1]) < 1e-5


def test_class_indices_and_their_one_hot_rows_give_the_same_loss():
    logits, target = logits_and_targets((16, 10), soft=False)
    loss = nlfs.load_loss("focal")
    torch.testing.assert_close(loss(logits, target), loss(logits, F.one_hot(target, 10).float()))


def test_many_classes_take_the_scatter_path_with_the_same_result():
    """Above 1024 classes the one-hot rows are scattered instead of read from a cached identity."""
    target = torch.tensor([0, 5, 2047, 1024])
    expected = F.one_hot(target, 2048).float()
    assert torch.equal(targets_to_probs(target, 2048, torch.float32), expected)
    assert torch.equal(targets_to_probs(target[:2], 10, torch.float32), F.one_hot(target[:2], 10).float())


@pytest.mark.parametrize("target, problem", [
    (torch.tensor([0.0, 1.0]), "integer class targets"),
    (torch.zeros(2, 3), "does not fit 10 classes"),
])
def test_targets_of_the_wrong_kind_are_refused(target, problem):
    with pytest.raises(ValueError, match=problem):
        nlfs.load_loss("cross_entropy")(torch.zeros(2, 10), target)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "general"])
@pytest.mark.parametrize("bad", [-1, -100, 10])
def test_a_class_index_out_of_range_raises(fused, bad):
    """-100 too: unlike nn.CrossEntropyLoss, no index means "ignore this sample"."""
    loss = GenomeLoss(get_genome("cross_entropy"), fuse_cross_entropy=fused)
    with pytest.raises(IndexError):
        loss(torch.zeros(2, 10), torch.tensor([0, bad]))


@pytest.mark.parametrize("name", ["cross_entropy", "label_smoothing"])
@pytest.mark.parametrize("soft", [False, True], ids=["class-index", "soft"])
def test_the_fused_cross_entropy_equals_the_general_program(name, soft):
    """y * log(p) runs as F.cross_entropy; the general program gives the same numbers."""
    logits, target = logits_and_targets((32, 100), soft)
    g = get_genome(name)
    fused, general = GenomeLoss(g), GenomeLoss(g, fuse_cross_entropy=False)
    assert fused._cross_entropy and not general._cross_entropy
    for a, b in zip(value_and_grad(fused, logits, target), value_and_grad(general, logits, target)):
        torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)
    flipped = GenomeLoss(g.with_sign(1))
    torch.testing.assert_close(flipped(logits, target), -fused(logits, target))


def test_only_y_times_log_p_is_fused():
    for other in [genome(("log10", "p"), ("mul", "y", 0)), genome(("log", "p"), ("add", "y", 0)),
                  get_genome("focal")]:
        assert not GenomeLoss(other)._cross_entropy
    assert GenomeLoss(genome(("log", "p"), ("mul", 0, "y"))).__dict__["_cross_entropy"]


def test_under_bf16_autocast_the_loss_is_still_computed_in_float32():
    """eps = 1e-7 guards vanish in bf16, so the loss leaves autocast."""
    logits, target = logits_and_targets((8, 10), soft=False)
    loss = nlfs.load_loss("baikal")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits.bfloat16(), target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(logits.bfloat16().float(), target))


def test_a_genome_loss_trains_a_model_like_any_torch_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    loss_fn = nlfs.load_loss("poly1")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = loss_fn(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    assert loss_fn(model(x), y).item() < first


def test_log_of_p_reads_log_softmax_so_extreme_logits_stay_exact():
    """With the eps guard, log(p) would stop at log(1e-7) = -16.1; training gets the exact
    log-probability (here -50) and the bounded gradient, as F.cross_entropy does."""
    logits = torch.tensor([[50.0, 0.0]], requires_grad=True)
    value, grad = value_and_grad(nlfs.load_loss("cross_entropy"), logits, torch.tensor([1]))
    assert value.item() == pytest.approx(50.0)
    torch.testing.assert_close(grad, torch.tensor([[1.0, -1.0]]))


def test_constant_subexpressions_are_folded_and_still_broadcast():
    g = genome(("neg", "-1"), ("exp", 0), ("mul", "y", "p"), ("add", 2, 1))  # y p + e
    loss = compile_genome(g)
    assert len(loss._steps) == 2  # mul and add; neg(-1) and exp(1) became a number
    logits, target = logits_and_targets((4, 3), soft=False)
    p = torch.softmax(logits, -1)
    expected = (F.one_hot(target, 3) * p + np.e).sum() / 4
    torch.testing.assert_close(loss(logits, target), expected)


def test_compiling_an_invalid_genome_is_an_error():
    with pytest.raises(GenomeError, match="cycle"):
        compile_genome(genome(("log", 1), ("mul", "y", 0)))


def test_random_accepted_genomes_compile_to_modules_that_describe_themselves():
    for g in accepted_random(11, 5):
        module = compile_genome(g)
        assert isinstance(module, GenomeLoss) and isinstance(module, torch.nn.Module)
        assert g.id in repr(module)


# ---- inputs="probabilities": the operators receive softmax(logits), as the authors train ------
def guarded_cross_entropy(logits, target):
    """-mean_b sum_c y ln(|p| + 1e-7) on p = softmax(logits): the operator table's log on the
    authors' softmax output."""
    p = torch.softmax(logits, -1)
    y = F.one_hot(target, logits.shape[1]).float() if target.dim() == 1 else target
    return -(y * torch.log(p.abs() + 1e-7)).sum() / logits.shape[0]


@pytest.mark.parametrize("soft", [False, True], ids=["class-index", "soft"])
def test_with_probabilities_cross_entropy_is_the_guarded_log_of_softmax(soft):
    logits, target = logits_and_targets((32, 10), soft)
    loss = GenomeLoss(get_genome("cross_entropy"), inputs="probabilities", fuse_cross_entropy=False)
    assert not loss._cross_entropy
    mine, expected = value_and_grad(loss, logits, target), value_and_grad(guarded_cross_entropy, logits, target)
    torch.testing.assert_close(mine[0], expected[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(mine[1], expected[1], rtol=1e-5, atol=1e-8)
    # and it is not F.cross_entropy: at logits * 8 some p fall near 1e-7, where the guard shows
    exact = value_and_grad(GenomeLoss(get_genome("cross_entropy")), logits * 8, target)
    guarded = value_and_grad(loss, logits * 8, target)
    assert relative_error(guarded[0], exact[0]) > 1e-3


def test_with_probabilities_log_of_a_vanishing_p_stops_at_log_eps():
    """The log_softmax reading gives 50 (test above); the authors' softmax output gives
    -ln(e^-50 + 1e-7) = -ln(1e-7) = 16.1, and almost no gradient."""
    logits = torch.tensor([[50.0, 0.0]], requires_grad=True)
    loss = GenomeLoss(get_genome("cross_entropy"), inputs="probabilities", fuse_cross_entropy=False)
    value, grad = value_and_grad(loss, logits, torch.tensor([1]))
    assert value.item() == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert grad.abs().max().item() < 1e-14


def test_with_probabilities_log10_and_baikal_read_p_through_the_guard():
    logits, target = logits_and_targets((16, 10), soft=False)
    p, y = torch.softmax(logits, -1), F.one_hot(target, 10).float()
    log10 = GenomeLoss(genome(("log10", "p"), ("mul", "y", 0), sign=-1), inputs="probabilities")
    torch.testing.assert_close(log10(logits, target), -(y * torch.log10(p + 1e-7)).sum() / 16)
    baikal = GenomeLoss(get_genome("baikal"), inputs="probabilities")
    # final_loss_testing.py baikal_loss: -mean sum [ln(p + eps) - y / (p + eps)]
    expected = -(torch.log(p + 1e-7) - y / (p + 1e-7)).sum(-1).mean()
    torch.testing.assert_close(baikal(logits, target), expected)


def test_with_probabilities_fusion_is_the_exact_cross_entropy_of_keras_baseline():
    """Fused, y * log(p) is F.cross_entropy of the logits whatever the inputs: what Keras'
    CategoricalCrossentropy computes on a softmax output, the authors' baseline."""
    logits, target = logits_and_targets((32, 10), soft=False)
    fused = GenomeLoss(get_genome("cross_entropy"), inputs="probabilities")
    assert fused._cross_entropy
    torch.testing.assert_close(fused(logits, target), F.cross_entropy(logits, target))


def test_inputs_must_be_a_known_reading():
    with pytest.raises(ValueError, match="inputs"):
        GenomeLoss(get_genome("cross_entropy"), inputs="logits")


def test_the_numpy_gradient_mirrors_training_under_either_reading():
    """program.logit_gradient(log_softmax=...) is autograd's gradient of GenomeLoss with the
    matching inputs: the reading the integrity check's gradient test must follow."""
    from nlfs.genome.program import logit_gradient, softmax

    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(16, 10, generator=gen) * 4
    target = torch.randint(0, 10, (16,), generator=gen)
    p, logp = softmax(logits.numpy())
    y = F.one_hot(target, 10).float().numpy()
    reading_log_p = [g for g in accepted_random(5, 600) if not g.label_smoothing and any(
        g.nodes[i].op in ("log", "log10") and g.nodes[i].inputs == ("p",) for i in g.active)]
    by_hand = [genome(("log", "p"), ("square", 0), ("mul", "y", 1)), genome(("log", "p"), ("exp", 0), ("mul", "y", 1)),
               genome(("log10", "p"), ("sigmoid", 0), ("mul", "y", 1), sign=-1)]
    compared = 0
    for g in [get_genome("cross_entropy"), get_genome("baikal"), get_genome("focal"), *by_hand, *reading_log_p]:
        for inputs in ("log_softmax", "probabilities"):
            z = logits.clone().requires_grad_(True)
            loss = GenomeLoss(g, inputs=inputs, fuse_cross_entropy=False)(z, target)
            (expected,) = torch.autograd.grad(loss, z, allow_unused=True)
            with np.errstate(all="ignore"):
                mine = logit_gradient(g, y, p, logp, log_softmax=inputs == "log_softmax")
            if expected is None:
                assert mine is None
                continue
            if not torch.isfinite(expected).all():
                continue  # a genome that overflows here: the integrity check's business
            # float32 softmax backwards cancel: compare to the gradient's own scale
            scale = float(expected.abs().max())
            np.testing.assert_allclose(mine, expected.numpy(), rtol=1e-4, atol=1e-5 * scale)
            compared += 1
    assert compared >= 40
    ce = get_genome("cross_entropy")
    with np.errstate(all="ignore"):
        assert not np.allclose(logit_gradient(ce, y, p, logp, log_softmax=False),
                               logit_gradient(ce, y, p, logp, log_softmax=True), rtol=1e-6, atol=1e-9)
