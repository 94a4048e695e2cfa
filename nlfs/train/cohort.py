"""Cohort training: several genomes trained at once on one device, each with its own network,
optimiser state, loss, floors, early stop and guards, sharing the input pipeline.

Why one stacked network, not K networks stepped in a loop. The search's surrogates are tiny
(convolutions of 8 to 48 filters, batch 64 or 128): on a GPU a training step of one of them is a
few hundred kernels of a few microseconds each, so the device waits on launches and on the
Python that issues them, not on arithmetic. K networks in a loop issue K times as many kernels
(CUDA streams overlap their execution, not their launches), so packing gains little; one network
whose parameters are stacked along a member axis (`torch.func.functional_call` under `vmap`: a
stacked convolution runs as one grouped convolution) issues the kernels of one network, each K
times larger, and the optimiser updates every member with a dozen elementwise kernels over one
flat buffer (nlfs.train.stacked). Measured on CPU where a kernel's fixed cost dominates as a
launch does on a GPU (bench/bench_cohort.py part 1: ResNet9V2 on 8x8 inputs, batch 2, one
thread, best of 5 rounds), a step of all K took 9 / 27 / 81 ms stacked against 22 / 92 / 401 ms
in a loop for K = 4 / 16 / 64 (2.3x, 3.5x, 4.9x). Where arithmetic dominates, a CPU gains nothing:
tiny_cnn on digits 1.2x; ResNet9V2 at its real sizes, K = 4, stacked is slower (0.83x at 32x32,
0.58x at 80x80: the CPU's grouped convolutions do less per second than its dense ones), so
`auto` is 1 on CPU. On a GPU the bench also times both, eager and captured in a CUDA graph
(where a loop launches nothing either): if cuDNN's grouped convolutions prove as slow there,
K networks in one captured graph are the alternative. The stacked step has no host sync, so a
CUDA graph can replay it whole (`runtime.cuda_graphs`; unmeasured, as is all of the CUDA path).
What it costs: members must share the step's shapes, so a cohort trains one one-stage profile;
a slot freed mid-epoch idles to the epoch's end; and a member's numbers equal its solo run's up
to rounding (grouped kernels sum in another order): in float64, to 1e-6 (tests/train).

Pairing with solo runs. A member sees exactly the batches (order and augmentation draws) of its
solo run with the same seed: members that join together with one seed share one `TrainStream`,
and a member that joins later (taking a freed slot, at an epoch boundary) gets a stream of its
own that starts at its step 0, which costs one more pass of the input pipeline per step while it
runs. Its network starts from its solo run's initialisation. Dropout draws one mask per step for
all members, from the global generator as a solo run draws it; so the masks are the solo run's
when every member starts with the cohort and one seed, and a statistically equal draw otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from nlfs.result import EpochMetrics
from nlfs.train.augment import build_augmentation
from nlfs.train.cohort_size import one_stage
from nlfs.train.cohort_step import GRAPH_WARMUP, StepPlan
from nlfs.train.data import DataSplit
from nlfs.train.loop import (LossFn, Runtime, TrainOutcome, TrainStream, _check_scalar, _epoch_line, _epoch_metrics,
                             _finish, _finite_or_none, _one_line, _stop_breach, _timeout_reason, build_model,
                             eval_input, loss_precision, schedule_steps, steps_per_epoch)
from nlfs.train.profiles import Profile
from nlfs.train.schedule import lr_at
from nlfs.train.stacked import StackedNet, StackedOptimizer, lr_table


@dataclass(frozen=True)
class CohortJob:
    """One genome's training: what its solo run would be given."""

    label: str  # the genome id, for log lines
    loss_fn: LossFn  # loss(logits [B, K] float32, target [B] int64 or [B, K] float) -> scalar
    seed: int  # model initialisation, batch order and augmentation, as in a solo run


@dataclass(frozen=True)
class MemberResult:
    index: int  # the job's position in the list given to train_cohort
    outcome: TrainOutcome  # what train() would return for the job alone
    seconds: float  # wall clock from joining the cohort to leaving it


def train_cohort(profile: Profile, data: DataSplit, jobs: Sequence[CohortJob], *, slots: int, runtime: Runtime,
                 log: Callable[[str], None] | None = None,
                 on_result: Callable[[MemberResult], None] | None = None) -> list[MemberResult]:
    """Train every job under `profile` on `data` (already on `runtime.device`), `slots` at a time.

    The first `slots` jobs start together; when a member ends (any status), the next job waiting
    takes its slot at the next epoch boundary. Each member's outcome is what `train()` returns
    for it alone (same statuses, reasons, epochs, fitness); `on_result` receives each as it ends.
    Returns the results in job order. Never raises for what a loss does.
    """
    if not one_stage(profile):
        raise ValueError(f"profile {profile.name!r} has {len(profile.stage_plan())} stages; a cohort trains "
                         f"one-stage profiles")
    if not jobs:
        return []
    cohort = _Cohort(profile, data, runtime, min(slots, len(jobs)), log or (lambda line: None))
    results: list[MemberResult] = []

    def collect(result: MemberResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    cohort.run(deque(enumerate(jobs)), collect)
    return sorted(results, key=lambda r: r.index)


class _Member:
    def __init__(self, index: int, job: CohortJob, slot: int, group: "_Group", deadline: float | None):
        self.index, self.job, self.slot, self.group, self.deadline = index, job, slot, group, deadline
        self.started = time.monotonic()
        self.outcome = TrainOutcome("ok", None)
        self.indexed: list[tuple[int, EpochMetrics]] = []  # (epoch index in its stage, metrics)

    @property
    def epoch(self) -> int:
        """The running epoch, counted from 1 (one stage: the epochs finished plus one)."""
        return len(self.outcome.epochs) + 1


class _Group:
    """Members that joined together with one seed, and the batches they share."""

    def __init__(self, stream: TrainStream):
        self.stream = stream
        self.members: set[_Member] = set()
        self.x: torch.Tensor | None = None  # this step's model input [B, C, H, W]
        self.target: torch.Tensor | None = None  # this step's targets [B] or [B, K]
        self.labels: torch.Tensor | None = None  # [B] int64, for accuracy


class _Cohort:
    def __init__(self, profile: Profile, data: DataSplit, runtime: Runtime, slots: int,
                 log: Callable[[str], None]):
        self.profile, self.data, self.runtime, self.slots, self.log = profile, data, runtime, slots, log
        stage = profile.stage_plan()[0]
        self.dropout, self.size = stage.dropout, stage.image_size or profile.image_size
        # Built before training so that a bad name is a user error, not a `failed` status.
        self.augment = build_augmentation(profile.augment, magnitude=stage.magnitude,
                                          num_classes=data.num_classes, mean=data.mean)
        self.steps_per_epoch = steps_per_epoch(profile, data)
        total = schedule_steps(profile, self.steps_per_epoch)
        self.lr = lr_table([lr_at(profile.schedule, profile.optimizer.lr, n, total)
                            for n in range(self.steps_per_epoch * profile.epochs)])
        self.net: StackedNet | None = None
        self.opt: StackedOptimizer | None = None
        self.members: dict[int, _Member] = {}  # slot -> member
        self.groups: dict[tuple[int, int], _Group] = {}  # (seed, epoch boundary joined at) -> group
        self.epochs_run = 0
        self._functions: dict = {}
        self._step_plan: StepPlan | None = None
        self._freed: list[int] = []  # slots to zero before the next step

    # ---- membership -----------------------------------------------------------------------------

    def run(self, queue: deque, collect: Callable[[MemberResult], None]) -> None:
        self.collect = collect
        while True:
            self._fill(queue)
            if not self.members:
                return
            if not queue:
                self._shrink()
            self._epoch()
            self.epochs_run += 1

    def _fill(self, queue: deque) -> None:
        """Seat waiting jobs in free slots (at an epoch boundary). Where each pass over the data
        ends with its short batch (`batching.drop_remainder: false`, the authors' loaders), streams
        started at different times would have batches of different sizes in one step: new members
        then wait until the running ones have all left, and start together."""
        if self.net is not None:
            self._clear_freed()
        if self.members and not self.profile.batching.drop_remainder:
            return
        free = [s for s in range(self.net.slots if self.net else self.slots) if s not in self.members]
        for slot in free:
            if not queue:
                return
            index, job = queue.popleft()
            if self.net is None:
                # The first network leaves the global generator as its solo run does: dropout next.
                model = build_model(self.profile, self.data, job.seed, self.runtime)
                self.net = StackedNet(model, self.slots)
                self.net.set_dropout(self.dropout)
                self.opt = StackedOptimizer(self.profile.optimizer, self.net, self.lr)
            else:
                with self._own_rng():  # the running members' dropout draws go on undisturbed
                    model = build_model(self.profile, self.data, job.seed, self.runtime)
            self.net.load(slot, model)
            self.opt.reset(slot)
            key = (job.seed, self.epochs_run)
            if key not in self.groups:
                self.groups[key] = _Group(TrainStream(self.profile, self.data, job.seed, self.runtime))
            limit = self.runtime.time_limit_s
            member = _Member(index, job, slot, self.groups[key], None if limit is None else time.monotonic() + limit)
            self.groups[key].members.add(member)
            self.members[slot] = member

    def _own_rng(self):
        dev = self.runtime.device
        return torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [], device_type=dev.type)

    def _leave(self, member: _Member, outcome: TrainOutcome) -> None:
        """A member ends: report it and free its slot, zeroed (finite and unused until refilled)
        before the next step; not now, since this step's backward pass may still need it."""
        del self.members[member.slot]
        member.group.members.discard(member)
        if not member.group.members:
            self.groups = {k: g for k, g in self.groups.items() if g is not member.group}
        self._freed.append(member.slot)
        self.collect(MemberResult(member.index, outcome, round(time.monotonic() - member.started, 3)))

    def _fail(self, running: dict[int, _Member], err: Exception) -> None:
        """Every member of `running` ends `failed` with `err`, as each one's solo run would have: the
        part that raised (the batch, the stacked network's pass) was theirs together."""
        for slot, member in list(running.items()):
            del running[slot]
            self._fail_one(member, err)

    def _fail_one(self, member: _Member, err: Exception) -> None:
        """`member` ends `failed` with `err` (its loss raised), keeping the epochs it finished."""
        self._leave(member, TrainOutcome("failed", None, _one_line(err), member.outcome.epochs))

    def _clear_freed(self) -> None:
        for slot in self._freed:
            if slot not in self.members:
                self.net.clear(slot)
        self._freed = []

    def _shrink(self) -> None:
        """With nobody waiting and at most half the slots in use, drop the free slots: they would
        cost as much as live ones. (Survivors then run grouped kernels of another width, which
        may round differently in the last bits.)"""
        live = sorted(self.members)
        if self.net.slots < 2 or len(live) * 2 > self.net.slots:
            return
        self._freed = []  # the freed slots go
        net = self.net.select(live)
        self.opt = self.opt.select(live, net)
        self.net = net
        moved = {}
        for new, old in enumerate(live):
            member = self.members[old]
            member.slot = new
            moved[new] = member
        self.members = moved
        self._functions.clear()
        self._step_plan = None

    # ---- one epoch ------------------------------------------------------------------------------

    def _epoch(self) -> None:
        started = time.monotonic()
        if getattr(self, "loss_sums", None) is None or self.loss_sums.shape[0] != self.net.slots:
            # kept across epochs (zeroed in place): a captured CUDA graph writes into them
            self.loss_sums = torch.zeros(self.net.slots, dtype=torch.float32, device=self.runtime.device)
            self.corrects = torch.zeros(self.net.slots, dtype=torch.int64, device=self.runtime.device)
        self.loss_sums.zero_()
        self.corrects.zero_()
        self.seen = 0  # examples per member this epoch (every group's batches have one size per step)
        running = dict(sorted(self.members.items()))
        steps = 0
        for step in range(self.steps_per_epoch):
            if not running:
                break
            try:
                self._step(running)
            except Exception as err:  # noqa: BLE001 - the shared part of the step (batch, network) raised
                self._fail(running, err)
                return
            steps = step + 1
            if steps % self.runtime.nan_check_every == 0 or steps == self.steps_per_epoch:
                finite = torch.isfinite(self.loss_sums).tolist()
                for slot, member in list(running.items()):
                    if not finite[slot]:
                        del running[slot]
                        outcome = member.outcome
                        outcome.status, outcome.reason = "diverged", f"non-finite loss in epoch {member.epoch}"
                        self._leave(member, _finish(outcome, self.profile.floors, member.indexed))
            now = time.monotonic()
            late = [m for m in running.values() if m.deadline is not None and now > m.deadline]
            if late:
                for member in late:
                    del running[member.slot]
                self._end_epoch(late, steps, started, timeout=True)
        if running:
            self._end_epoch(list(running.values()), steps, started, timeout=False)

    def _autocast(self):
        if self.runtime.amp_dtype is None:
            return contextlib.nullcontext()
        # no autocast cache where a CUDA graph may be captured: cached casts would be stale
        return torch.autocast(self.runtime.device.type, dtype=self.runtime.amp_dtype,
                              cache_enabled=not self.runtime.cuda_graphs)

    def forward(self, x: torch.Tensor, per_slot: bool) -> torch.Tensor:
        key = ("train" if self.net.base.training else "eval", per_slot)
        if key not in self._functions:
            fn = self.net.function(per_slot)
            if self.runtime.compile:
                fn = torch.compile(fn, backend=self.runtime.compile_backend, dynamic=False)
            self._functions[key] = fn
        with self._autocast():
            return self._functions[key](self.net.params, self.net.buffers, x)

    def _batch(self, running: dict[int, _Member]) -> tuple[torch.Tensor, bool, torch.Tensor]:
        """This step's input for every slot: (x [B, C, H, W] shared or [S, B, C, H, W] per slot,
        per_slot, labels [S, B]). Each group of running members draws its next batch."""
        groups = list(dict.fromkeys(m.group for m in running.values()))
        for group in groups:
            group.x, group.target = group.stream.next(self.augment, self.size)
            group.labels = group.target.argmax(dim=1) if group.target.dim() == 2 else group.target
        self.seen += int(groups[0].labels.shape[0])
        slots = self.net.slots
        if len(groups) == 1:
            only = groups[0]
            return only.x, False, only.labels.expand(slots, -1)
        position = {g: i for i, g in enumerate(groups)}
        of_slot = [position[running[s].group] if s in running else 0 for s in range(slots)]
        index = torch.tensor(of_slot, device=self.runtime.device)
        x = torch.stack([g.x for g in groups]).index_select(0, index)
        labels = torch.stack([g.labels for g in groups]).index_select(0, index)
        return x, True, labels

    def _plan(self, running: dict[int, _Member], per_slot: bool) -> StepPlan:
        """The step of this composition of members (made once, until a member comes or goes)."""
        key = (tuple((slot, id(m)) for slot, m in sorted(running.items())), per_slot)
        if self._step_plan is None or self._step_plan.key != key:
            self._step_plan = StepPlan(key, [m for _, m in sorted(running.items())], per_slot, self)
        return self._step_plan

    def _step(self, running: dict[int, _Member]) -> None:
        """One training step of every running member; a member whose loss raises ends `failed`.

        A composition's first step runs eagerly and attributes any error to its member; later
        steps may call the members' losses compiled into one function (`runtime.compile_loss`)
        and, on CUDA, replay the whole step as a captured graph (`runtime.cuda_graphs`)."""
        self._clear_freed()
        x, per_slot, labels = self._batch(running)
        plan = self._plan(running, per_slot)
        targets = {m.group: m.group.target for m in plan.members}
        if plan.capturable and plan.graph is None and plan.steps >= GRAPH_WARMUP:
            try:
                plan.capture(x, labels, targets)
            except Exception:  # noqa: BLE001 - capture records and runs nothing: run the step eagerly
                plan.capturable = False
        if plan.graph is not None:
            plan.replay(x, labels, targets)
            plan.steps += 1
            return
        fast = plan.steps > 0 and (plan.losses is not None or plan.capturable)
        with plan.warmup_stream() if fast else contextlib.nullcontext():
            logits = self.forward(x, per_slot)  # [S, B, K]
            losses = None
            if fast:
                try:
                    losses = plan.member_losses(logits, targets)
                except Exception:  # noqa: BLE001 - learn whose loss raised, on the same logits
                    plan.losses, plan.capturable = None, False
            if losses is None:
                losses = self._guarded_losses(running, logits)
            if losses and self._applied(running, losses, logits, labels) and len(losses) == len(plan.members):
                plan.steps += 1

    def _guarded_losses(self, running: dict[int, _Member], logits: torch.Tensor) -> dict[int, torch.Tensor]:
        """slot -> loss of every running member whose loss works; the others leave, `failed`."""
        losses = {}
        for slot, member in list(running.items()):
            try:
                loss = _check_scalar(member.job.loss_fn(loss_precision(logits[slot]), member.group.target))
                if not loss.requires_grad:  # what loss.backward() says alone
                    raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
            except Exception as err:  # noqa: BLE001 - a loss that raises is its member's status
                del running[slot]
                self._fail_one(member, err)
                continue
            losses[slot] = loss
        return losses

    def _applied(self, running: dict[int, _Member], losses: dict[int, torch.Tensor], logits: torch.Tensor,
                 labels: torch.Tensor) -> bool:
        """`apply` for the members in `losses`; if it raises, every one of them fails (the backward
        pass is theirs together, so the error cannot be put on one)."""
        dev = self.runtime.device
        plan = self._step_plan
        if plan is not None and [m.slot for m in plan.members] == list(losses):
            index, active = plan.index, plan.active
        else:
            index = torch.tensor(list(losses), device=dev)
            active = torch.zeros(self.net.slots, dtype=torch.float64, device=dev).index_fill_(0, index, 1.0)
        try:
            self.apply(list(losses.values()), index, active, logits, labels)
        except Exception as err:  # noqa: BLE001
            self._fail({slot: running.pop(slot) for slot in losses}, err)
            return False
        return True

    def apply(self, losses: list[torch.Tensor], index: torch.Tensor, active: torch.Tensor, logits: torch.Tensor,
               labels: torch.Tensor) -> None:
        """Backward through every member's loss, one optimiser step of the `active` [S] slots,
        and the epoch's sums: losses at `index` [n], correct predictions [S]. No host sync."""
        self.net.grad.zero_()
        torch.autograd.backward(losses)  # one pass; each member's gradient is its own loss's
        self.opt.step(active)
        self.loss_sums.index_add_(0, index, torch.stack([loss.detach().float() for loss in losses]))
        self.corrects += (logits.detach().argmax(dim=-1) == labels).sum(dim=-1)

    # ---- epoch ends -----------------------------------------------------------------------------

    def _end_epoch(self, members: list[_Member], steps: int, started: float, *, timeout: bool) -> None:
        """Validate `members` after `steps` steps of this epoch, record the epoch, apply the floors."""
        losses = self.loss_sums.tolist()
        corrects = self.corrects.tolist()
        seen = self.seen
        try:
            validated = self._validate(members)
            tested = self._test_accuracies(validated)
        except Exception as err:  # noqa: BLE001 - the shared validation pass raised
            self._fail({m.slot: m for m in members if m.slot in self.members}, err)
            return
        for member in members:
            if member.slot not in validated:
                continue  # its loss raised while validating: it has left, failed
            val_loss, val_acc = validated[member.slot]
            train_loss = losses[member.slot] / steps
            train_acc = corrects[member.slot] / max(seen, 1)
            epoch = member.epoch
            metrics = _epoch_metrics(epoch, train_loss, train_acc, val_loss, val_acc, tested.get(member.slot), started)
            outcome = member.outcome
            outcome.epochs.append(metrics)
            member.indexed.append((epoch - 1, metrics))
            self.log(_epoch_line(member.job.label, metrics, train_loss))
            if timeout:
                outcome.status, outcome.reason = "timeout", _timeout_reason(self.runtime, epoch)
            elif reason := _stop_breach(self.profile.floors, epoch - 1, metrics):
                outcome.status, outcome.reason = "stopped", reason
            elif epoch < self.profile.epochs:
                continue
            self._leave(member, _finish(outcome, self.profile.floors, member.indexed))

    def _test_accuracies(self, validated: dict[int, tuple[float | None, float]]) -> dict[int, float]:
        """slot -> test accuracy after this epoch, as `_Trainer.test_accuracy` gives it to a solo
        run: the validation accuracy when the test split is the validation split, else one pass
        over the test split for the whole stack when the profile scores it, else nothing."""
        if self.data.test_is_val:
            return {slot: acc for slot, (_, acc) in validated.items()}
        if self.data.test_x is None or not validated:
            return {}
        inputs = next(iter(self.members.values())).group.stream.inputs
        correct = torch.zeros(self.net.slots, dtype=torch.int64, device=self.runtime.device)
        with self._evaluating():
            for logits, ys in self._eval_batches(self.data.test_x, self.data.test_y, inputs):
                correct += (logits.argmax(dim=-1) == ys).sum(dim=-1)
        counts = correct.tolist()
        return {slot: counts[slot] / self.data.test_x.shape[0] for slot in validated}

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The whole stack in eval mode and without gradients, for one pass over a split."""
        self.net.train(False)
        try:
            with torch.no_grad():
                yield
        finally:
            self.net.train(True)

    def _eval_batches(self, x: torch.Tensor, y: torch.Tensor, inputs) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(logits [S, b, K], labels [b]) of each evaluation batch of the split (x, y); inside
        `_evaluating`."""
        for xs, ys in zip(torch.split(x, self.runtime.eval_batch_size), torch.split(y, self.runtime.eval_batch_size)):
            yield self.forward(eval_input(inputs, xs, self.size, self.runtime.dtype), False), ys

    def _validate(self, members: list[_Member]) -> dict[int, tuple[float | None, float]]:
        """slot -> (mean validation loss or None if not finite, validation accuracy) of each member
        whose loss did not raise; one pass over the validation split for the whole stack."""
        dev = self.runtime.device
        sums = {m.slot: torch.zeros((), device=dev) for m in members}
        correct = torch.zeros(self.net.slots, dtype=torch.int64, device=dev)
        with self._evaluating():
            for logits, ys in self._eval_batches(self.data.val_x, self.data.val_y, members[0].group.stream.inputs):
                for member in members:
                    if member.slot not in sums:
                        continue
                    try:
                        loss = member.job.loss_fn(loss_precision(logits[member.slot]), ys)
                        sums[member.slot] += loss.detach() * ys.shape[0]
                    except Exception as err:  # noqa: BLE001 - its member's status
                        del sums[member.slot]
                        self._fail_one(member, err)
                correct += (logits.argmax(dim=-1) == ys).sum(dim=-1)
        n = self.data.val_x.shape[0]
        counts = correct.tolist()
        return {slot: (_finite_or_none(total.item() / n), counts[slot] / n) for slot, total in sums.items()}
