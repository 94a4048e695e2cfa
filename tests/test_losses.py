"""The registry of reference losses: each genome computes the published formula, and adding a
loss (a genome file on NLFS_LOSS_PATH, or a module factory) is one step.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import nlfs
from nlfs.errors import NlfsError
from nlfs.losses import get_genome, names, register_loss

EPS = 1e-7
REFERENCES = ["baikal", "cross_entropy", "focal", "label_smoothing", "mse", "poly1"]


def per_sample_mean(terms: torch.Tensor) -> torch.Tensor:
    """[B, C] per-class terms -> mean over the batch of the sum over classes."""
    return terms.sum(dim=1).mean()


# Hand-written from the papers (README table), y [B, C] the label, p [B, C] = softmax(logits).
def focal(logits, y):  # Lin et al. 2017, gamma = 2
    p = torch.softmax(logits, -1)
    return per_sample_mean(-y * (1 - p) ** 2 * torch.log_softmax(logits, -1))


def poly1(logits, y):  # Leng et al. 2022, epsilon = 1: CE + (1 - p_true)
    p = torch.softmax(logits, -1)
    return F.cross_entropy(logits, y) + per_sample_mean(y * (1 - p))


def baikal(logits, y):  # Gonzalez & Miikkulainen 2020
    p = torch.softmax(logits, -1)
    return per_sample_mean(-(torch.log_softmax(logits, -1) - y / (p + EPS)))


def mse(logits, y):  # squared error on probabilities
    return per_sample_mean((torch.softmax(logits, -1) - y) ** 2)


def test_the_registry_has_the_reference_losses():
    assert set(REFERENCES) <= set(names())


@pytest.mark.parametrize("name, formula", [("focal", focal), ("poly1", poly1), ("baikal", baikal),
                                           ("mse", mse)])
@pytest.mark.parametrize("soft", [False, True], ids=["class-index", "soft"])
def test_reference_genomes_compute_their_published_formula(name, formula, soft):
    """Value and gradient w.r.t. the logits within 1e-5 relative error, float32."""
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(32, 10, generator=gen) * 2).requires_grad_(True)
    labels = torch.randint(0, 10, (32,), generator=gen)
    y = torch.softmax(torch.randn(32, 10, generator=gen), -1) if soft else F.one_hot(labels, 10).float()
    mine = nlfs.load_loss(name)(logits, y if soft else labels)
    expected = formula(logits, y)
    (g_mine,) = torch.autograd.grad(mine, logits)
    (g_expected,) = torch.autograd.grad(expected, logits)
    assert abs(mine.item() - expected.item()) <= 1e-5 * abs(expected.item())
    assert float((g_mine - g_expected).norm() / g_expected.norm()) < 1e-5


@pytest.mark.parametrize("name", REFERENCES)
def test_every_reference_loss_is_a_module_and_a_genome(name):
    assert isinstance(nlfs.load_loss(name), torch.nn.Module)
    assert get_genome(name).name == name


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(NlfsError, match="unknown loss 'neuroloss1'; known: .*cross_entropy"):
        nlfs.load_loss("neuroloss1")


def test_a_genome_file_on_the_loss_path_becomes_a_name(tmp_path, monkeypatch):
    """How NeuroLoss1 will be added once its formula is known: drop its genome file."""
    doc = {"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}],
           "output": 1, "sign": -1, "label_smoothing": 0.0}
    (tmp_path / "my_loss.json").write_text(json.dumps(doc))
    monkeypatch.setenv("NLFS_LOSS_PATH", str(tmp_path))
    assert "my_loss" in names()
    logits, target = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(nlfs.load_loss("my_loss")(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(nlfs.load_loss(str(tmp_path / "my_loss.json"))(logits, target),
                               F.cross_entropy(logits, target))


def test_a_file_that_is_not_a_valid_genome_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}], "output": 0}')
    with pytest.raises(NlfsError, match="bad.json: y not reachable"):
        nlfs.load_loss(str(bad))


def test_a_loss_the_space_cannot_express_registers_a_module_factory():
    @register_loss("test_hinge")
    def hinge():
        return torch.nn.MultiMarginLoss()

    from nlfs.losses import _FACTORIES

    try:
        assert isinstance(nlfs.load_loss("test_hinge"), torch.nn.MultiMarginLoss)
        assert "test_hinge" in names()
        with pytest.raises(NlfsError, match="is a module, not a genome"):
            get_genome("test_hinge")
        with pytest.raises(ValueError, match="already registered"):
            register_loss("cross_entropy")(hinge)
    finally:
        _FACTORIES.pop("test_hinge")


def test_looking_up_a_genome_does_not_import_torch():
    """`nlfs show` and `nlfs check` stay fast: torch loads only when a loss is compiled."""
    code = ("import sys; from nlfs.losses import get_genome; get_genome('focal'); "
            "from nlfs.genome import check; check(get_genome('focal')); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
