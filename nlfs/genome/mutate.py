"""Random genomes and mutations of the search space (METHOD.md 1 and 3), with the paper's odds.

Search genomes have 4 hidden nodes (indices 0-3) and a root (index 4); mutation also works on
hand-written genomes of any size, treating `output` as the root. Functions here are pure
given a `numpy.random.Generator`; they may return genomes the integrity check rejects (a cycle,
an unreachable leaf), because the search retries until a child passes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nlfs.genome.graph import Genome, Input, Node
from nlfs.genome.ops import BINARY_OPS, LEAVES, UNARY_OPS

HIDDEN = 4
ROOT = HIDDEN  # index of the root node
P_HIDDEN_UNARY = 0.7
P_ROOT_UNARY = 0.2
P_CHANGE_OP, P_REWIRE = 0.70, 0.15  # the rest (0.15): toggle unary <-> binary
P_SWAP_OPERANDS = 0.2


def _choices(index: int, size: int = HIDDEN + 1, root: int = ROOT) -> list[Input]:
    """Inputs a node may take: hidden nodes take leaves or other hidden nodes, the root hidden only."""
    hidden = [j for j in range(size) if j != root]
    if index == root:
        return hidden
    return list(LEAVES) + [j for j in hidden if j != index]


def _pick(rng: np.random.Generator, items: list, exclude: tuple = ()) -> Input | None:
    """A uniform draw from `items` other than `exclude`; None if nothing is left."""
    pool = [x for x in items if not any(x == e and type(x) is type(e) for e in exclude)]
    return pool[int(rng.integers(len(pool)))] if pool else None


def _random_node(rng: np.random.Generator, index: int) -> Node:
    p_unary = P_ROOT_UNARY if index == ROOT else P_HIDDEN_UNARY
    options = _choices(index)
    if rng.random() < p_unary:
        return Node(str(rng.choice(UNARY_OPS)), (_pick(rng, options),))
    first = _pick(rng, options)
    return Node(str(rng.choice(BINARY_OPS)), (first, _pick(rng, options, (first,))))


def random_genome(rng: np.random.Generator) -> Genome:
    """A random 5-node genome (structurally valid or not). Inputs are drawn uniformly."""
    return Genome(tuple(_random_node(rng, i) for i in range(HIDDEN + 1)), output=ROOT)


def mutate(genome: Genome, rng: np.random.Generator) -> Genome:
    """One mutation of one active node, chosen uniformly (METHOD.md 3). Sign resets to +1.

    p=0.70 change the operator to another of the same arity; p=0.15 rewire (unary: new input;
    binary: swap operands with p=0.2, else redraw the first or second input); p=0.15 toggle
    unary <-> binary (adding a new first or second operand, or dropping one).
    """
    active = genome.active
    index = active[int(rng.integers(len(active)))]
    node = genome.nodes[index]
    options = _choices(index, len(genome.nodes), genome.output)
    r = rng.random()
    new = None
    if r >= P_CHANGE_OP + P_REWIRE:
        new = _toggle(node, options, rng)
    elif r >= P_CHANGE_OP:
        new = _rewire(node, options, rng)
    if new is None:  # the operator change, also where a small graph has no other input to draw
        ops = UNARY_OPS if len(node.inputs) == 1 else BINARY_OPS
        new = Node(str(_pick(rng, list(ops), (node.op,))), node.inputs)
    nodes = list(genome.nodes)
    nodes[index] = new
    return replace(genome, nodes=tuple(nodes), sign=1, name=None)


def _rewire(node: Node, options: list, rng: np.random.Generator) -> Node | None:
    """Unary: a new input. Binary: swap operands (p=0.2), else redraw the first or second."""
    if len(node.inputs) == 1:
        x = _pick(rng, options, node.inputs)
        return None if x is None else Node(node.op, (x,))
    if rng.random() < P_SWAP_OPERANDS:
        return Node(node.op, node.inputs[::-1])
    k = int(rng.integers(2))
    x = _pick(rng, options, node.inputs)
    if x is None:
        return None
    ins = list(node.inputs)
    ins[k] = x
    return Node(node.op, tuple(ins))


def _toggle(node: Node, options: list, rng: np.random.Generator) -> Node | None:
    """Unary -> binary with a new first or second operand; binary -> unary keeping one."""
    if len(node.inputs) == 2:
        keep = node.inputs[int(rng.integers(2))]
        return Node(str(rng.choice(UNARY_OPS)), (keep,))
    extra = _pick(rng, options, node.inputs)
    if extra is None:
        return None
    ins = (extra, node.inputs[0]) if rng.random() < 0.5 else (node.inputs[0], extra)
    return Node(str(rng.choice(BINARY_OPS)), ins)


def random_accepted(rng: np.random.Generator, count: int, max_draws: int, *,
                    distinct_phenotypes: bool = True,
                    readings: tuple[str, ...] = ("log_softmax",)) -> list[Genome]:
    """Up to `count` random genomes that pass the integrity check, each with the sign its check
    chose, distinct by id, and by phenotype too when `distinct_phenotypes` (each is then checked
    against those before it, as a mutant is against the population). `readings`: as in `check`.

    Fewer come back only if `max_draws` draws run out; callers decide whether that is an error.
    """
    from nlfs.genome.integrity import KnownLosses, check

    known = KnownLosses()
    ids: set[str] = set()
    found: list[Genome] = []
    for _ in range(max_draws):
        if len(found) == count:
            break
        genome = random_genome(rng)
        verdict = check(genome, known if distinct_phenotypes else None, readings=readings)
        if verdict.accepted:
            genome = genome.with_sign(verdict.sign)
            if genome.id in ids:
                continue
            ids.add(genome.id)
            if distinct_phenotypes:
                known.add(genome, verdict.phenotype)
            found.append(genome)
    return found
