"""Genomes for tests outside tests/genome/: large random ones, up to the format's limit."""

from __future__ import annotations

import numpy as np

from nlfs.genome import Genome
from nlfs.genome.graph import MAX_NODES, Node
from nlfs.genome.ops import BINARY_OPS, LEAVES, UNARY_OPS


def large_random_genome(rng: np.random.Generator, nodes: int = MAX_NODES) -> Genome:
    """A structurally valid genome of `nodes` nodes (the format allows up to MAX_NODES), most of
    them active: each node mostly reads the one before it, binary nodes also an earlier node or a
    leaf, and the last two tie in y and p. Far larger than the search's 5-node genomes."""
    assert 3 <= nodes <= MAX_NODES
    out: list[Node] = []
    for i in range(nodes - 2):
        pool = [*LEAVES, *range(i)]
        first = i - 1 if i and rng.random() < 0.9 else pool[rng.integers(len(pool))]
        if rng.random() < 0.5:
            second = pool[rng.integers(len(pool))]
            if second == first:
                second = "p" if first != "p" else "y"
            out.append(Node(str(rng.choice(BINARY_OPS)), (first, second)))
        else:
            out.append(Node(str(rng.choice(UNARY_OPS)), (first,)))
    out.append(Node("add", (nodes - 3, "y")))
    out.append(Node("mul", (nodes - 2, "p")))
    return Genome.from_json(Genome(tuple(out), nodes - 1).to_json()).validate()
