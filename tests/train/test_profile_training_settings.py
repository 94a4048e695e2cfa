"""The profile fields of the authors' training settings (optimizer.eps and eps_mode,
schedule.offset, the loss section): defaults that keep every earlier hash, and the paper
profiles set to the authors' values (METHOD.md 4)."""

from __future__ import annotations

import pytest

from nlfs.train.profiles import load_profile

AT_DEFAULTS = """base: tiny
optimizer: {eps: 1.0e-8, eps_mode: torch}
schedule: {offset: 0.0}
loss: {inputs: log_softmax, fuse_cross_entropy: true}
"""


def test_the_new_fields_at_their_defaults_leave_the_hash_as_it_was(tmp_path):
    path = tmp_path / "spelt-out.yaml"
    path.write_text(AT_DEFAULTS)
    assert load_profile(str(path)).hash == load_profile("tiny").hash


@pytest.mark.parametrize("key, value", [("optimizer.eps", "1.0e-7"), ("optimizer.eps_mode", "keras"),
                                        ("schedule.offset", "1.0e-7"), ("loss.inputs", "probabilities"),
                                        ("loss.fuse_cross_entropy", "false")])
def test_each_new_field_changes_the_hash_when_set(key, value):
    assert load_profile("tiny", {key: value}).hash != load_profile("tiny").hash


@pytest.mark.parametrize("name, model, warmup, total", [
    ("prefilter", "resnet9v2", 800, 8000), ("surrogate", "resnet9v2", 800, 8000),
    ("surrogate-effnet", "efficientnet_v2_s", 6400, 64000)])
def test_paper_profiles_train_as_the_authors(name, model, warmup, total):
    p = load_profile(name)
    assert p.model.name == model
    assert (p.optimizer.name, p.optimizer.lr, p.optimizer.eps, p.optimizer.eps_mode) == ("adam", 1e-3, 1e-7, "keras")
    assert (p.schedule.name, p.schedule.warmup_steps, p.schedule.total_steps, p.schedule.offset) == (
        "warmup_cosine", warmup, total, 1e-7)
    assert (p.loss.inputs, p.loss.fuse_cross_entropy) == ("probabilities", False)


def test_the_profiles_loss_section_decides_how_a_genome_is_compiled():
    from nlfs.evaluate import resolve_loss
    from nlfs.losses import get_genome

    paper, default = load_profile("surrogate").loss, load_profile("tiny").loss
    for loss in ("cross_entropy", get_genome("cross_entropy")):
        module, _, _ = resolve_loss(loss, paper)
        assert module.inputs == "probabilities" and not module._cross_entropy
        module, _, _ = resolve_loss(loss, default)
        assert module.inputs == "log_softmax" and module._cross_entropy


def test_a_run_with_probabilities_trains_and_reports_the_guarded_loss():
    from nlfs.evaluate import evaluate

    overrides = {"epochs": "1", "steps_per_epoch": "3", "loss.fuse_cross_entropy": "false"}
    exact = evaluate("cross_entropy", load_profile("tiny", overrides))
    guarded = evaluate("cross_entropy", load_profile("tiny", {**overrides, "loss.inputs": "probabilities"}))
    assert exact.status == guarded.status == "ok"
    assert exact.profile_hash != guarded.profile_hash
    # 3 steps from the same start: the guard moves the loss by well under a percent, but moves it
    assert guarded.epochs[0].val_loss != exact.epochs[0].val_loss
    assert guarded.epochs[0].val_loss == pytest.approx(exact.epochs[0].val_loss, rel=1e-2)
