"""A cohort's training step for one composition of members, and its fast path: the members'
losses compiled into one function, the whole step captured as a CUDA graph (nlfs.train.cohort)."""

from __future__ import annotations

import contextlib

import torch

from nlfs.train.loop import loss_precision

GRAPH_WARMUP = 3  # eager steps of a composition before its CUDA graph is captured


class StepPlan:
    """The training step of one composition of members: its static index tensors, its members'
    losses compiled into one function (`runtime.compile_loss`), and its CUDA graph
    (`runtime.cuda_graphs`), captured after a few eager steps and replayed until a member comes
    or goes. A captured step reads its batch from static buffers the replay copies into.
    torch.compile traces the losses again for each composition, up to dynamo's recompile limit;
    past it they run eagerly, as they do without the option."""

    def __init__(self, key, members: list, per_slot: bool, cohort):
        """`members`: the running members (each with .slot, .group, .job.loss_fn), in slot order;
        `cohort`: the trainer whose step this is (its runtime, net, forward and apply)."""
        self.key, self.members, self.per_slot, self.cohort = key, members, per_slot, cohort
        dev = cohort.runtime.device
        self.index = torch.tensor([m.slot for m in members], device=dev)
        self.active = torch.zeros(cohort.net.slots, dtype=torch.float64, device=dev).index_fill_(0, self.index, 1.0)
        self.steps = 0  # steps this composition has taken
        self.losses = None
        if cohort.runtime.compile_loss:
            fns = [(m.slot, m.job.loss_fn) for m in members]

            def losses(logits: torch.Tensor, *targets: torch.Tensor) -> list[torch.Tensor]:
                return [fn(loss_precision(logits[slot]), t) for (slot, fn), t in zip(fns, targets)]

            self.losses = torch.compile(losses, backend=cohort.runtime.compile_backend, dynamic=False)
        self.capturable = cohort.runtime.cuda_graphs and dev.type == "cuda"  # Runtime sets it on CUDA only
        self.graph = None
        self._side = None

    def member_losses(self, logits: torch.Tensor, targets: dict) -> dict[int, torch.Tensor]:
        """slot -> loss of each member, unguarded (every one has worked on an earlier step)."""
        order = [targets[m.group] for m in self.members]
        if self.losses is not None:
            values = self.losses(logits, *order)
        else:
            values = [m.job.loss_fn(loss_precision(logits[m.slot]), t) for m, t in zip(self.members, order)]
        return {m.slot: v for m, v in zip(self.members, values)}

    def run(self, x: torch.Tensor, labels: torch.Tensor, targets: dict) -> None:
        """The whole step with no host sync, as a CUDA graph captures it."""
        logits = self.cohort.forward(x, self.per_slot)
        losses = self.member_losses(logits, targets)
        self.cohort.apply(list(losses.values()), self.index, self.active, logits, labels)

    def warmup_stream(self):
        """Eager steps before a capture run on a side stream, as CUDA graph capture asks."""
        if not self.capturable:
            return contextlib.nullcontext()
        if self._side is None:
            self._side = torch.cuda.Stream(self.cohort.runtime.device)
        self._side.wait_stream(torch.cuda.current_stream())
        return _then_join(torch.cuda.stream(self._side), self._side)

    def capture(self, x: torch.Tensor, labels: torch.Tensor, targets: dict) -> None:
        self.static_x, self.static_labels = x.clone(), labels.clone()
        self.static_targets = {g: t.clone() for g, t in targets.items()}
        torch.cuda.current_stream().synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.run(self.static_x, self.static_labels, self.static_targets)
        self.graph = graph

    def replay(self, x: torch.Tensor, labels: torch.Tensor, targets: dict) -> None:
        self.static_x.copy_(x)
        self.static_labels.copy_(labels)
        for group, target in targets.items():
            self.static_targets[group].copy_(target)
        self.graph.replay()


@contextlib.contextmanager
def _then_join(context, side):
    with context:
        yield
    torch.cuda.current_stream().wait_stream(side)
