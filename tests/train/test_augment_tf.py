"""The authors' RandAugment (nlfs.train.augment_tf) against the outputs of their own TensorFlow
code (../shared/golden/randaugment_ops.npz), and its batched, per-image random form."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nlfs.errors import NlfsError
from nlfs.train.augment import AugmentRNG, build_augmentation
from nlfs.train.augment_tf import GEOMETRIC, IDENTITY, OPS, RandAugmentTF, geometric_transforms, level_args
from nlfs.train.profiles import AugmentSpec

CPU = torch.device("cpu")
# The project's shared folder sits beside the checkout (CI lays it there too).
GOLDEN = Path(os.environ.get("NLFS_GOLDEN", Path(__file__).resolve().parents[2].parent / "shared" / "golden"))


@functools.lru_cache(maxsize=1)
def _golden() -> tuple[dict[str, np.ndarray], dict]:
    npz, index = GOLDEN / "randaugment_ops.npz", GOLDEN / "randaugment_ops.json"
    if not npz.exists() or not index.exists():
        pytest.fail(f"golden RandAugment outputs not found in {GOLDEN}: set NLFS_GOLDEN to the folder")
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(index.read_text())["keys"]


def _keys() -> list[str]:
    """Every stored output key (read lazily so a missing folder fails the tests, not collection)."""
    try:
        with np.load(GOLDEN / "randaugment_ops.npz") as data:
            return sorted(k for k in data.files if k != "inputs")
    except OSError:
        return ["golden-data-missing"]


def _run(key: str) -> tuple[np.ndarray, np.ndarray]:
    """(ours, theirs) for a golden key `<Op>/m<M>[/pos|/neg|/onednn_off]`, as uint8 [6, 80, 80, 3]."""
    arrays, _ = _golden()
    op, mag, *rest = key.split("/")
    x = torch.from_numpy(arrays["inputs"]).permute(0, 3, 1, 2).contiguous()
    n = x.shape[0]
    negate = torch.full((n,), rest == ["neg"])
    centre = torch.tensor([[30, 45]] * n)  # the golden run pinned Cutout's centre here
    ours = RandAugmentTF(num_layers=1, magnitude=float(mag[1:])).apply(op, x, negate, centre)
    return ours.permute(0, 2, 3, 1).numpy(), arrays[key]


@pytest.mark.parametrize("key", [k for k in _keys() if not k.endswith("/onednn_off")])
def test_every_operation_equals_the_authors_tensorflow_output(key):
    ours, theirs = _run(key)
    mismatched = int((ours != theirs).sum())
    assert mismatched == 0, f"{key}: {mismatched} of {ours.size} values differ"


@pytest.mark.parametrize("key", [k for k in _keys() if k.endswith("/onednn_off")])
def test_sharpness_is_within_2_of_tensorflow_without_onednn(key):
    """Without oneDNN TF sums the smoothing filter in another order: the same op, off by <= 2."""
    ours, theirs = _run(key)
    assert int(np.abs(ours.astype(int) - theirs.astype(int)).max()) <= 2


def test_golden_data_hold_every_operation_at_every_magnitude_and_sign():
    _, index = _golden()
    expected = {f"{op}/m{m}" + sign for op in OPS for m in (1, 5, 8, 10, 12, 15)
                for sign in (("/pos", "/neg") if op in GEOMETRIC else ("",))}
    assert expected <= set(index) and len(expected) == 16 * 6 + 5 * 6


@pytest.mark.parametrize("key", [k for k in _keys() if k.split("/")[0] in GEOMETRIC])
def test_geometric_transforms_equal_the_authors_float32_transforms(key):
    """Bit for bit, except Rotate's two offsets: the golden run pinned the random sign to a
    constant, which let TF fold ((w-1) - (cos (w-1) - sin (h-1))) / 2 in another order than the
    source's (which TF follows when the sign is drawn at run time, as in training, and which nlfs
    follows): there they differ by one float32 step of a sum between 64 and 128 (2^-17), halved."""
    _, index = _golden()
    op, mag, sign = key.split("/")
    ours = geometric_transforms(level_args(float(mag[1:])), 80, 80)[GEOMETRIC.index(op), int(sign == "neg")]
    theirs = np.array(index[key]["transform_float32"][:6], dtype=np.float32)
    exact = [0, 1, 3, 4] if op == "Rotate" else list(range(6))
    assert np.array_equal(ours[exact], theirs[exact]), (ours, theirs)
    assert np.abs(ours - theirs).max() <= 2.0 ** -18, (ours, theirs)


@pytest.mark.parametrize("key", [k for k in _keys() if k.split("/")[0] not in GEOMETRIC and "onednn" not in k])
def test_level_arguments_equal_the_authors(key):
    _, index = _golden()
    entry, args = index[key], level_args(float(key.split("/")[1][1:]))
    got = {"Posterize": lambda: {"shift": args.posterize_shift},
           "Solarize": lambda: {"threshold": args.solarize_threshold},
           "SolarizeAdd": lambda: {"addition": args.solarize_addition},
           "Cutout": lambda: {"pad_size": args.cutout_pad}}.get(entry["op"], lambda: {"factor": args.factor})()
    want = {"Posterize": lambda: {"shift": entry.get("effective_shift_after_tf_clamp", entry.get("shift"))},
            "Solarize": lambda: {"threshold": entry["effective_threshold_uint8"]},
            "SolarizeAdd": lambda: {"addition": entry["args"]["addition"]},
            "Cutout": lambda: {"pad_size": entry["args"]["pad_size"]}}.get(entry["op"], lambda: entry["args"])()
    if entry["op"] in ("AutoContrast", "Equalize", "Invert"):
        assert want == {}
    else:
        assert got == want


def _images(b: int, side: int = 24, seed: int = 0) -> torch.Tensor:
    """uint8 [b, 3, side, side]: noise over a flat patch and a ramp, so every op changes something."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(20, 231, (b, 3, side, side), generator=g, dtype=torch.uint8)  # no channel spans 0..255
    x[:, :, : side // 3] = 90
    x[:, 0, -side // 4:] = torch.arange(side, dtype=torch.uint8) * (255 // side)
    return x


def test_batched_layer_equals_each_image_alone_with_mixed_ops_in_one_batch():
    aug = RandAugmentTF(num_layers=1, magnitude=8)
    g = torch.Generator().manual_seed(5)
    op = torch.arange(IDENTITY + 1).repeat(3)[torch.randperm(3 * (IDENTITY + 1), generator=g)]
    b = op.shape[0]
    negate = torch.rand(b, generator=g) < 0.5
    centre = torch.randint(0, 24, (b, 2), generator=g)
    x = _images(b)
    batched = aug.layer(x, op, negate, centre)
    alone = [x[i:i + 1] if op[i] == IDENTITY else aug.apply(OPS[op[i]], x[i:i + 1], negate[i:i + 1], centre[i:i + 1])
             for i in range(b)]
    assert torch.equal(batched, torch.cat(alone))
    changed = (batched != x).flatten(1).any(1)
    assert changed[op != IDENTITY].all() and not changed[op == IDENTITY].any()


def test_each_image_draws_its_own_ops_signs_and_cutout_centre():
    aug = RandAugmentTF(num_layers=2, magnitude=5)
    rng = AugmentRNG.seeded(0, CPU)
    draws = [aug.draw(4096, 80, 80, rng) for _ in range(2)]
    for op, negate, centre in draws:
        counts = torch.bincount(op, minlength=IDENTITY + 1)
        assert counts.shape[0] == IDENTITY + 1 and counts.min() > 4096 / 17 * 0.8  # all 17 branches, uniform
        assert 0.45 < negate.float().mean() < 0.55
        assert centre.min() >= 0 and centre.max() <= 79 and len(set(centre[:, 0].tolist())) == 80
    assert not torch.equal(draws[0][0], draws[1][0])  # the second layer draws afresh

    # At m = 5 Color, Contrast, Brightness and Sharpness have factor 1 and change nothing, so
    # 9 of 17 branches differ image by image (signs, centres) at m = 9 and more.
    same = _images(1).expand(64, -1, -1, -1).contiguous()
    out, _ = RandAugmentTF(2, 9)(same, torch.zeros(64, dtype=torch.long), AugmentRNG.seeded(1, CPU))
    assert len({o.numpy().tobytes() for o in out}) > 48


def test_seeded_runs_repeat_and_other_seeds_differ():
    aug = RandAugmentTF(num_layers=2, magnitude=9)
    x, y = _images(32), torch.arange(32)
    first, y1 = aug(x, y, AugmentRNG.seeded(7, CPU))
    again, _ = aug(x, y, AugmentRNG.seeded(7, CPU))
    other, _ = aug(x, y, AugmentRNG.seeded(8, CPU))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.dtype == torch.uint8 and first.shape == x.shape and torch.equal(y1, y)


def _reflect_index(k: np.ndarray, n: int) -> np.ndarray:
    """[dcba|abcd|dcba] repeated without end, for integer coordinates."""
    m = np.mod(k, 2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


@pytest.mark.parametrize("magnitude", [20.0, 37.5])
def test_translations_beyond_twice_the_image_reflect_again(magnitude):
    """Above 10 the formulas extrapolate: m = 37.5 shifts 375 px on a 24-px image."""
    aug = RandAugmentTF(num_layers=1, magnitude=magnitude)
    x = _images(2)
    shift = int(aug.args.pixels)
    assert shift == magnitude * 10
    for name, axis in (("TranslateX", 3), ("TranslateY", 2)):
        for negate in (False, True):
            out = aug.apply(name, x, torch.tensor([negate] * 2), torch.zeros(2, 2, dtype=torch.long))
            source = _reflect_index(np.arange(24) + (-shift if negate else shift), 24)
            assert torch.equal(out, x.index_select(axis, torch.from_numpy(source)))


def test_magnitudes_extrapolate_past_ten():
    args = level_args(15)
    assert (args.degrees, args.pixels, args.cutout_pad, args.solarize_addition) == (45.0, 150.0, 60, 165)
    assert math.isclose(args.factor, 2.8) and args.solarize_threshold == 384 % 256
    assert level_args(25).posterize_shift == 7  # 10 bits: a negative shift, wrapped and clamped as uint8


@pytest.mark.parametrize("magnitude", [-1.0, float("nan"), float("inf")])
def test_bad_magnitude_is_a_user_error(magnitude):
    """A profile refuses such a magnitude when it is loaded; one given by a stage is refused here."""
    with pytest.raises(NlfsError, match="magnitude"):
        build_augmentation(AugmentSpec(name="randaugment_tf"), magnitude=magnitude,
                           num_classes=10, mean=(0.5, 0.5, 0.5))


def test_grey_dataset_is_a_user_error():
    with pytest.raises(NlfsError, match="RGB"):
        build_augmentation(AugmentSpec(name="randaugment_tf"), magnitude=5, num_classes=10, mean=(0.5,))


def test_float_images_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        RandAugmentTF()(torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), AugmentRNG.seeded(0, CPU))
