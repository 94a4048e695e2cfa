"""Training-engine benchmark (issue 4): measured side by side in one run, printing the device.

1. Train-step time of the surrogate network (ResNet9V2 at 80x80, batch 64, METHOD.md 4) with a
   genome loss versus `F.cross_entropy`, read as the default (log_softmax, y*log(p) fused) and as
   the paper profiles read it (softmax probabilities, no fusion): the ratio should be at most 1.05.
2. Input pipeline alone, 32x32 CIFAR-shaped uint8 images to 80x80 model input with RandAugment
   (2 operations, magnitude 5) in batches of 64: the authors' TF RandAugment as nlfs runs it (the
   dataset as a tensor on the device, batched, per-image draws) beside nlfs's torchvision-op
   RandAugment, torchvision's v2.RandAugment image by image, and a plain torchvision `Dataset` +
   `DataLoader` with per-image v2 transforms in worker processes; images per second, goal: the
   authors' RandAugment at least 2x the DataLoader. On a CPU give --threads 1: the batched pipelines
   run in this process, and torch's intra-op threads spinning against the DataLoader's worker
   processes (and any other load) for the same cores slow them several-fold.

    .venv/bin/python bench/bench_train.py --threads 1     # CPU: about a minute
    .venv/bin/python bench/bench_train.py --steps 200 --batches 200 --workers 8   # on a GPU node
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from benchkit import pick_device, sync  # bench/ is on sys.path when a bench runs as a script


def bench_step(device: torch.device, steps: int, rounds: int, batch: int, size: int) -> dict:
    """Seconds per training step for each loss: the best of interleaved rounds, since on a shared
    machine other load only ever adds time."""
    from nlfs import load_loss
    from nlfs.evaluate import resolve_loss
    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec, load_profile

    paper = load_profile("surrogate").loss  # probabilities in, no fusion: as the authors train
    losses = {"F.cross_entropy": F.cross_entropy, "genome cross_entropy": load_loss("cross_entropy"),
              "genome baikal": load_loss("baikal"),
              "genome cross_entropy, paper reading": resolve_loss("cross_entropy", paper)[0],
              "genome baikal, paper reading": resolve_loss("baikal", paper)[0]}
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
    sync(device)
    for _ in range(rounds):
        for name, parts in losses.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step(*parts)
            sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: min(ts) for name, ts in times.items()}


class _TorchvisionDataset(torch.utils.data.Dataset):
    """What a user writes: uint8 HWC arrays in, torchvision v2 transforms per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])


def _rates(pipelines: dict, device: torch.device, batches: int, rounds: int, batch: int) -> dict[str, float]:
    """Images per second of each pipeline: the best of `rounds` timings of `batches` // `rounds`
    batches each, the pipelines taking turns round by round so that a busy spell of a shared
    machine hits them alike. A pipeline is (make_batch, untimed): `untimed` batches are drawn
    before each timing (a DataLoader's prefetched batches, ready before its turn came)."""
    per_round = max(1, batches // rounds)
    best = {name: 0.0 for name in pipelines}
    for make_batch, _ in pipelines.values():
        for _ in range(3):
            make_batch()
    for _ in range(rounds):
        for name, (make_batch, untimed) in pipelines.items():
            for _ in range(untimed):
                make_batch()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(per_round):
                make_batch()
            sync(device)
            best[name] = max(best[name], per_round * batch / (time.perf_counter() - t0))
    return best


def bench_pipeline(device: torch.device, batches: int, rounds: int, batch: int, workers: int,
                   n_images: int, size: int = 80, magnitude: float = 5) -> dict:
    """Images per second delivered to the device as model input: 32x32 CIFAR-shaped uint8 images
    resized to `size`, RandAugment with 2 operations at `magnitude`, scaled. Four pipelines:
    - randaugment_tf: nlfs's form of the authors' TF RandAugment, batched on the device, as the
      surrogate profile trains (TF resize, uint8, (x - 127.5) / 128);
    - randaugment: nlfs's batched torchvision-op RandAugment on floats, mean/std;
    - torchvision_per_image: torchvision.transforms.v2.RandAugment image by image on the device;
    - dataloader: a plain torchvision Dataset + DataLoader, v2 transforms per image in workers.
    The magnitudes are each implementation's own scale (torchvision's 5 of 31 bins is milder)."""
    import torchvision.transforms.v2 as T2

    from nlfs.train import inputs
    from nlfs.train.augment import AugmentRNG
    from nlfs.train.augment_ops import RandAugment
    from nlfs.train.augment_tf import RandAugmentTF

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n_images)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)  # CIFAR-like; any constants do here
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    inv_s = 1.0 / torch.tensor(std, device=device).view(1, 3, 1, 1)

    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)  # the split on the device
    targets = torch.from_numpy(labels).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    arng = AugmentRNG.seeded(0, device)

    def indices():
        return torch.randint(0, n_images, (batch,), generator=gen, device=device)

    ra_tf = RandAugmentTF(num_layers=2, magnitude=magnitude)

    def tf_batch():
        idx = indices()
        x, t = ra_tf(inputs.prepare(data[idx], size, "tf", uint8=True), targets[idx], arng)
        return inputs.finish(x, "centered_128", m, inv_s), t

    ra_tv = RandAugment(num_ops=2, magnitude=magnitude)

    def tv_batched():
        idx = indices()
        x, t = ra_tv(inputs.prepare(data[idx], size, "torch"), targets[idx], arng)
        return inputs.finish(x, "mean_std", m, inv_s), t

    per_image = T2.RandAugment(num_ops=2, magnitude=int(magnitude))

    def tv_per_image():
        idx = indices()
        x = inputs.prepare(data[idx], size, "torch", uint8=True)
        x = torch.stack([per_image(img) for img in x])
        return inputs.finish(x, "mean_std", m, inv_s), targets[idx]

    transform = T2.Compose([T2.ToImage(), T2.Resize(size, antialias=True), T2.RandAugment(num_ops=2, magnitude=int(magnitude)),
                            T2.ToDtype(torch.float32, scale=True), T2.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(_TorchvisionDataset(images, labels, transform), batch_size=batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)

    def loader_batch():
        nonlocal it
        try:
            x, t = next(it)
        except StopIteration:
            it = iter(loader)
            x, t = next(it)
        return x.to(device, non_blocking=True), t.to(device, non_blocking=True)

    prefetched = workers * 2 if workers else 0  # DataLoader's default prefetch_factor
    pipelines = {"randaugment_tf": (tf_batch, 0), "randaugment": (tv_batched, 0),
                 "torchvision_per_image": (tv_per_image, 0), "dataloader": (loader_batch, prefetched)}
    rates = _rates(pipelines, device, batches, rounds, batch)
    return {**{f"{k}_images_per_s": v for k, v in rates.items()}, "workers": workers, "size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round per loss")
    # 16 rounds: the genome's share of a CPU step is a few percent, and best-of-6 still moved the
    # ratio by +-5% between runs on a quiet machine (best-of-16: within 1.00-1.04).
    parser.add_argument("--rounds", type=int, default=16, help="interleaved rounds (the best is kept)")
    parser.add_argument("--batches", type=int, default=64, help="pipeline batches timed per side, over the rounds")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    args = parser.parse_args()
    device, name = pick_device(args.device, args.threads)
    print(f"device: {name}; torch {torch.__version__}")

    steps = bench_step(device, args.steps, args.rounds, batch=64, size=80)
    base = steps["F.cross_entropy"]
    print(f"1. surrogate ResNet9V2 train step, 80x80, batch 64 (best of {args.rounds} rounds of {args.steps} steps)")
    for loss, sec in steps.items():
        print(f"   {loss:36s} {sec * 1000:8.2f} ms/step   ratio to F.cross_entropy {sec / base:5.3f}")
    print("   goal: genome / F.cross_entropy <= 1.05")

    pipe = bench_pipeline(device, args.batches, args.rounds, batch=64, workers=args.workers, n_images=4096)
    rate = {k[: -len("_images_per_s")]: v for k, v in pipe.items() if k.endswith("_images_per_s")}
    ratio = rate["randaugment_tf"] / rate["dataloader"]
    print(f"2. input pipeline: 32x32 uint8 CIFAR-shaped images to {pipe['size']}x{pipe['size']} model input, "
          f"RandAugment 2 ops magnitude 5, batches of 64 (best of {args.rounds} interleaved rounds)")
    print(f"   randaugment_tf: authors' TF RandAugment, nlfs, batched on device  {rate['randaugment_tf']:9.0f} images/s")
    print(f"   randaugment: torchvision's ops, nlfs, batched on device           {rate['randaugment']:9.0f} images/s")
    print(f"   torchvision v2.RandAugment image by image on device              {rate['torchvision_per_image']:9.0f} images/s")
    print(f"   torchvision Dataset + DataLoader, v2 transforms, {args.workers} workers       {rate['dataloader']:9.0f} images/s")
    print(f"   ratio randaugment_tf / DataLoader {ratio:5.2f}   goal: >= 2")
    print(f"   ratio randaugment_tf / torchvision per image {rate['randaugment_tf'] / rate['torchvision_per_image']:5.2f}")
    if args.json:
        print(json.dumps({"device": name, "step_seconds": steps, "pipeline": pipe, "pipeline_ratio": ratio}))


if __name__ == "__main__":
    main()
