"""Image batches -> model input, as a profile's `input` section says (METHOD.md 4): the resize
(torch's bilinear or TensorFlow's, as the authors' `tf.image.resize`), the uint8 images an
augmentation that takes uint8 receives, and the scaling (dataset mean/std, x / 255, or
(x - 127.5) / 128).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from nlfs.train.data import as_unit_float


@functools.lru_cache(maxsize=64)
def _tf_axis(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF's `compute_interpolation_weights` with the half-pixel scaler, in float32: source
    indices lower, upper int64 [out_size] and the weight of upper, lerp float32 [out_size].
    Cached per (sizes, device): every batch resizes alike, and on CUDA the three host-to-device
    copies would stall the queue each step. Callers only read them."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    lerp = src - floor
    return (torch.from_numpy(lower).to(device), torch.from_numpy(upper).to(device),
            torch.from_numpy(lerp).to(device))


def resize_tf(x: torch.Tensor, size: int) -> torch.Tensor:
    """`tf.image.resize(images, (size, size))` with its defaults, as the authors' loaders call it
    (`RandomProcessImage`, `preprocess_image`): bilinear, half-pixel centres, no antialiasing,
    edge indices clamped, each output top + (bottom - top) * y_lerp with top and bottom the same
    lerp along x, in float32. x float [B, C, H, W] on any scale -> float [B, C, size, size]."""
    y0, y1, ly = _tf_axis(x.shape[-2], size, x.device)
    x0, x1, lx = _tf_axis(x.shape[-1], size, x.device)
    # Every input row is lerped along x once ([B, C, H, size]); `top` and `bottom` of an output
    # row are two of these rows, the very values TF computes per output pixel.
    x = x.float()
    b, c, h, _ = x.shape
    left = x.gather(3, x0.view(1, 1, 1, -1).expand(b, c, h, size))
    right = x.gather(3, x1.view(1, 1, 1, -1).expand(b, c, h, size))
    rows = right.sub_(left).mul_(lx).add_(left)  # left + (right - left) lx
    top, bottom = rows.index_select(2, y0), rows.index_select(2, y1)
    return bottom.sub_(top).mul_(ly.view(-1, 1)).add_(top)  # top + (bottom - top) ly


def resize(x: torch.Tensor, size: int, method: str) -> torch.Tensor:
    """x float [B, C, H, W] -> [B, C, size, size]. torch: bilinear, antialiased when shrinking
    (nlfs's default); tf: `resize_tf`."""
    if method == "tf":
        return resize_tf(x, size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float 0..255 -> uint8 as the authors' `RandAugment.distort` casts its input: clip to
    0..255, then truncate."""
    return x.clamp(0.0, 255.0).to(torch.uint8)  # (a copy: callers may keep x)


def prepare(x: torch.Tensor, size: int | None, method: str, *, uint8: bool = False) -> torch.Tensor:
    """x [B, C, H, W] uint8 0..255 or float 0..1 -> at `size` x `size` (None: as it is): float
    0..1, or with `uint8` uint8 0..255 (resized on the 0..255 scale, then `to_uint8`)."""
    resizing = size is not None and size != x.shape[-1]
    if uint8:
        if x.dtype == torch.uint8 and not resizing:
            return x
        pixels = x.float() if x.dtype == torch.uint8 else x.float() * 255.0
        return to_uint8(resize(pixels, size, method) if resizing else pixels)
    x = as_unit_float(x)
    return resize(x, size, method) if resizing else x


def finish(x: torch.Tensor, scaling: str, mean: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """Images from `prepare` or an augmentation (uint8 0..255 or float 0..1) [B, C, H, W] -> the
    model's float input. mean_std: (x - mean) / std per channel on the 0..1 scale (mean, inv_std
    [1, C, 1, 1]); unit: x / 255 (the authors' 32x32 runs); centered_128: (x - 127.5) / 128 on the
    0..255 scale (their augmented runs, `RandomProcessImage`). Exact from uint8; from float 0..1
    within float32 rounding."""
    if x.dtype == torch.uint8:
        if scaling == "centered_128":
            return x.float().sub_(127.5).div_(128.0)
        x = x.float() / torch.tensor(255.0, device=x.device)  # a true division on CUDA too
    if scaling == "centered_128":
        return (x * 255.0 - 127.5) / 128.0
    if scaling == "unit":
        return x
    return (x - mean) * inv_std
