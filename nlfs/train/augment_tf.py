"""The TensorFlow Model Garden RandAugment as the authors ran it (METHOD.md 4.1), batched.

Images are uint8 [B, 3, H, W] in and out, on the training device. Every image draws its own
branch per layer (one of 16 operations or identity), its own sign and its own Cutout centre.
Each operation reproduces the authors' function of the same name in `effnet_rand_aug.py`
(`RandAugment.distort`, `level_to_arg(cutout_const=40, translate_const=100)`), float32
arithmetic and uint8 truncation included, so the outputs equal those of their TensorFlow code
(tests compare every operation with ../shared/golden/randaugment_ops.npz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from nlfs.errors import NlfsError

# `RandAugment.available_ops` in the authors' order: a draw of index 16 is `tf.switch_case`'s
# default branch, the identity.
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
       "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd")
IDENTITY = len(OPS)
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")  # one projective gather serves all
MAX_LEVEL = 10.0  # `_MAX_LEVEL`: magnitudes above it extrapolate the same formulas
CUTOUT_CONST = 40.0  # `RandomProcessImage` passes cutout_const=40, translate_const=100
TRANSLATE_CONST = 100.0
FILL = 128  # the replace value; only Cutout shows it (geometric operations reflect, see `project`)

_f32 = np.float32


@dataclass(frozen=True)
class LevelArgs:
    """Every operation's argument at one magnitude, computed as `level_to_arg` does: in Python
    floats, then rounded to float32 where TensorFlow makes a float32 tensor of them."""

    magnitude: float
    degrees: float  # Rotate: 30 r (r = m / 10), float32, before the random sign
    shear: float  # ShearX/Y: 0.3 r, float32, before the sign
    pixels: float  # TranslateX/Y: 100 r absolute pixels, float32, before the sign
    posterize_shift: int  # 8 - int(4 r) as TF applies it (see `level_args`)
    solarize_threshold: int  # int(256 r) as TF compares it with uint8 pixels: modulo 256
    solarize_addition: int  # int(110 r)
    factor: float  # Color, Contrast, Brightness, Sharpness: 1.8 r + 0.1 (a Python float, as `blend` tests it)
    cutout_pad: int  # int(40 r): Cutout's square has side 2 * pad


def level_args(magnitude: float) -> LevelArgs:
    """`level_to_arg(40, 100)[op](magnitude)` for every op. Two quirks of the authors' TensorFlow
    (both seen in the golden data): Solarize's threshold becomes a uint8 constant, so it wraps
    modulo 256 (m = 10 inverts every pixel); Posterize's shift is clamped to 0..7 by TF's uint8
    shift, so 0 bits (m < 2.5) keeps the top bit. Past 8 bits (m >= 22.5) the shift is negative
    and, by the same uint8 wrap, clamps to 7 as well (the golden data stop at m = 15; TF 2.21
    gives this at m = 22.5 and 30)."""
    if not (magnitude >= 0 and math.isfinite(magnitude)):
        raise NlfsError(f"randaugment_tf magnitude {magnitude} must be a finite number >= 0")
    level = float(magnitude)
    r = level / MAX_LEVEL

    def mult(multiplier: float) -> int:  # `_mult_to_arg`
        return int(r * multiplier)

    shift = (8 - mult(4)) % 256
    return LevelArgs(
        magnitude=level, degrees=float(_f32(r * 30.0)), shear=float(_f32(r * 0.3)),
        pixels=float(_f32(r * TRANSLATE_CONST)), posterize_shift=min(shift, 7),
        solarize_threshold=mult(256) % 256, solarize_addition=mult(110), factor=r * 1.8 + 0.1,
        cutout_pad=mult(CUTOUT_CONST))


def geometric_transforms(args: LevelArgs, height: int, width: int) -> np.ndarray:
    """float32 [5, 2, 6]: the projective transform (output -> input coordinates, the first six
    of TF's eight numbers; the last two are 0) of each GEOMETRIC op (axis 0) with the level kept
    (axis 1 index 0) or negated (index 1). Built as the authors' `_convert_angles_to_transform`,
    `shear_x/y` and `translate_x/y` build them, in float32."""
    out = np.zeros((len(GEOMETRIC), 2, 6), dtype=np.float32)
    w1, h1 = _f32(width - 1), _f32(height - 1)
    for s, sign in enumerate((1.0, -1.0)):
        degrees = _f32(sign * args.degrees)
        radians = degrees * _f32(math.pi / 180.0)
        cos, sin = _f32(math.cos(radians)), _f32(math.sin(radians))
        # In the source's order, as TF evaluates it when the sign is drawn at run time (training).
        # The golden run pinned the draw to a constant and TF folded these offsets in another
        # order: 6 of its 12 rotate transforms differ from these in an offset by one float32 step
        # of the sum before the halving, and none of its pixels does.
        x_offset = (w1 - (cos * w1 - sin * h1)) / _f32(2.0)
        y_offset = (h1 - (sin * w1 + cos * h1)) / _f32(2.0)
        shear = _f32(sign * args.shear)
        pixels = _f32(sign * args.pixels)
        out[0, s] = (cos, -sin, x_offset, sin, cos, y_offset)
        out[1, s] = (1.0, shear, 0.0, 0.0, 1.0, 0.0)
        out[2, s] = (1.0, 0.0, 0.0, shear, 1.0, 0.0)
        out[3, s] = (1.0, 0.0, pixels, 0.0, 1.0, 0.0)  # translate(image, [-pixels, 0])
        out[4, s] = (1.0, 0.0, 0.0, 0.0, 1.0, pixels)
    return out


# ---------------------------------------------------------------------------------------------
# the operations: x uint8 [N, 3, H, W] -> uint8 [N, 3, H, W]


def _reflect(coord: torch.Tensor, size: int) -> torch.Tensor:
    """TF's `MapCoordinate<FILL_REFLECT>` ([dcba|abcd|dcba]) on float32 coordinates, its float32
    operations in its order, then its clamp to [0, size - 1]."""
    if size <= 1:
        return torch.zeros_like(coord)
    sz2 = 2 * size
    # A divisor on the device: CUDA divides by a CPU scalar as a multiply by its reciprocal.
    period = torch.tensor(float(sz2), device=coord.device)
    below = torch.trunc(-coord / period) * sz2 + coord
    below = torch.where(below < -size, below + sz2, -below - 1)
    above = coord - torch.trunc(coord / period) * sz2
    above = torch.where(above >= size, (sz2 - above) - 1, above)
    mapped = torch.where(coord < 0, below, torch.where(coord > size - 1, above, coord))
    return mapped.clamp(0.0, float(size - 1))


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    """std::round on v >= 0, exactly: floor(v + 0.5) in float32 would round 0.49999997 up."""
    whole = torch.floor(v)
    return (whole + (v - whole >= 0.5).to(v.dtype)).long()


def source_index(transforms: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """int64 [N, H W]: for each output pixel (row-major), the flat index of the input pixel that
    TF's ImageProjectiveTransformV2 (NEAREST, REFLECT) reads. transforms float32 [N, 6] map output
    (x, y) to input (t0 x + t1 y + t2, t3 x + t4 y + t5): products and sums in the kernel's order,
    unfused, then reflect, clamp and round half away from zero."""
    n, dev = transforms.shape[0], transforms.device
    t = transforms.to(torch.float32).view(n, 6, 1, 1)
    ox = torch.arange(width, device=dev, dtype=torch.float32).view(1, 1, width)
    oy = torch.arange(height, device=dev, dtype=torch.float32).view(1, height, 1)
    in_x = (t[:, 0] * ox + t[:, 1] * oy) + t[:, 2]
    in_y = (t[:, 3] * ox + t[:, 4] * oy) + t[:, 5]
    ix = _round_half_away(_reflect(in_x, width))
    iy = _round_half_away(_reflect(in_y, height))
    return (iy * width + ix).view(n, height * width)


def gather_pixels(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W], index int64 [N, H W] from `source_index` -> [N, C, H, W]."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def project(x: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """TF's ImageProjectiveTransformV2 with NEAREST interpolation and REFLECT fill, which is what
    the authors' `transform` runs: it passes no fill mode, so `transform_og`'s default 'reflect'
    applies and `wrap`/`unwrap`'s replace value never shows. x [N, C, H, W]; transforms float32
    [N, 6] (see `source_index`)."""
    return gather_pixels(x, source_index(transforms.to(x.device), x.shape[-2], x.shape[-1]))


def _blend(image1: torch.Tensor, image2: torch.Tensor, factor: float) -> torch.Tensor:
    """The authors' `blend`: image1 + factor (image2 - image1) in float32, clipped, truncated.
    image1, image2: float32 holding uint8 values, broadcastable. Their early returns for factor 0
    and 1 give what the sum gives on uint8 values; the callers skip factor 1 themselves, and
    factor = 1.8 r + 0.1 (r = magnitude / 10 >= 0) is never 0."""
    f = float(_f32(factor))
    # Between 0 and 1 the authors skip the clip; the sum cannot leave (-1, 256) there, so the
    # clip changes nothing and one code path serves both.
    return (image1 + f * (image2 - image1)).clamp_(0.0, 255.0).to(torch.uint8)


_GREY_WEIGHTS = (float(_f32(0.2989)), float(_f32(0.5870)), float(_f32(0.1140)))


def _grey(x: torch.Tensor) -> torch.Tensor:
    """`tf.image.rgb_to_grayscale` on uint8 [N, 3, H, W] -> float32 [N, 1, H, W] of uint8 values:
    x (1/255) in float32, weighted (r + g) + b, times 255.5, truncated."""
    xf = x.float() * float(_f32(1.0 / 255.0))
    wr, wg, wb = _GREY_WEIGHTS
    grey = (xf[:, 0:1] * wr + xf[:, 1:2] * wg) + xf[:, 2:3] * wb
    return (grey * 255.5).to(torch.uint8).float()


def autocontrast(x, args, negate, centre):
    """Per channel, stretch [lo, hi] to [0, 255] in float32 (scale 255 / (hi - lo), offset
    -lo * scale), truncated; a constant channel is left unchanged."""
    xf = x.float()
    lo = xf.amin(dim=(2, 3), keepdim=True)
    hi = xf.amax(dim=(2, 3), keepdim=True)
    # A true float32 division: `255.0 / t` is torch's reciprocal times 255, which rounds twice.
    # A constant channel gets scale 1 and offset 0, which leave it exactly as it is.
    stretch = hi > lo
    scale = torch.where(stretch, torch.div(torch.full_like(hi, 255.0), (hi - lo).clamp_min(1.0)), 1.0)
    offset = torch.where(stretch, -lo * scale, 0.0)
    return xf.mul_(scale).add_(offset).clamp_(0.0, 255.0).to(torch.uint8)


def equalize(x, args, negate, centre):
    """PIL's equalize per channel as the authors write it: step = (pixels - count of the top
    value) // 255; lut = (cumsum + step // 2) // step shifted right by one; step 0 -> unchanged."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    top = hist.gather(1, flat.amax(dim=1, keepdim=True))
    step = (h * w - top) // 255
    lut = (hist.cumsum(1) + step // 2) // step.clamp_min(1)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp_(0, 255)
    lut = torch.where(step == 0, torch.arange(256, device=x.device), lut)  # step 0: unchanged
    return lut.gather(1, flat).to(torch.uint8).view(n, c, h, w)


def invert(x, args, negate, centre):
    return 255 - x


def posterize(x, args, negate, centre):
    """(x >> shift) << shift, i.e. clear the low `shift` bits."""
    return x & ((0xFF << args.posterize_shift) & 0xFF)


def solarize(x, args, negate, centre):
    """255 - x where x >= threshold: for uint8, 255 - x is x XOR 255 (and XOR is cheaper than where)."""
    return x ^ (x >= args.solarize_threshold).to(torch.uint8).mul_(255)


def solarize_add(x, args, negate, centre):
    """Add int(110 r) to pixels below 128 (the default threshold), clipped to 0..255."""
    below = (x < 128).to(torch.int16).mul_(args.solarize_addition)
    return below.add_(x).clamp_(0, 255).to(torch.uint8)  # x >= 128 gets + 0 and stays <= 255


def color(x, args, negate, centre):
    if args.factor == 1.0:
        return x
    return _blend(_grey(x), x.float(), args.factor)


def contrast(x, args, negate, centre):
    """Blend with a constant image of the authors' "mean": the grey histogram's total count / 256,
    that is H W / 256 whatever the content (25 at 80x80), truncated to uint8."""
    if args.factor == 1.0:
        return x
    h, w = x.shape[-2:]
    degenerate = float(int(min(255.0, float(_f32(h * w) / _f32(256.0)))))
    return _blend(torch.full((1, 1, 1, 1), degenerate, device=x.device), x.float(), args.factor)


def brightness(x, args, negate, centre):
    if args.factor == 1.0:
        return x
    return _blend(torch.zeros((1, 1, 1, 1), device=x.device), x.float(), args.factor)


_SMOOTH = (float(_f32(1.0) / _f32(13.0)), float(_f32(5.0) / _f32(13.0)))


def sharpness(x, args, negate, centre):
    """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13 in float32, valid region,
    clipped, truncated; the 1-pixel border kept). A sum that is an integer in exact arithmetic can
    land just below it in float32 and truncate one lower, so the summation matters, and TF's
    differs by machine: the golden default (oneDNN) sums the nine taps row by row with fused
    multiply-adds, which this reproduces exactly; without oneDNN (and on some CPUs by default) TF
    sums them unfused, which differs by at most 2 up to m = 15. Each fused step is exact here: in
    float64, pixel (8 bits) times tap (24 bits) plus the float32 accumulator needs under 53 bits,
    so rounding that sum to float32 once is the fused result."""
    if args.factor == 1.0:
        return x
    xd = x.double()
    h, w = x.shape[-2:]
    k1, k5 = _SMOOTH
    acc = torch.zeros_like(xd[..., 1:-1, 1:-1])
    for dy in range(3):
        for dx in range(3):
            tap = xd[..., dy:h - 2 + dy, dx:w - 2 + dx]
            acc = (tap * (k5 if dy == dx == 1 else k1) + acc).float().double()
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = acc.float().clamp_(0.0, 255.0).to(torch.uint8)
    return _blend(degenerate.float(), x.float(), args.factor)


def cutout(x, args, negate, centre):
    """Fill rows [cy - pad, cy + pad) x columns [cx - pad, cx + pad), cut at the border, with 128;
    centre int64 [N, 2] (row, column) drawn uniformly over the image."""
    n, _, h, w = x.shape
    pad = args.cutout_pad
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cy, cx = centre[:, 0].view(n, 1, 1), centre[:, 1].view(n, 1, 1)
    inside = (rows >= cy - pad) & (rows < cy + pad) & (cols >= cx - pad) & (cols < cx + pad)
    return x.masked_fill(inside.unsqueeze(1), FILL)


Op = Callable[[torch.Tensor, LevelArgs, torch.Tensor, torch.Tensor], torch.Tensor]
PIXEL_OPS: dict[str, Op] = {
    "AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert, "Posterize": posterize,
    "Solarize": solarize, "Color": color, "Contrast": contrast, "Brightness": brightness,
    "Sharpness": sharpness, "Cutout": cutout, "SolarizeAdd": solarize_add,
}


# ---------------------------------------------------------------------------------------------
# the augmentation


class RandAugmentTF:
    """`num_layers` layers per image, each one of 17 branches drawn uniformly (16 operations at
    `magnitude` on the 0..10 scale, extrapolated above 10, or identity); the operation is always
    applied (the authors draw a probability per op and never use it). Rotate, shear and translate
    take a random sign per image and layer; Cutout a random centre per image and layer."""

    takes_uint8 = True  # the loop hands it uint8 images and scales its uint8 output afterwards

    def __init__(self, num_layers: int = 2, magnitude: float = 10.0):
        if num_layers < 0:
            raise NlfsError(f"randaugment_tf num_ops {num_layers} must be >= 0")
        self.num_layers = num_layers
        self.args = level_args(magnitude)
        self._tables: dict = {}

    def transforms(self, height: int, width: int, device) -> torch.Tensor:
        """float32 [5, 2, 6] on `device`: `geometric_transforms` for this image size."""
        return torch.from_numpy(geometric_transforms(self.args, height, width)).to(device)

    def _index_maps(self, height: int, width: int, device) -> torch.Tensor:
        """int64 [10, H W]: the source indices of the five geometric ops (row 2 g + s: op
        GEOMETRIC[g], level kept s = 0 or negated s = 1). A magnitude has these ten transforms
        only, so their coordinates are computed once per image size and every batch just gathers."""
        key = (height, width, str(device))
        if key not in self._tables:
            self._tables[key] = source_index(self.transforms(height, width, device).view(10, 6), height, width)
        return self._tables[key]

    def apply(self, name: str, x: torch.Tensor, negate: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Operation `name` on every image of x uint8 [N, 3, H, W]; negate bool [N] (the sign of a
        geometric op's level), centre int64 [N, 2] (Cutout's row and column)."""
        if name in GEOMETRIC:
            return project(x, self.transforms(x.shape[-2], x.shape[-1], x.device)[GEOMETRIC.index(name)][negate.long()])
        return PIXEL_OPS[name](x, self.args, negate, centre)

    def layer(self, x: torch.Tensor, op: torch.Tensor, negate: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """One layer: image i gets branch op[i] (int64 [B] in 0..16, 16 = identity) with negate[i]
        and centre[i]. The batch is sorted by branch (the five geometric ops adjacent, so they
        share one gather), each branch runs on its slice, and one gather restores the order; the
        group sizes cost one device sync."""
        dev = x.device
        if str(dev) not in self._tables:
            self._tables[str(dev)] = tuple(t.to(dev) for t in _TABLES)
        rank_of, geometric_row = self._tables[str(dev)]
        rank = rank_of.index_select(0, op)
        order = torch.argsort(rank, stable=True)
        sizes = torch.bincount(rank, minlength=len(_BRANCH_ORDER)).tolist()
        xs, ops = x.index_select(0, order), op.index_select(0, order)
        negs, centres = negate.index_select(0, order), centre.index_select(0, order)
        pieces, start = [], 0
        for name, size in zip(PIXEL_OPS, sizes):
            if size:
                end = start + size
                pieces.append(PIXEL_OPS[name](xs[start:end], self.args, negs[start:end], centres[start:end]))
                start = end
        end = start + sum(sizes[len(PIXEL_OPS): len(PIXEL_OPS) + len(GEOMETRIC)])
        if end > start:
            which = geometric_row.index_select(0, ops[start:end]) * 2 + negs[start:end].long()
            maps = self._index_maps(x.shape[-2], x.shape[-1], dev)
            pieces.append(gather_pixels(xs[start:end], maps.index_select(0, which)))
        pieces.append(xs[end:])  # identity
        return torch.cat(pieces).index_select(0, torch.argsort(order))

    def draw(self, b: int, h: int, w: int, rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One layer's draws for b images: branch int64 [b], negate bool [b], centre int64 [b, 2]."""
        g, dev = rng.torch, rng.torch.device
        op = torch.randint(IDENTITY + 1, (b,), generator=g, device=dev)
        negate = torch.rand(b, generator=g, device=dev) < 0.5
        rows = torch.randint(h, (b,), generator=g, device=dev)
        cols = torch.randint(w, (b,), generator=g, device=dev)
        return op, negate, torch.stack([rows, cols], dim=1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng) -> tuple[torch.Tensor, torch.Tensor]:
        """x uint8 [B, 3, H, W], y [B] -> (uint8 [B, 3, H, W], y)."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"randaugment_tf takes uint8 RGB images [B, 3, H, W], got {x.dtype} {tuple(x.shape)}")
        b, _, h, w = x.shape
        for _ in range(self.num_layers):
            op, negate, centre = self.draw(b, h, w, rng)
            x = self.layer(x, op.to(x.device), negate.to(x.device), centre.to(x.device))
        return x, y


# The order `layer` sorts branches in: pixel ops, the geometric ones together, identity last.
_BRANCH_ORDER = tuple(PIXEL_OPS) + GEOMETRIC + ("Identity",)
# (branch index -> its place in _BRANCH_ORDER, branch index -> its GEOMETRIC index or 0)
_TABLES = (torch.tensor([_BRANCH_ORDER.index(name) for name in OPS + ("Identity",)]),
           torch.tensor([GEOMETRIC.index(name) if name in GEOMETRIC else 0 for name in OPS + ("Identity",)]))
