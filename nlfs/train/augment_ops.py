"""RandAugment and AutoAugment as batched tensor operations with per-image draws.

torchvision's transforms apply one draw to a whole batch; here every image gets its own
operations, signs and probabilities, and each operation runs once per batch on the subset of
images that drew it. Operation set and magnitude tables are torchvision's own
(`_augmentation_space`, `_get_policies`), so magnitudes mean what they mean there.
Images: float [B, C, H, W] in 0..1, C = 1 or 3. Geometric operations pivot on the image centre
and fill with 0 (torchvision: the top-left corner for shears, also fill 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torchvision.transforms.v2 import functional as TF

from nlfs.errors import NlfsError


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sample x [N, C, H, W] at theta [N, 2, 3] (normalised output -> input coordinates)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _identity_theta(n: int, like: torch.Tensor) -> torch.Tensor:
    theta = torch.zeros(n, 2, 3, device=like.device, dtype=like.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    return theta


def shear_x(x, v):
    """v [N]: shear factor; output (x, y) reads input (x + v*y, y)."""
    theta = _identity_theta(x.shape[0], x)
    theta[:, 0, 1] = v * x.shape[-2] / x.shape[-1]
    return _affine(x, theta)


def shear_y(x, v):
    theta = _identity_theta(x.shape[0], x)
    theta[:, 1, 0] = v * x.shape[-1] / x.shape[-2]
    return _affine(x, theta)


def translate_x(x, v):
    """v [N]: shift right by v pixels."""
    theta = _identity_theta(x.shape[0], x)
    theta[:, 0, 2] = -2.0 * v / x.shape[-1]
    return _affine(x, theta)


def translate_y(x, v):
    theta = _identity_theta(x.shape[0], x)
    theta[:, 1, 2] = -2.0 * v / x.shape[-2]
    return _affine(x, theta)


def rotate(x, v):
    """v [N]: degrees."""
    rad = v * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    h, w = x.shape[-2:]
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return _affine(x, theta)


def _grey(x):
    """Luma [N, 1, H, W] (ITU-R 601-2, as PIL and torchvision)."""
    if x.shape[1] == 1:
        return x
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(img, other, factor):
    """other + factor * (img - other), clamped; other broadcasts to img, factor [N]."""
    return (img - other).mul_(factor.view(-1, 1, 1, 1)).add_(other).clamp_(0.0, 1.0)


def brightness(x, v):
    """v [N]: factor - 1."""
    return (x * (1.0 + v).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def color(x, v):
    return _blend(x, _grey(x), 1.0 + v)


def contrast(x, v):
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, 1.0 + v)


def sharpness(x, v):
    """Blend with PIL's smoothing filter ([[1,1,1],[1,5,1],[1,1,1]] / 13, borders unchanged):
    a 3x3 box sum plus 4x the centre, which is cheaper than a depthwise convolution."""
    smooth = x.clone()
    box = F.avg_pool2d(x, 3, stride=1) * 9.0
    smooth[..., 1:-1, 1:-1] = box.add_(x[..., 1:-1, 1:-1], alpha=4.0).div_(13.0)
    return _blend(x, smooth, 1.0 + v)


def posterize(x, v):
    """v [N]: bits to keep (1..8)."""
    step = torch.pow(2.0, 8.0 - v).view(-1, 1, 1, 1)
    levels = torch.floor(x * 255.0 + 0.5)
    return torch.floor(levels / step) * step / 255.0


def solarize(x, v):
    """v [N]: threshold on the 0..255 scale; pixels at or above it are inverted."""
    return torch.where(x >= (v / 255.0).view(-1, 1, 1, 1), 1.0 - x, x)


def autocontrast(x, v):
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def equalize(x, v):
    as_uint8 = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return TF.equalize(as_uint8).float().div_(255.0)


def invert(x, v):
    return 1.0 - x


def identity(x, v):
    return x


OPS = {
    "Identity": identity, "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x,
    "TranslateY": translate_y, "Rotate": rotate, "Brightness": brightness, "Color": color,
    "Contrast": contrast, "Sharpness": sharpness, "Posterize": posterize, "Solarize": solarize,
    "AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert,
}


def apply_per_sample(x: torch.Tensor, names: list[str], op_index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Image i gets operation names[op_index[i]] with value[i]; x [B, C, H, W], op_index and value [B]."""
    out = x.clone()
    for k, name in enumerate(names):
        if name == "Identity":
            continue
        sel = (op_index == k).nonzero().squeeze(1)
        if sel.numel():
            out[sel] = OPS[name](x[sel], value[sel])
    return out


def _tables(space: dict, bins: int, names: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """[ops, bins] magnitude values and [ops] signed flags from a torchvision augmentation space."""
    values = torch.zeros(len(names), bins)
    signed = torch.zeros(len(names), dtype=torch.bool)
    for k, name in enumerate(names):
        mags, is_signed = space[name]
        values[k] = mags.float() if mags.ndim else torch.zeros(bins)
        signed[k] = is_signed
    return values.to(device), signed.to(device)


def _random_sign(shape, rng, device) -> torch.Tensor:
    return torch.where(torch.rand(shape, generator=rng.torch, device=device) < 0.5, -1.0, 1.0)


class RandAugment:
    """`num_ops` operations per image, each uniform over torchvision's 14, at `magnitude` (an
    index into 31 bins, torchvision's default scale; fractional magnitudes round), random sign."""

    BINS = 31

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0):
        self.num_ops = num_ops
        self.magnitude = int(round(magnitude))
        if not 0 <= self.magnitude < self.BINS:
            raise NlfsError(f"RandAugment magnitude {magnitude} outside 0..{self.BINS - 1}")
        self._cache: dict = {}

    def _space(self, h: int, w: int, device):
        key = (h, w, str(device))
        if key not in self._cache:
            space = T.RandAugment()._augmentation_space(self.BINS, (h, w))
            names = list(space)
            values, signed = _tables(space, self.BINS, names, device)
            self._cache[key] = (names, values[:, self.magnitude], signed)
        return self._cache[key]

    def __call__(self, x, y, rng):
        names, values, signed = self._space(x.shape[-2], x.shape[-1], x.device)
        b = x.shape[0]
        for _ in range(self.num_ops):
            op = torch.randint(len(names), (b,), generator=rng.torch, device=x.device)
            value = values[op] * torch.where(signed[op], _random_sign(b, rng, x.device), 1.0)
            x = apply_per_sample(x, names, op, value)
        return x, y


class AutoAugmentCifar10:
    """torchvision's CIFAR-10 AutoAugment policy: one of 25 sub-policies per image, each of its two
    operations applied with its probability, magnitudes from torchvision's 10-bin table."""

    BINS = 10

    def __init__(self):
        aa = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
        self._policies = aa._get_policies(T.AutoAugmentPolicy.CIFAR10)
        self._cache: dict = {}

    def _tables(self, h: int, w: int, device):
        key = (h, w, str(device))
        if key not in self._cache:
            space = T.AutoAugment()._augmentation_space(self.BINS, (h, w))
            space["Identity"] = (torch.tensor(0.0), False)  # a slot whose probability did not fire
            names = list(space)
            values, signed = _tables(space, self.BINS, names, device)
            # [policies, 2] op index, probability and value for each of a sub-policy's two slots.
            ops = torch.tensor([[names.index(op) for op, _, _ in pol] for pol in self._policies], device=device)
            prob = torch.tensor([[p for _, p, _ in pol] for pol in self._policies], device=device)
            val = torch.stack([torch.stack([values[names.index(op), m or 0] for op, _, m in pol])
                               for pol in self._policies])
            self._cache[key] = (names, ops, prob, val, signed)
        return self._cache[key]

    def __call__(self, x, y, rng):
        names, ops, prob, val, signed = self._tables(x.shape[-2], x.shape[-1], x.device)
        b = x.shape[0]
        pick = torch.randint(len(self._policies), (b,), generator=rng.torch, device=x.device)
        identity_index = names.index("Identity")
        for slot in range(2):
            op = ops[pick, slot]
            applied = torch.rand(b, generator=rng.torch, device=x.device) < prob[pick, slot]
            op = torch.where(applied, op, identity_index)
            value = val[pick, slot] * torch.where(signed[op], _random_sign(b, rng, x.device), 1.0)
            x = apply_per_sample(x, names, op, value)
        return x, y
