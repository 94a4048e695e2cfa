"""How many genomes a cohort trains at once (`runtime.cohort`, `nlfs evaluate --cohort`): a
count, or auto from the profile and the device."""

from __future__ import annotations

import torch

from nlfs.train.data import DataSplit
from nlfs.train.loop import Runtime
from nlfs.train.models import create_model
from nlfs.train.profiles import Profile


def one_stage(profile: Profile) -> bool:
    """Whether a cohort can train this profile: every step of every member has the same shapes."""
    return len(profile.stage_plan()) == 1


AUTO_LIMIT = 16  # auto's most members on one GPU: unmeasured, bench/bench_cohort.py measures K up to 64
SMALL_NETWORK = 2_000_000  # parameters; auto packs networks below this (the surrogates have under 0.1M)


def cohort_size(profile: Profile, runtime: Runtime, choice: int | str, data: DataSplit | None = None
                ) -> tuple[int, str | None]:
    """(members to train at once, why, when that is not simply `choice`) for a profile on a device.

    `choice` is a count or "auto": 1 on CPU (the cores are already busy with one network); on
    CUDA, for a one-stage profile of a small network trained from scratch, as many as half the
    free memory holds (by `member_footprint`, which needs `data`), at most AUTO_LIMIT.
    """
    if not one_stage(profile):
        if choice == 1:
            return 1, None
        return 1, f"{len(profile.stage_plan())} stages: a cohort needs one, so one genome at a time"
    if choice != "auto":
        return int(choice), None
    if runtime.device.type != "cuda" or profile.model.pretrained or data is None:
        return 1, None
    params, member_bytes = member_footprint(profile, data)
    free, _ = torch.cuda.mem_get_info(runtime.device)
    slots = auto_slots(params, member_bytes, free)
    return slots, (f"auto on {runtime.describe()}: {params} parameters, about {member_bytes / 2**20:.0f} MiB "
                   f"per member, {free / 2**30:.1f} GiB free")


def auto_slots(params: int, member_bytes: int, free_bytes: int) -> int:
    """runtime.cohort=auto on a GPU: small networks as many as half the free memory holds, up to
    AUTO_LIMIT; a large network alone (it fills the device by itself)."""
    if params > SMALL_NETWORK:
        return 1
    return max(1, min(AUTO_LIMIT, free_bytes // 2 // max(member_bytes, 1)))


def member_footprint(profile: Profile, data: DataSplit) -> tuple[int, int]:
    """(parameters, bytes) of one member: its network built on the meta device (no memory, no
    arithmetic) and run on one batch at the profile's image size. Bytes count float32
    parameters, gradients and two optimiser moments, and every layer's output twice (kept for
    the backward pass, and its gradient)."""
    with torch.device("meta"):
        model = create_model(profile.model, num_classes=data.num_classes, in_channels=data.in_channels)
    params = sum(p.numel() for p in model.parameters())
    outputs = 0

    def count(module, args, output) -> None:
        nonlocal outputs
        if isinstance(output, torch.Tensor):
            outputs += output.numel()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    size = profile.stage_plan()[0].image_size or profile.image_size or data.image_size
    try:
        model(torch.empty(profile.batch_size, data.in_channels, size, size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return params, 4 * (4 * params + 2 * outputs)
