"""Training-engine benchmark (issue 4): measured side by side in one run, printing the device.

1. Train-step time of the surrogate network (ResNet9V2 at 80x80, batch 64, METHOD.md 4) with a
   genome loss versus `F.cross_entropy`: the ratio should be at most 1.05.
2. Input pipeline alone on CIFAR-size images with RandAugment magnitude 5 in batches of 64: ours
   (the dataset as a tensor on the device, batched per-image augmentation) versus a plain
   torchvision `Dataset` + `DataLoader` with per-sample PIL transforms; images per second, goal 2x.

    .venv/bin/python bench/bench_train.py                 # CPU defaults: about a minute
    .venv/bin/python bench/bench_train.py --steps 200 --batches 200 --workers 8   # on a GPU node
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_step(device: torch.device, steps: int, rounds: int, batch: int, size: int) -> dict:
    """Seconds per training step for each loss: the best of interleaved rounds, since on a shared
    machine other load only ever adds time."""
    from nlfs import load_loss
    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec

    losses = {"F.cross_entropy": F.cross_entropy, "genome cross_entropy": load_loss("cross_entropy"),
              "genome baikal": load_loss("baikal")}
    cuda = device.type == "cuda"
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for name, fn in losses.items():  # one model per loss, so optimiser state does not leak across
        torch.manual_seed(0)
        model = create_model(ModelSpec(name="resnet9v2"), num_classes=10, in_channels=3).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        losses[name] = (fn, model, torch.optim.Adam(model.parameters(), lr=1e-3))

    def step(fn, model, opt):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        loss = fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for name, parts in losses.items():  # warm-up: allocator, cuDNN autotuning, lazy inits
        for _ in range(3):
            step(*parts)
    _sync(device)
    for _ in range(rounds):
        for name, parts in losses.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step(*parts)
            _sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: min(ts) for name, ts in times.items()}


class _PilDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: uint8 HWC array -> PIL image -> transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _best_rate(make_batch, device: torch.device, batches: int, rounds: int, batch: int) -> float:
    """Images per second: the best of `rounds` timings of `batches` // `rounds` batches each."""
    for _ in range(3):
        make_batch()
    per_round = max(1, batches // rounds)
    best = 0.0
    for _ in range(rounds):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(per_round):
            make_batch()
        _sync(device)
        best = max(best, per_round * batch / (time.perf_counter() - t0))
    return best


def bench_pipeline(device: torch.device, batches: int, rounds: int, batch: int, workers: int,
                   n_images: int) -> dict:
    """Images per second delivered to the device, normalised, RandAugment magnitude 5."""
    import torchvision.transforms as T

    from nlfs.train.augment import AugmentRNG
    from nlfs.train.augment_ops import RandAugment
    from nlfs.train.data import as_unit_float

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n_images)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)  # CIFAR-like; any constants do here

    # ours: whole split on the device, index + augment + normalise per batch
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    targets = torch.from_numpy(labels).to(device)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    ra = RandAugment(num_ops=2, magnitude=5)
    arng = AugmentRNG.seeded(0, device)
    gen = torch.Generator(device=device).manual_seed(0)

    def ours_batch():
        idx = torch.randint(0, n_images, (batch,), generator=gen, device=device)
        x, t = ra(as_unit_float(data[idx]), targets[idx], arng)
        return (x - m) / s, t

    ours = _best_rate(ours_batch, device, batches, rounds, batch)

    # plain torchvision: per-sample PIL transforms in DataLoader workers
    transform = T.Compose([T.RandAugment(num_ops=2, magnitude=5), T.ToTensor(), T.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(_PilDataset(images, labels, transform), batch_size=batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)

    def plain_batch():
        nonlocal it
        try:
            x, t = next(it)
        except StopIteration:
            it = iter(loader)
            x, t = next(it)
        return x.to(device, non_blocking=True), t.to(device, non_blocking=True)

    plain = _best_rate(plain_batch, device, batches, rounds, batch)
    return {"ours_images_per_s": ours, "torchvision_images_per_s": plain, "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round per loss")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (the best is kept)")
    parser.add_argument("--batches", type=int, default=60, help="pipeline batches timed per side, over the rounds")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}")

    steps = bench_step(device, args.steps, args.rounds, batch=64, size=80)
    base = steps["F.cross_entropy"]
    print(f"1. surrogate ResNet9V2 train step, 80x80, batch 64 (best of {args.rounds} rounds of {args.steps} steps)")
    for loss, sec in steps.items():
        print(f"   {loss:22s} {sec * 1000:8.2f} ms/step   ratio to F.cross_entropy {sec / base:5.3f}")
    print("   goal: genome / F.cross_entropy <= 1.05")

    pipe = bench_pipeline(device, args.batches, args.rounds, batch=64, workers=args.workers, n_images=4096)
    ratio = pipe["ours_images_per_s"] / pipe["torchvision_images_per_s"]
    print("2. input pipeline, CIFAR-size uint8 images, RandAugment magnitude 5, batches of 64")
    print(f"   ours (tensors on device, batched)      {pipe['ours_images_per_s']:10.0f} images/s")
    print(f"   torchvision Dataset+DataLoader ({args.workers} workers) {pipe['torchvision_images_per_s']:10.0f} images/s")
    print(f"   ratio ours / torchvision {ratio:5.2f}   goal: >= 2")
    if args.json:
        print(json.dumps({"device": name, "step_seconds": steps, "pipeline": pipe, "pipeline_ratio": ratio}))


if __name__ == "__main__":
    main()
