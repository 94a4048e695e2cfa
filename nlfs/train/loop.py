"""The training loop: one model, one loss, one profile -> per-epoch metrics and a status.

Guards end a run with a status instead of an exception: NaN/Inf loss -> diverged (fitness = best
validation accuracy before it), a `stop` floor -> stopped (fitness kept), a `fail` floor ->
rejected, the wall-clock limit -> timeout, any exception raised while training (typically from
the loss) -> failed.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from nlfs.result import EpochMetrics
from nlfs.train import inputs as pixels
from nlfs.train.augment import AugmentRNG, build_augmentation, takes_uint8
from nlfs.train.batches import BatchStream
from nlfs.train.data import DataSplit
from nlfs.train.models import create_model, set_dropout
from nlfs.train.profiles import FloorSpec, InputSpec, Profile, RuntimeSpec
from nlfs.train.schedule import build_optimizer, lr_at, set_lr

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Runtime:
    """Execution settings resolved for this machine from a profile's `runtime` section."""

    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None = full precision
    channels_last: bool
    compile: bool
    eval_batch_size: int
    time_limit_s: float | None
    nan_check_every: int
    dtype: torch.dtype = torch.float32  # parameters and model inputs
    compile_backend: str = "inductor"
    compile_loss: bool = False
    cuda_graphs: bool = False

    @classmethod
    def resolve(cls, spec: RuntimeSpec) -> "Runtime":
        cuda = torch.cuda.is_available()
        if spec.device == "cuda" and not cuda:
            from nlfs.errors import NlfsError

            raise NlfsError("runtime.device=cuda but no CUDA device is available")
        device = torch.device("cuda" if spec.device == "cuda" or (spec.device == "auto" and cuda) else "cpu")
        on_cuda = device.type == "cuda"
        amp = torch.bfloat16 if (spec.amp == "bf16" or (spec.amp == "auto" and on_cuda)) else None
        channels_last = on_cuda if spec.channels_last is None else spec.channels_last
        return cls(device, amp, channels_last, spec.compile, spec.eval_batch_size, spec.time_limit_s,
                   max(1, spec.nan_check_every), getattr(torch, spec.dtype), spec.compile_backend,
                   spec.compile_loss, spec.cuda_graphs and on_cuda)

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return "cpu"


@dataclass
class TrainOutcome:
    status: str  # ok | stopped | diverged | rejected | failed | timeout
    fitness: float | None  # best validation accuracy over finished epochs
    reason: str | None = None
    epochs: list[EpochMetrics] = field(default_factory=list)


class _Diverged:
    """Marker: a non-finite training loss ended the epoch."""


class _Timeout:
    """Marker: the wall-clock limit ended the epoch."""


class _Inputs:
    """Raw batch -> model input as the profile's `input` section says (`nlfs.train.inputs`):
    resize, (augment), scale, memory format."""

    def __init__(self, data: DataSplit, runtime: Runtime, spec: InputSpec):
        dev = runtime.device
        self.spec = spec
        self.mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(data.std, device=dev).view(1, -1, 1, 1)
        self.channels_last = runtime.channels_last

    def prepare(self, x: torch.Tensor, size: int | None, *, uint8: bool = False) -> torch.Tensor:
        """x [B, C, H, W] uint8 or float -> at `size` x `size`: float 0..1, or uint8 0..255 for an
        augmentation that takes uint8 (validation images stay float, as the authors')."""
        return pixels.prepare(x, size, self.spec.resize, uint8=uint8)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        x = pixels.finish(x, self.spec.scaling, self.mean, self.inv_std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class TrainStream:
    """A run's training batches: the seeded batch order and augmentation draws of `seed`, and the
    input pipeline. Two runs with one seed draw the same batches, whatever their loss."""

    def __init__(self, profile: Profile, data: DataSplit, seed: int, runtime: Runtime):
        dev = runtime.device
        self.data, self.dtype = data, runtime.dtype
        self.batches = BatchStream(profile.batching, data.train_x.shape[0], profile.batch_size, seed, dev)
        self.rng = AugmentRNG.seeded(seed + 1, dev)
        self.inputs = _Inputs(data, runtime, profile.input)

    def next(self, augment, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The next step's model input [B, C, size, size] and targets ([B] int64 or [B, K] float)."""
        idx = self.batches.next()
        x = self.inputs.prepare(self.data.train_x[idx], size, uint8=takes_uint8(augment))
        x, target = augment(x, self.data.train_y[idx], self.rng)
        return self.inputs.finish(x).to(self.dtype), target


def eval_input(inputs: _Inputs, x: torch.Tensor, size: int | None, dtype: torch.dtype) -> torch.Tensor:
    """Validation images [B, C, H, W] -> model input [B, C, size, size] (never augmented)."""
    return inputs.finish(inputs.prepare(x, size)).to(dtype)


def build_model(profile: Profile, data: DataSplit, seed: int, runtime: Runtime) -> torch.nn.Module:
    """The profile's network as a run seeded `seed` initialises it, on the runtime's device, dtype
    and memory format. Leaves the global RNG where the initialisation left it (dropout draws next)."""
    torch.manual_seed(seed)
    model = create_model(profile.model, num_classes=data.num_classes, in_channels=data.in_channels)
    model = model.to(device=runtime.device, dtype=runtime.dtype)
    return model.to(memory_format=torch.channels_last) if runtime.channels_last else model


def steps_per_epoch(profile: Profile, data: DataSplit) -> int:
    return profile.steps_per_epoch or max(1, data.train_x.shape[0] // profile.batch_size)


def schedule_steps(profile: Profile, per_epoch: int) -> int:
    """The step count the schedule spans: one schedule over the whole run, across stages (METHOD.md 5)."""
    return profile.schedule.total_steps or per_epoch * profile.epochs


def loss_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits as losses read them: at least float32, since eps guards vanish in bf16."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _one_line(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text[:300]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _epoch_metrics(epoch: int, train_loss: float, train_acc: float, val_loss: float | None, val_acc: float,
                   test_acc: float | None, started: float) -> EpochMetrics:
    """One epoch's record as a solo run and a cohort member both write it (train_loss: the mean
    loss, non-finite recorded as None; started: the epoch's time.monotonic())."""
    return EpochMetrics(epoch=epoch, train_loss=_finite_or_none(train_loss), train_accuracy=train_acc,
                        val_loss=val_loss, val_accuracy=val_acc, test_accuracy=test_acc,
                        seconds=round(time.monotonic() - started, 4))


def _epoch_line(label: str, metrics: EpochMetrics, train_loss: float) -> str:
    """The per-epoch log line of one genome's training."""
    return (f"genome {label} epoch {metrics.epoch} train_acc {metrics.train_accuracy:.4f} "
            f"val_acc {metrics.val_accuracy:.4f} train_loss {train_loss:.4g} seconds {metrics.seconds:.2f}")


def _check_scalar(loss: torch.Tensor) -> torch.Tensor:
    """A loss must be one number per batch; anything else is the loss's error, not the trainer's."""
    if loss.dim() != 0:
        raise ValueError(f"the loss returned shape {tuple(loss.shape)}, expected a scalar")
    return loss


def _timeout_reason(runtime: Runtime, epoch: int) -> str:
    return f"wall-clock limit {runtime.time_limit_s}s reached in epoch {epoch}"


def _accuracy_count(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct predictions in a batch; soft targets [B, K] count their argmax as the label."""
    labels = target.argmax(dim=1) if target.dim() == 2 else target
    return (logits.argmax(dim=1) == labels).sum()


def _stop_breach(floors: list[FloorSpec], index: int, metrics: EpochMetrics) -> str | None:
    """Why a `stop` floor ends the stage after epoch `index` (0-based in its stage), or None."""
    for floor in floors:
        if floor.action == "stop" and index >= floor.from_epoch_index:
            value = getattr(metrics, floor.metric)
            if value is not None and value < floor.min:
                return f"{floor.metric} {value:.4f} below floor {floor.min} at epoch index {index}"
    return None


def _fail_breach(floors: list[FloorSpec], indexed: list[tuple[int, EpochMetrics]]) -> str | None:
    """Why a `fail` floor fails the run, given every finished epoch with its index in its stage."""
    for floor in floors:
        if floor.action != "fail":
            continue
        values = [getattr(m, floor.metric) for i, m in indexed if i >= floor.from_epoch_index]
        best = max((v for v in values if v is not None), default=None)
        if best is None or best < floor.min:
            shown = "none" if best is None else f"{best:.4f}"
            return f"best {floor.metric} {shown} below floor {floor.min}"
    return None


class _Trainer:
    """The state of one training run: model, optimiser, schedule, batch stream, RNG."""

    def __init__(self, profile: Profile, data: DataSplit, loss_fn: LossFn, seed: int, runtime: Runtime):
        self.profile, self.data, self.loss_fn, self.runtime = profile, data, loss_fn, runtime
        self.model = build_model(profile, data, seed, runtime)
        self.forward = torch.compile(self.model, backend=runtime.compile_backend) if runtime.compile else self.model
        self.optimizer = build_optimizer(profile.optimizer, self.model.parameters())
        self.steps_per_epoch = steps_per_epoch(profile, data)
        self.total_steps = schedule_steps(profile, self.steps_per_epoch)
        self.global_step = 0
        self.stream = TrainStream(profile, data, seed, runtime)
        self.inputs = self.stream.inputs

    def set_lr(self) -> None:
        """The learning rate of the coming step, from the run's global step count."""
        set_lr(self.optimizer, lr_at(self.profile.schedule, self.profile.optimizer.lr, self.global_step,
                                     self.total_steps))

    def autocast(self):
        if self.runtime.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=self.runtime.amp_dtype)

    def train_epoch(self, augment, size: int | None, deadline: float | None) -> tuple[float, float, type | None]:
        """One epoch of steps -> (mean train loss, train accuracy, _Diverged | _Timeout | None).
        Loss and accuracy stay on the device between NaN checks, so a GPU is not synced every step."""
        dev = self.runtime.device
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen, steps, stop = 0, 0, None
        self.model.train()
        for step in range(self.steps_per_epoch):
            x, target = self.stream.next(augment, size)
            with self.autocast():
                logits = self.forward(x)
            logits = loss_precision(logits)
            loss = _check_scalar(self.loss_fn(logits, target))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.set_lr()
            self.optimizer.step()
            self.global_step += 1
            loss_sum += loss.detach()
            correct += _accuracy_count(logits.detach(), target)
            seen, steps = seen + target.shape[0], step + 1
            if steps % self.runtime.nan_check_every == 0 or steps == self.steps_per_epoch:
                if not torch.isfinite(loss_sum).item():
                    return float("nan"), 0.0, _Diverged
            if deadline is not None and time.monotonic() > deadline:
                stop = _Timeout
                break
        return loss_sum.item() / steps, correct.item() / max(seen, 1), stop

    def validate(self, size: int | None, x: torch.Tensor | None = None,
                 y: torch.Tensor | None = None) -> tuple[float | None, float]:
        """(mean loss or None if not finite, accuracy) on the validation split, or on images x
        [N, C, H, W] with labels y [N] (the test split), resized to `size`, not augmented."""
        x, y = (self.data.val_x, self.data.val_y) if x is None else (x, y)
        dev, bs = self.runtime.device, self.runtime.eval_batch_size
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        self.model.eval()
        with torch.no_grad():
            for xs, ys in zip(torch.split(x, bs), torch.split(y, bs)):
                with self.autocast():
                    logits = self.forward(eval_input(self.inputs, xs, size, self.runtime.dtype))
                logits = loss_precision(logits)
                loss_sum += self.loss_fn(logits, ys).detach() * ys.shape[0]
                correct += _accuracy_count(logits, ys)
        n = x.shape[0]
        return _finite_or_none(loss_sum.item() / n), correct.item() / n

    def test_accuracy(self, size: int | None, val_accuracy: float) -> float | None:
        """The test split's accuracy after this epoch, when the profile asks for it."""
        if self.data.test_is_val:
            return val_accuracy
        if self.data.test_x is None:
            return None
        return self.validate(size, self.data.test_x, self.data.test_y)[1]


def train(profile: Profile, data: DataSplit, loss_fn: LossFn, *, seed: int, runtime: Runtime,
          log: Callable[[str], None] | None = None, label: str = "") -> TrainOutcome:
    """Train the profile's model on `data` (already on `runtime.device`) with `loss_fn`, called as
    loss_fn(logits [B, K] float32, target [B] int64 or [B, K] float32) -> scalar. Never raises
    for what the loss does: that ends as a status in the outcome.

    Statuses: ok (every stage ran to its end); stopped (a `stop` floor cut a stage short, fitness
    kept); diverged (non-finite loss, fitness of the epochs before it); timeout (wall clock);
    rejected (a `fail` floor, checked however training ended: no fitness); failed (an exception).
    """
    deadline = None if runtime.time_limit_s is None else time.monotonic() + runtime.time_limit_s
    trainer = _Trainer(profile, data, loss_fn, seed, runtime)
    plan = profile.stage_plan()
    # Built before training so that a bad name is a user error, not a `failed` status.
    augments = [build_augmentation(profile.augment, magnitude=stage.magnitude,
                                   num_classes=data.num_classes, mean=data.mean) for stage in plan]
    outcome = TrainOutcome("ok", None)
    indexed: list[tuple[int, EpochMetrics]] = []  # (epoch index within its stage, metrics)
    stops: list[str] = []
    epoch = 0
    try:
        for stage_no, (stage, augment) in enumerate(zip(plan, augments)):
            set_dropout(trainer.model, stage.dropout)
            size = stage.image_size or profile.image_size
            for index in range(stage.epochs):
                epoch += 1
                t0 = time.monotonic()
                train_loss, train_acc, stop = trainer.train_epoch(augment, size, deadline)
                if stop is _Diverged:
                    outcome.status, outcome.reason = "diverged", f"non-finite loss in epoch {epoch}"
                    return _finish(outcome, profile.floors, indexed)
                val_loss, val_acc = trainer.validate(size)
                metrics = _epoch_metrics(epoch, train_loss, train_acc, val_loss, val_acc,
                                         trainer.test_accuracy(size, val_acc), t0)
                outcome.epochs.append(metrics)
                indexed.append((index, metrics))
                if log is not None:
                    log(_epoch_line(label, metrics, train_loss))
                if stop is _Timeout:
                    outcome.status, outcome.reason = "timeout", _timeout_reason(runtime, epoch)
                    return _finish(outcome, profile.floors, indexed)
                reason = _stop_breach(profile.floors, index, metrics)
                if reason:
                    stops.append(reason if len(plan) == 1 else f"stage {stage_no}: {reason}")
                    break  # the authors' EpochCallback ends this fit; a next stage starts afresh
        if stops:
            outcome.status, outcome.reason = "stopped", "; ".join(stops)
        return _finish(outcome, profile.floors, indexed)
    except Exception as err:  # noqa: BLE001 - any error while training is a status, not a crash
        return TrainOutcome("failed", None, _one_line(err), outcome.epochs)


def _finish(outcome: TrainOutcome, floors: list[FloorSpec],
            indexed: list[tuple[int, EpochMetrics]]) -> TrainOutcome:
    """Fitness = the best validation accuracy of the finished epochs (METHOD.md 4), unless a
    `fail` floor rejects the run, however it ended."""
    breach = _fail_breach(floors, indexed)
    if breach:
        why = breach if outcome.status == "ok" else f"{breach} ({outcome.status}: {outcome.reason})"
        outcome.status, outcome.reason, outcome.fitness = "rejected", why, None
        return outcome
    accuracies = [e.val_accuracy for e in outcome.epochs if e.val_accuracy is not None]
    outcome.fitness = max(accuracies) if accuracies else None
    return outcome
