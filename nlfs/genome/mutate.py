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
    """Inputs a node may take in a random genome: hidden nodes take leaves or other hidden nodes,
    the root hidden nodes only (the authors' `Loss.setup`)."""
    hidden = [j for j in range(size) if j != root]
    if index == root:
        return hidden
    return list(LEAVES) + [j for j in hidden if j != index]


def _columns(size: int) -> list[Input]:
    """Every input a mutation may propose: each leaf and each node, the mutated node and the root
    included (the authors draw from every column of the adjacency matrix not already an input
    of the node; a self-loop or a hidden node reading the root is then rejected as a cycle)."""
    return list(LEAVES) + list(range(size))


def _pick(rng: np.random.Generator, items: list, exclude: tuple = ()) -> Input | None:
    """A uniform draw from `items` other than `exclude`; None if nothing is left."""
    pool = [x for x in items if not any(x == e and type(x) is type(e) for e in exclude)]
    return pool[int(rng.integers(len(pool)))] if pool else None


def _random_node(rng: np.random.Generator, index: int) -> Node:
    """A node as the authors' `Node.__init__` draws it: a unary and a binary operator both, one
    active by the arity odds, the other kept dormant for a later toggle."""
    p_unary = P_ROOT_UNARY if index == ROOT else P_HIDDEN_UNARY
    options = _choices(index)
    unary_op, binary_op = str(rng.choice(UNARY_OPS)), str(rng.choice(BINARY_OPS))
    if rng.random() < p_unary:
        return Node(unary_op, (_pick(rng, options),), dormant=binary_op)
    first = _pick(rng, options)
    return Node(binary_op, (first, _pick(rng, options, (first,))), dormant=unary_op)


def random_genome(rng: np.random.Generator) -> Genome:
    """A random 5-node genome (structurally valid or not). Inputs are drawn uniformly."""
    return Genome(tuple(_random_node(rng, i) for i in range(HIDDEN + 1)), output=ROOT)


def mutate(genome: Genome, rng: np.random.Generator) -> Genome:
    """One mutation of one active node, chosen uniformly (METHOD.md 3; the authors' `Loss.mutate`).
    Sign resets to +1.

    p=0.70 change the operator to another of the same arity; p=0.15 rewire (unary: new input;
    binary: swap operands with p=0.2, else redraw the first or second input); p=0.15 toggle
    unary <-> binary (the dormant operator becomes active, adding a new first or second operand,
    or dropping one). New inputs come from every leaf and node not already an input.
    """
    active = genome.active
    index = active[int(rng.integers(len(active)))]
    node = genome.nodes[index]
    options = _columns(len(genome.nodes))
    r = rng.random()
    new = None
    if r >= P_CHANGE_OP + P_REWIRE:
        new = _toggle(node, options, rng)
    elif r >= P_CHANGE_OP:
        new = _rewire(node, options, rng)
    if new is None:  # the operator change, also where a small graph has no other input to draw
        ops = UNARY_OPS if len(node.inputs) == 1 else BINARY_OPS
        new = Node(str(_pick(rng, list(ops), (node.op,))), node.inputs, node.dormant)
    nodes = list(genome.nodes)
    nodes[index] = new
    return replace(genome, nodes=tuple(nodes), sign=1, name=None)


def _rewire(node: Node, options: list, rng: np.random.Generator) -> Node | None:
    """Unary: a new input. Binary: swap operands (p=0.2), else redraw the first or second."""
    if len(node.inputs) == 1:
        x = _pick(rng, options, node.inputs)
        return None if x is None else Node(node.op, (x,), node.dormant)
    if rng.random() < P_SWAP_OPERANDS:
        return Node(node.op, node.inputs[::-1], node.dormant)
    k = int(rng.integers(2))
    x = _pick(rng, options, node.inputs)
    if x is None:
        return None
    ins = list(node.inputs)
    ins[k] = x
    return Node(node.op, tuple(ins), node.dormant)


def _toggle(node: Node, options: list, rng: np.random.Generator) -> Node | None:
    """Unary -> binary with a new first or second operand; binary -> unary keeping one. The
    dormant operator becomes active and the active one dormant; a node without one (a
    hand-written genome) draws its new operator."""
    if len(node.inputs) == 2:
        keep = node.inputs[int(rng.integers(2))]
        op = node.dormant if node.dormant is not None else str(rng.choice(UNARY_OPS))
        return Node(op, (keep,), node.op)
    extra = _pick(rng, options, node.inputs)
    if extra is None:
        return None
    ins = (extra, node.inputs[0]) if rng.random() < 0.5 else (node.inputs[0], extra)
    op = node.dormant if node.dormant is not None else str(rng.choice(BINARY_OPS))
    return Node(op, ins, node.op)


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
