"""The elimination and final-study profiles carry the authors' numbers: loss_projection.py
(`progressive_test` and its `__main__`) for METHOD.md 5, final_loss_testing.py (`basemodel_test`,
`__main__`) for METHOD.md 6. Each number below is read off their code."""

from __future__ import annotations

import pytest

from nlfs.train.profiles import load_profile
from nlfs.transfer.plan import cell_modes
from nlfs.transfer.protocol import Protocol

# loss_projection.py __main__: target_shapes, dropouts, magnitudes per phase; sizes = [25, 12, 6, 4]
SHAPES, DROPOUTS, MAGNITUDES = (128, 160, 192, 224), (0.1, 0.2, 0.3, 0.4), (5, 8, 12, 15)


def _adam_of_keras(p) -> bool:
    """`tf.optimizers.Adam()`: lr 1e-3, epsilon 1e-7 before bias correction."""
    return (p.optimizer.name, p.optimizer.lr, p.optimizer.eps, p.optimizer.eps_mode) == ("adam", 1e-3, 1e-7, "keras")


def _same_pipeline_as_the_search(p) -> bool:
    """The authors' RandAugment and input scaling of their augmented runs (`RandomProcessImage`), as
    the search's main stage has them (`surrogate`; the `input` section arrives with RandAugment)."""
    s = load_profile("surrogate")
    return (p.augment.name, p.augment.num_ops) == (s.augment.name, 2) and getattr(p, "input", None) == getattr(
        s, "input", None)


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_elimination_phase_k_is_progressive_test_with_k_stages(phase):
    p = load_profile(f"eliminate-{phase}")
    # EfficientNetV2S(num_classes=10, pretrained=None, classifier_activation='softmax', dropout=0.1)
    assert (p.model.name, p.model.pretrained, p.model.dropout) == ("efficientnet_v2_s", False, 0.1)
    # x_train[train_ind] / x_train[val_ind]: images 0..44999 train, 45000..49999 validate
    assert (p.dataset.name, p.dataset.val, p.dataset.val_size, p.dataset.holdout) == ("cifar10", "holdout", 5000, "last")
    assert not p.dataset.evaluate_test
    # .batch(64); fit(epochs=160, steps_per_epoch=100) per stage; stage k: size, dropout, magnitude
    assert (p.batch_size, p.steps_per_epoch) == (64, 100)
    assert [(s.epochs, s.image_size, s.dropout, s.magnitude) for s in p.stage_plan()] == [
        (160, SHAPES[i], DROPOUTS[i], MAGNITUDES[i]) for i in range(phase)]
    # one WarmupCosineDecay(total_steps=64000, warmup_steps=6400) built before the stage loop
    assert (p.schedule.name, p.schedule.warmup_steps, p.schedule.total_steps, p.schedule.offset) == (
        "warmup_cosine", 6400, 64000, 1e-7)
    assert _adam_of_keras(p)
    # EpochCallback(threshold=0.45, epoch=40), a callback of every stage's fit
    assert [(f.metric, f.min, f.from_epoch_index, f.action) for f in p.floors] == [
        ("train_accuracy", 0.45, 40, "stop")]
    assert _same_pipeline_as_the_search(p)
    assert p.loss.inputs == "probabilities"  # genomes on the softmax output, as their Loss.call


def test_a_one_stage_run_ends_at_a_quarter_of_the_schedule():
    p = load_profile("eliminate-1")
    assert p.epochs * p.steps_per_epoch * 4 == p.schedule.total_steps
    assert load_profile("eliminate-4").epochs * p.steps_per_epoch == p.schedule.total_steps


def test_the_protocols_phases_are_the_four_profiles_with_their_survivors():
    phases = Protocol().elimination.phases
    assert [(ph.profile, ph.set, ph.survivors) for ph in phases] == [
        (f"eliminate-{k}", {}, s) for k, s in zip((1, 2, 3, 4), (25, 12, 6, 4))]


# final_loss_testing.py: (setting, profile, pretrained, epochs, warmup, total, progressive)
SETTINGS = [
    ("base", "final-effnetv2s-cifar10-base", False, 640, 6400, 64000, False),
    ("base-pretrained", "final-effnetv2s-cifar10-base-pretrained", True, 160, 1600, 16000, False),
    ("progressive", "final-effnetv2s-cifar10", False, 640, 6400, 64000, True),
    ("progressive-pretrained", "final-effnetv2s-cifar10-pretrained", True, 640, 6400, 64000, True),
]


@pytest.mark.parametrize("setting, name, pretrained, epochs, warmup, total, progressive", SETTINGS)
def test_each_final_setting_trains_as_final_loss_testing(setting, name, pretrained, epochs, warmup, total,
                                                         progressive):
    cells = {c.name: c for c in Protocol().cells()}
    for dataset in ("cifar10", "cifar100"):
        cell = cells[f"setting={setting},dataset={dataset}"]
        assert cell.profile == name
        p = load_profile(cell.profile, cell.set)
        assert p.dataset.name == dataset
        assert (p.model.name, p.model.pretrained, p.model.dropout) == ("efficientnet_v2_s", pretrained, 0.1)
        assert (p.batch_size, p.steps_per_epoch, p.epochs) == (64, 100, epochs)
        assert (p.schedule.name, p.schedule.warmup_steps, p.schedule.total_steps) == ("warmup_cosine", warmup, total)
        assert _adam_of_keras(p)
        # tf.keras.losses.CategoricalCrossentropy on the softmax output is F.cross_entropy; other
        # losses still receive the probabilities
        assert (p.loss.inputs, p.loss.fuse_cross_entropy) == ("probabilities", True)
        # our held-out split, and the test set scored every epoch (METHOD.md 7)
        assert (p.dataset.val, p.dataset.val_size, p.dataset.evaluate_test) == ("holdout", 5000, True)
        if progressive:  # progressive_test(test=True): phase 4's run, floor included
            e4 = load_profile("eliminate-4")
            assert p.stage_plan() == e4.stage_plan() and p.floors == e4.floors
            assert _same_pipeline_as_the_search(p)
        else:  # basemodel_test: 32x32, no augmentation, (x - 127.5) / 128, only the scheduler
            assert p.stage_plan()[0].image_size is None and len(p.stage_plan()) == 1
            assert p.augment.name == "none" and p.floors == []
            s = load_profile("surrogate")
            assert getattr(p, "input", None) == getattr(s, "input", None)


def test_every_default_cell_reports_both_figures_and_the_authors_setting_is_one_override():
    from nlfs.transfer.protocol import parse_protocol

    modes = cell_modes(Protocol())
    assert len(modes) == 8 and all(m.held_out and m.figure == "max_test_accuracy" for m in modes.values())
    authors = parse_protocol(None, {"transfer.set": "{dataset.val: test}"})
    for cell in authors.cells():
        p = load_profile(cell.profile, cell.set)
        assert p.dataset.val == "test"  # trains on all 50k, validates on the test set
    modes = cell_modes(authors)
    assert all(m.validates_on_test and not m.held_out and m.figure == "max_test_accuracy" for m in modes.values())
