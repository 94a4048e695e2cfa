"""The orders a run draws its training examples in: ours, and the authors' two tf.data loaders."""

import numpy as np
import torch

from nlfs.train.batches import BatchStream, buffer_shuffle
from nlfs.train.profiles import BatchingSpec


def _draw(spec, n, b, steps, seed=3):
    stream = BatchStream(spec, n, b, seed, torch.device("cpu"))
    return [stream.next().tolist() for _ in range(steps)]


def test_permutation_is_a_fresh_seeded_permutation_per_pass_with_equal_batches():
    batches = _draw(BatchingSpec(), 10, 4, 6)
    assert all(len(b) == 4 for b in batches)
    first, second = batches[0] + batches[1], batches[2] + batches[3]
    assert len(set(first)) == 8 and len(set(second)) == 8  # the remainder of each pass is dropped
    gen = torch.Generator().manual_seed(3)
    assert first == torch.randperm(10, generator=gen).tolist()[:8]  # what nlfs has always drawn
    assert _draw(BatchingSpec(), 10, 4, 6) == batches


def test_sequential_keeps_the_stored_order_and_each_pass_ends_with_its_short_batch():
    """fitness_functions.py `trainloader`: no shuffle, `.batch(128)`, repeated by `fit`."""
    spec = BatchingSpec(order="sequential", drop_remainder=False)
    assert _draw(spec, 10, 4, 5) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3], [4, 5, 6, 7]]


def test_buffer_shuffle_is_a_permutation_that_never_draws_ahead_of_its_buffer():
    rng = np.random.default_rng(0)
    order = buffer_shuffle(5000, 1024, rng)
    assert sorted(order.tolist()) == list(range(5000))
    # An item enters the buffer only once the `buffer_size - 1` before it have: it can come out
    # no earlier than that, so the order stays near the stored one (unlike a permutation).
    assert (order <= np.arange(5000) + 1023).all()
    assert np.abs(order - np.arange(5000)).mean() < 1024
    assert not (order == np.arange(5000)).all()


def test_buffer_order_reshuffles_each_pass_and_keeps_the_short_batch():
    spec = BatchingSpec(order="buffer", buffer_size=4, drop_remainder=False)
    batches = _draw(spec, 10, 4, 6)
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    one, two = sum(batches[:3], []), sum(batches[3:], [])
    assert sorted(one) == sorted(two) == list(range(10)) and one != two
