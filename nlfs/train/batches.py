"""The order in which a run draws its training examples: endless mini-batches of indices.

Three orders (`BatchingSpec.order`), each a pure function of the seed:
- `permutation`: a fresh seeded permutation per pass over the training split (our default);
- `sequential`: the split in its stored order, pass after pass (the authors' 32x32 loader,
  `trainloader` in fitness_functions.py, has no `.shuffle`);
- `buffer`: tf.data's `shuffle(buffer_size)` (the authors' augmented loaders, `.shuffle(1024)`):
  each example comes out of a buffer of the next `buffer_size` ones, so the order stays close to
  the stored one. A new shuffle each pass, as tf.data's default `reshuffle_each_iteration`.
With `drop_remainder: false` each pass ends with its short batch, as `.batch(b).repeat()` does;
with true (our default) every step has the same shape.
"""

from __future__ import annotations

import numpy as np
import torch

from nlfs.train.profiles import BatchingSpec


class BatchStream:
    """Endless batches of training indices [b] (int64, on `device`) in the order `spec` names."""

    def __init__(self, spec: BatchingSpec, n: int, batch_size: int, seed: int, device: torch.device):
        self.spec, self.n, self.batch_size, self.device = spec, n, min(batch_size, n), device
        # The permutation order draws from torch on the device, as nlfs always has, so seeded
        # runs repeat across versions; the buffer order draws from numpy, on the host.
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.order = torch.empty(0, dtype=torch.long, device=device)
        self.pos = n

    def next(self) -> torch.Tensor:
        remaining = self.n - self.pos
        if remaining <= 0 or (self.spec.drop_remainder and remaining < self.batch_size):
            self.order = self._pass()
            self.pos = 0
        idx = self.order[self.pos: self.pos + self.batch_size]
        self.pos += idx.shape[0]
        return idx

    def _pass(self) -> torch.Tensor:
        """The indices of one pass over the split, in order."""
        if self.spec.order == "permutation":
            return torch.randperm(self.n, generator=self.generator, device=self.device)
        if self.spec.order == "sequential":
            return torch.arange(self.n, device=self.device)
        return torch.from_numpy(buffer_shuffle(self.n, self.spec.buffer_size, self.rng)).to(self.device)


def buffer_shuffle(n: int, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """0..n-1 through a shuffle buffer, drawn as tf.data's ShuffleDataset draws (the same
    distribution, not its random stream): fill the buffer with the first `buffer_size` items;
    then repeatedly emit a uniformly chosen slot and refill it with the next item, or, once the
    input is spent, with the buffer's last item. Shape [n]."""
    size = min(buffer_size, n)
    buffer = list(range(size))
    out = np.empty(n, dtype=np.int64)
    nxt = size
    for k in range(n):
        j = int(rng.integers(len(buffer)))
        out[k] = buffer[j]
        if nxt < n:
            buffer[j] = nxt
            nxt += 1
        else:
            buffer[j] = buffer[-1]
            buffer.pop()
    return out
