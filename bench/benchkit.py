"""What the benchmarks share: the device they run on, named the way every bench prints it, and
waiting for it before a clock is read."""

from __future__ import annotations

import torch


def pick_device(wanted: str, threads: int | None) -> tuple[torch.device, str]:
    """The device a bench runs on (`wanted`: auto, cpu or cuda) and its name for the first line
    of output; sets torch's thread count first when `threads` is given."""
    if threads:
        torch.set_num_threads(threads)
    cuda = torch.cuda.is_available() and wanted in ("auto", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    return device, name


def sync(device: torch.device) -> None:
    """Wait for the queued work on `device` (CUDA runs asynchronously), so a timer reads its end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
