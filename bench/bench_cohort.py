"""Cohort benchmark (issue 13): several genomes trained at once on one device, measured side by side
in one run, printing the device.

1. Design: K networks stacked into one (nlfs.train.stacked, what the cohort trains) against the
   same K networks stepped one after another in a loop, seconds per step of all K.
2. Seconds per surrogate evaluation (METHOD.md 4 B, fitness function 2: the 32x32 gate of 800
   steps, then the 80x80 main run of 8000 steps, every epoch validated on 5000 images) on
   CIFAR-10-shaped data (the `fake` dataset, its validation split repeated to 5000 images):
   solo (nlfs.train.loop.train) and in cohorts of K, as evaluations per device-hour. Each phase
   trains 2 epochs; the last one is timed with validation on 1 image (a step's seconds) and on
   5000 (a validation's), and an evaluation counts 8 + 80 such epochs of 100 steps, as if no
   floor stopped it early: the cost of a genome that trains to the end.
3. Step time with genome losses (random genomes that pass the integrity check, as the search
   trains) over step time with cross-entropy (F.cross_entropy), solo and in a cohort.

    python bench/bench_cohort.py                 # the full form on a GPU; on CPU, --quick
    python bench/bench_cohort.py --quick         # few steps, K = 1, 4: shows it works on CPU (minutes)
    python bench/bench_cohort.py --check         # a GPU's CUDA path against the CPU-tested one, then exit
    python bench/bench_cohort.py --variant graphs --variant compile   # the fast path's options too

bench/gpu_cohort.sh runs --check and the full form on a lent GPU in one go.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import numpy as np
import torch
from benchkit import pick_device, sync  # bench/ is on sys.path when a bench runs as a script

# The runtime options each variant sets on top of the profiles' own (on CUDA: bf16 autocast and
# channels_last, runtime.amp/channels_last auto).
VARIANTS = {
    "eager": {},
    "graphs": {"runtime.cuda_graphs": "true"},
    "compile": {"runtime.compile": "true", "runtime.compile_loss": "true"},
    "compile+graphs": {"runtime.compile": "true", "runtime.compile_loss": "true", "runtime.cuda_graphs": "true"},
    "fp32": {"runtime.amp": "off", "runtime.channels_last": "false"},
}
GATE_EPOCHS, MAIN_EPOCHS, VAL_IMAGES = 8, 80, 5000  # METHOD.md 4 B


def _profiles(device: str, steps: int, epochs: int, variant: dict[str, str]):
    """The paper's gate and main profiles (surrogate-gate, surrogate) on `fake`, cut to `epochs`
    of `steps`, without floors (every member trains to the end)."""
    from nlfs.train.profiles import load_profile

    common = {"dataset.name": "fake", "dataset.val_size": "256", "steps_per_epoch": str(steps), "epochs": str(epochs),
              "floors": "[]", "runtime.device": device, "runtime.time_limit_s": "null", **variant}
    return load_profile("surrogate-gate", common), load_profile("surrogate", common)


def _data(profile, runtime, val_images: int):
    """The profile's data on the device, its validation split repeated to `val_images` images."""
    from nlfs.train.data import load_dataset

    data = load_dataset(profile.dataset, runtime.device)
    reps = -(-val_images // data.val_x.shape[0])
    return dataclasses.replace(data, val_x=data.val_x.repeat(reps, 1, 1, 1)[:val_images],
                               val_y=data.val_y.repeat(reps)[:val_images])


def _losses(profile, count: int, kind: str) -> list:
    """`count` loss modules: "genome" = random genomes that pass the integrity check (seeded),
    "reference" = the registered genome losses in turn, "ce" = F.cross_entropy each."""
    from nlfs.evaluate import resolve_loss

    if kind == "ce":
        return [torch.nn.functional.cross_entropy] * count
    if kind == "reference":
        names = ["cross_entropy", "focal", "baikal", "poly1", "label_smoothing", "mse"]
        return [resolve_loss(names[i % len(names)], profile.loss)[0] for i in range(count)]
    from nlfs.genome.mutate import random_accepted

    genomes = random_accepted(np.random.default_rng(13), min(count, 16), max_draws=200_000)
    return [resolve_loss(genomes[i % len(genomes)], profile.loss)[0] for i in range(count)]


def epoch_seconds(profile, data, losses: list, runtime, solo: bool = False) -> float:
    """Wall seconds of the last epoch of a cohort of len(losses) (or of one solo run) under
    `profile`: steps, NaN checks and the epoch's validation."""
    from nlfs.train.cohort import CohortJob, train_cohort
    from nlfs.train.loop import train

    if solo:
        outcomes = [train(profile, data, losses[0], seed=0, runtime=runtime)]
    else:
        jobs = [CohortJob(f"m{i}", loss, 0) for i, loss in enumerate(losses)]
        outcomes = [r.outcome for r in train_cohort(profile, data, jobs, slots=len(jobs), runtime=runtime)]
    finished = [o.epochs[-1].seconds for o in outcomes if len(o.epochs) == profile.epochs]
    if not finished:
        raise RuntimeError(f"no member trained all {profile.epochs} epochs: {[o.status for o in outcomes]}")
    return max(finished)


# ---- 1. stacked against a loop -------------------------------------------------------------------

def bench_design(device: torch.device, model_name: str, size: int, batch: int, ks: list[int], steps: int,
                 rounds: int) -> dict[int, dict[str, float]]:
    """Seconds per step of K networks: stacked (functional_call under vmap, one optimiser over the
    flat buffer) against a loop over K modules with K torch.optim.Adam; the best of `rounds`. On
    CUDA as the cohort runs there (bf16 autocast, channels_last inputs), and both steps also
    captured whole in a CUDA graph and replayed: a loop then launches nothing either, which is
    the case for K networks in one graph rather than one stacked network."""
    import torch.nn.functional as F

    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec, OptimizerSpec
    from nlfs.train.stacked import StackedNet, StackedOptimizer, lr_table

    cuda = device.type == "cuda"
    channels = 1 if model_name == "tiny_cnn" else 3
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, size, size, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda, cache_enabled=False)

    out: dict[int, dict[str, float]] = {}
    for k in ks:
        models = []
        for i in range(k):
            torch.manual_seed(i)
            m = create_model(ModelSpec(name=model_name), num_classes=10, in_channels=channels).to(device)
            models.append(m.to(memory_format=torch.channels_last) if cuda else m)
        optimisers = [torch.optim.Adam(m.parameters(), lr=1e-3, capturable=cuda) for m in models]
        stacked = StackedNet(copy.deepcopy(models[0]), k)
        for i, m in enumerate(models):
            stacked.load(i, m)
        opt = StackedOptimizer(OptimizerSpec(), stacked, lr_table([1e-3]))
        fn = stacked.function(per_slot=False)
        active = torch.ones(k, dtype=torch.float64, device=device)

        def loop_step():
            for m, o in zip(models, optimisers):
                with autocast():
                    logits = m(x)
                loss = F.cross_entropy(logits.float(), y)
                o.zero_grad(set_to_none=False)
                loss.backward()
                o.step()

        def stacked_step():
            with autocast():
                logits = fn(stacked.params, stacked.buffers, x)
            stacked.grad.zero_()
            torch.autograd.backward([F.cross_entropy(logits[i].float(), y) for i in range(k)])
            opt.step(active)

        variants = {"loop": loop_step, "stacked": stacked_step}
        for step in variants.values():
            step()  # warm-up: allocator, kernels' first calls, optimiser state
        if cuda:
            variants.update({f"{name}+graph": _graphed(step, device) for name, step in list(variants.items())})
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, step in variants.items():
                sync(device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                sync(device)
                times[name].append((time.perf_counter() - t0) / steps)
        out[k] = {name: min(ts) for name, ts in times.items()}
    return out


def _graphed(step, device: torch.device):
    """`step` captured in a CUDA graph (after warm-up steps on a side stream); returns its replay."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


# ---- 2. seconds per evaluation ----------------------------------------------------------------------

def bench_evaluations(device_name: str, steps: int, epochs: int, ks: list[int], val_images: int,
                      variant: dict[str, str], repeat: int) -> dict:
    """Seconds per evaluation solo and for each K. Each phase's last epoch is timed with its
    validation on one image (`steps` steps: a step's seconds t) and on `val_images` images (the
    difference: a validation's seconds v), the best of `repeat` runs; an epoch of the paper is
    100 t + v."""
    from nlfs.train.loop import Runtime

    gate, main = _profiles(device_name, steps, epochs, variant)
    runtime = Runtime.resolve(main.runtime)
    data = {(name, n): _data(p, runtime, n) for name, p in (("gate", gate), ("main", main)) for n in (1, val_images)}

    def phase(name: str, profile, k: int, solo: bool) -> tuple[float, float]:
        losses = _losses(profile, k, "reference")
        bare = min(epoch_seconds(profile, data[name, 1], losses, runtime, solo) for _ in range(repeat))
        full = min(epoch_seconds(profile, data[name, val_images], losses, runtime, solo) for _ in range(repeat))
        return bare / steps, max(full - bare, 0.0)

    rows, parts = {}, {}
    for k, solo in [(1, True)] + [(k, False) for k in ks]:
        (gt, gv), (mt, mv) = phase("gate", gate, k, solo), phase("main", main, k, solo)
        key = "solo" if solo else k
        rows[key] = (GATE_EPOCHS * (100 * gt + gv) + MAIN_EPOCHS * (100 * mt + mv)) / k
        parts[key] = {"gate_step": gt, "gate_validation": gv, "main_step": mt, "main_validation": mv}
    return {"seconds_per_evaluation": rows, "parts": parts, "runtime": _describe(runtime)}


def _describe(runtime) -> str:
    amp = "bf16 autocast" if runtime.amp_dtype is not None else "fp32"
    parts = [runtime.describe(), amp, "channels_last" if runtime.channels_last else "contiguous"]
    parts += [name for name, on in (("compile", runtime.compile), ("compile_loss", runtime.compile_loss),
                                    ("cuda_graphs", runtime.cuda_graphs)) if on]
    return ", ".join(parts)


# ---- 3. genome / cross-entropy -----------------------------------------------------------------------

def bench_loss_ratio(device_name: str, steps: int, ks: list[int], variant: dict[str, str], repeat: int) -> dict:
    """Main-run step time (80x80, batch 64) with genome losses over that with F.cross_entropy,
    validation cut to 64 images so that steps dominate; the best of `repeat` runs each."""
    from nlfs.train.loop import Runtime

    _, main = _profiles(device_name, steps, 2, variant)
    runtime = Runtime.resolve(main.runtime)
    data = _data(main, runtime, 64)
    out = {}
    for k, solo in [(1, True)] + [(k, False) for k in ks]:
        ce = min(epoch_seconds(main, data, _losses(main, k, "ce"), runtime, solo) for _ in range(repeat))
        genome = min(epoch_seconds(main, data, _losses(main, k, "genome"), runtime, solo) for _ in range(repeat))
        out["solo" if solo else k] = {"ce": ce / steps, "genome": genome / steps, "ratio": genome / ce}
    return out


# ---- checks on a GPU ------------------------------------------------------------------------------------

def check_cuda() -> None:
    """The CUDA path against what the CPU tests hold: members reproduce their solo runs (float64,
    deterministic kernels), a NaN member leaves the others as they were, and the fast variants
    train like eager float32 (bf16 within 5%)."""
    import os

    from nlfs.evaluate import resolve_loss
    from nlfs.train.cohort import CohortJob, train_cohort
    from nlfs.train.data import load_dataset
    from nlfs.train.loop import Runtime, train
    from nlfs.train.profiles import load_profile

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: the epoch's loss sums use index_add_ over distinct indices, deterministic in fact
    torch.use_deterministic_algorithms(True, warn_only=True)
    names = ["cross_entropy", "focal", "baikal", "poly1"]

    def cohort(profile, losses):
        runtime = Runtime.resolve(profile.runtime)
        data = load_dataset(profile.dataset, runtime.device)
        jobs = [CohortJob(str(i), loss, 0) for i, loss in enumerate(losses)]
        return [r.outcome for r in train_cohort(profile, data, jobs, slots=len(jobs), runtime=runtime)], data, runtime

    exact = load_profile("tiny", {"runtime.device": "cuda", "runtime.dtype": "float64", "runtime.amp": "off",
                                  "runtime.channels_last": "false", "epochs": "3"})
    outcomes, data, runtime = cohort(exact, [resolve_loss(n, exact.loss)[0] for n in names])
    worst = 0.0
    for name, outcome in zip(names, outcomes):
        solo = train(exact, data, resolve_loss(name, exact.loss)[0], seed=0, runtime=runtime)
        assert outcome.status == solo.status == "ok", (outcome.status, solo.status)
        for a, b in zip(outcome.epochs, solo.epochs):
            worst = max(worst, abs(a.train_loss - b.train_loss) / abs(b.train_loss))
    print(f"check: float64 cohort of 4 on {runtime.describe()} reproduces solo runs, worst relative "
          f"train-loss difference {worst:.2e} (bound 1e-6)")
    assert worst <= 1e-6
    torch.use_deterministic_algorithms(False)
    fp32 = {"runtime.device": "cuda", "runtime.amp": "off", "runtime.channels_last": "false", "epochs": "3"}
    reference, _, _ = cohort(load_profile("tiny", fp32), [resolve_loss(n)[0] for n in names])
    for variant, options, tol in (("channels_last+bf16", {"runtime.amp": "bf16", "runtime.channels_last": "true"}, 5e-2),
                                  ("graphs", {"runtime.cuda_graphs": "true"}, 1e-3),
                                  ("compile", VARIANTS["compile"], 1e-3),
                                  ("compile+graphs", VARIANTS["compile+graphs"], 1e-3)):
        profile = load_profile("tiny", {**fp32, **options})
        fast, _, runtime = cohort(profile, [resolve_loss(n)[0] for n in names])
        diff = max(abs(a.train_loss - b.train_loss) / abs(b.train_loss)
                   for x, y in zip(fast, reference) for a, b in zip(x.epochs, y.epochs))
        print(f"check: {variant:18s} ({_describe(runtime)}) against eager fp32: worst relative train-loss "
              f"difference {diff:.2e} (bound {tol:g})")
        assert all(o.status == "ok" for o in fast) and diff <= tol
    nan_profile = load_profile("tiny", fp32)
    poisoned = [resolve_loss(n)[0] for n in names[:3]] + [lambda logits, y: logits.sum() * float("nan")]
    with_nan, _, _ = cohort(nan_profile, poisoned)
    assert with_nan[3].status == "diverged", with_nan[3].status
    assert all(o.status == "ok" for o in with_nan[:3])
    print("check: a NaN member ends diverged on CUDA, the others train on")


# ---- main --------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--quick", action="store_true", help="few steps, small K (the default on CPU)")
    form.add_argument("--full", action="store_true", help="100 steps per epoch, K = 1, 4, 16, 64 (default on CUDA)")
    parser.add_argument("--k", type=int, action="append", default=None, help="cohort sizes (repeatable)")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), default=None,
                        help="runtime options to time (repeatable; default: eager)")
    parser.add_argument("--check", action="store_true", help="check the CUDA path, then exit")
    parser.add_argument("--part", type=int, action="append", choices=(1, 2, 3), default=None,
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of part 1 (the best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=None, help="also write every number here as JSON")
    args = parser.parse_args()
    device, name = pick_device(args.device, args.threads)
    cuda = device.type == "cuda"
    print(f"device: {name}; torch {torch.__version__}")
    if args.check:
        if not cuda:
            raise SystemExit("--check needs a CUDA device")
        check_cuda()
        return
    quick = args.quick or (not args.full and not cuda)
    steps, epochs = (4, 2) if quick else (100, 2)
    parts = set(args.part or (1, 2, 3))
    ks = args.k or ([1, 4] if quick else [1, 4, 16, 64])
    val_images = 256 if quick else VAL_IMAGES
    variants = args.variant or ["eager"]
    report: dict = {"device": name, "torch": torch.__version__, "quick": quick}
    form = ("quick form: 4 steps per epoch, validation on 256 images; on a shared CPU the figures only show "
            "that it runs") if quick else "full form"
    print(f"({form}; cohorts of K = {', '.join(map(str, ks))})")

    # On CPU: the surrogate on 8x8 inputs, batch 2, where every kernel's fixed cost dominates, as a
    # GPU's launches do at the surrogate's real sizes; and tiny_cnn at its real size, where the
    # CPU's arithmetic dominates. On a GPU: the surrogate at its two real sizes.
    shapes = ((("resnet9v2", 8, 2), [1, 4, 16, 64]), (("tiny_cnn", 8, 64), [1, 4, 16])) if quick else \
        ((("resnet9v2", 32, 128), [1, 4, 16, 64]), (("resnet9v2", 80, 64), [1, 4, 16, 64]))
    if 1 in parts:
        print("1. K networks stacked into one against K stepped in a loop, seconds per step of all K "
              f"(best of {args.rounds} rounds)")
    report["design"] = {}
    for (model, size, batch), design_ks in shapes if 1 in parts else ():
        rows = bench_design(device, model, size, batch, design_ks, steps=3 if quick else 20, rounds=args.rounds)
        report["design"][f"{model}@{size}x{batch}"] = rows
        for k, row in rows.items():
            times = "  ".join(f"{name} {sec * 1e3:8.2f} ms" for name, sec in row.items())
            print(f"   {model} {size}x{size} batch {batch} K={k:3d}: {times}  loop/stacked "
                  f"{row['loop'] / row['stacked']:5.2f}")

    for variant in variants if parts & {2, 3} else ():
        options = VARIANTS[variant]
        if 2 in parts:
            print(f"2. surrogate evaluation (gate 800 steps at 32x32 + main 8000 steps at 80x80), variant {variant}")
            result = bench_evaluations(device.type, steps, epochs, ks, val_images, options, repeat=2 if quick else 1)
            report[f"evaluations/{variant}"] = result
            rows = result["seconds_per_evaluation"]
            print(f"   runtime: {result['runtime']}")
            print(f"   solo (nlfs.train.loop.train)   {rows['solo']:10.1f} s per evaluation  "
                  f"{3600 / rows['solo']:9.1f} evaluations per device-hour")
            for k in ks:
                print(f"   cohort K={k:3d}                  {rows[k]:10.1f} s per evaluation  "
                      f"{3600 / rows[k]:9.1f} evaluations per device-hour  x{rows[ks[0]] / rows[k]:5.2f} of K={ks[0]}")
            print("   goal (issue 13, on a GPU): K=16 at least 8x the evaluations per GPU-hour of K=1")
        if 3 in parts:
            ratio = bench_loss_ratio(device.type, steps if quick else 50, ks[-1:] if quick else [16], options,
                                     repeat=2 if quick else 1)
            report[f"loss_ratio/{variant}"] = ratio
            print(f"3. main-run step time, genome losses (random accepted genomes) / F.cross_entropy, variant {variant}")
            for k, row in ratio.items():
                label = "solo" if k == "solo" else f"cohort K={k}"
                print(f"   {label:14s} ce {row['ce'] * 1e3:9.2f} ms/step  genome {row['genome'] * 1e3:9.2f} ms/step  "
                      f"ratio {row['ratio']:5.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
