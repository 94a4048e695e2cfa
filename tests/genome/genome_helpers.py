"""Builders shared by the genome tests: genomes from compact node lists, and accepted ones.

    genome(("log", "p"), ("mul", "y", 0), sign=-1)   # cross-entropy; the last node is the root
"""

from __future__ import annotations

import numpy as np

from nlfs.genome import Genome, mutate, random_genome
from nlfs.genome.graph import GENOME_FORMAT
from nlfs.genome.mutate import random_accepted


def genome_dict(*nodes: tuple, sign: int = 1, ls: float = 0.0, output: int | None = None) -> dict:
    """The nlfs.genome/v1 document of nodes given as (op, input, ...) tuples."""
    return {"format": GENOME_FORMAT, "nodes": [{"op": op, "in": list(ins)} for op, *ins in nodes],
            "output": len(nodes) - 1 if output is None else output, "sign": sign,
            "label_smoothing": ls}


def genome(*nodes: tuple, sign: int = 1, ls: float = 0.0, output: int | None = None) -> Genome:
    """A genome parsed (and so format-checked) from (op, input, ...) tuples; the last is the root."""
    return Genome.from_json(genome_dict(*nodes, sign=sign, ls=ls, output=output))


def accepted_random(seed: int, count: int) -> list[Genome]:
    """The first `count` distinct random genomes of `seed` that pass the check, each with its sign."""
    found = random_accepted(np.random.default_rng(seed), count, max_draws=100_000)
    assert len(found) == count
    return found


def mutants(parents: list[Genome], seed: int, count: int) -> list[Genome]:
    """`count` mutants, round-robin over `parents` (accepted or not)."""
    rng = np.random.default_rng(seed)
    return [mutate(parents[k % len(parents)], rng) for k in range(count)]


def structurally_valid_genomes(seed: int, count: int) -> list[Genome]:
    """Random genomes and mutants of accepted ones that reach y and p without a cycle."""
    rng = np.random.default_rng(seed)
    found = [g for g in (random_genome(rng) for _ in range(4 * count)) if g.structural_problem() is None]
    parents = accepted_random(seed, 5)
    found += [m for m in mutants(parents, seed, 2 * count) if m.structural_problem() is None]
    return found[:count] + found[-count:]

