"""Random genomes and mutation (METHOD.md 1 and 3): the shape of the search space, the paper's
odds, determinism, and that whatever passes the check is a usable loss.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from genome_helpers import accepted_random, mutants
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.genome import Genome, check, compile_genome, mutate, random_genome
from nlfs.genome.graph import Node
from nlfs.genome.mutate import HIDDEN, ROOT
from nlfs.genome.ops import BINARY_OPS, OPS, UNARY_OPS

SEEDS = st.integers(0, 2**32 - 1)


def assert_usable_loss(g: Genome, seed: int) -> None:
    """What every genome that passes the check must be: acyclic, reaching y and p, the same
    after a JSON round trip, and a loss module giving a finite scalar on random logits."""
    assert g.order is not None and {"y", "p"} <= g.active_leaves
    again = Genome.from_json(g.to_json())
    assert again == g and again.id == g.id
    gen = torch.Generator().manual_seed(seed % 2**31)
    logits = torch.randn(8, 10, generator=gen) * 3
    loss = compile_genome(g)(logits, torch.randint(0, 10, (8,), generator=gen))
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)


@settings(max_examples=150, deadline=None)
@given(seed=SEEDS)
def test_random_genomes_that_pass_the_check_are_usable_losses(seed):
    for g in accepted_random(seed, 2):
        assert check(g).accepted
        assert_usable_loss(g, seed)


@settings(max_examples=150, deadline=None)
@given(seed=SEEDS)
def test_mutants_that_pass_the_check_are_usable_losses(seed):
    for child in mutants(accepted_random(seed, 2), seed, 6):
        verdict = check(child)
        if verdict.accepted:
            assert_usable_loss(child.with_sign(verdict.sign), seed)


@settings(max_examples=50, deadline=None)
@given(seed=SEEDS)
def test_the_same_seed_gives_the_same_genomes(seed):
    first = accepted_random(seed, 3) + mutants(accepted_random(seed, 2), seed, 5)
    second = accepted_random(seed, 3) + mutants(accepted_random(seed, 2), seed, 5)
    assert [g.to_json() for g in first] == [g.to_json() for g in second]


def test_different_seeds_give_different_genomes():
    assert len({random_genome(np.random.default_rng(s)).to_json() for s in range(50)}) == 50


def test_a_random_genome_has_four_hidden_nodes_and_a_root_fed_by_hidden_nodes_only():
    rng = np.random.default_rng(0)
    for _ in range(500):
        g = random_genome(rng)
        assert len(g.nodes) == HIDDEN + 1 and g.output == ROOT and g.sign == 1
        assert all(isinstance(x, int) and x != ROOT for x in g.nodes[ROOT].inputs)
        for i, node in enumerate(g.nodes):
            assert len(node.inputs) == OPS[node.op].arity and i not in node.inputs
            if len(node.inputs) == 2:
                assert node.inputs[0] != node.inputs[1]


def test_random_genomes_follow_the_papers_arity_odds():
    """Hidden nodes are unary with probability 0.7, the root with 0.2 (METHOD.md 1)."""
    rng = np.random.default_rng(1)
    genomes = [random_genome(rng) for _ in range(4000)]
    hidden_unary = np.mean([len(g.nodes[i].inputs) == 1 for g in genomes for i in range(HIDDEN)])
    root_unary = np.mean([len(g.nodes[ROOT].inputs) == 1 for g in genomes])
    assert abs(hidden_unary - 0.7) < 0.02 and abs(root_unary - 0.2) < 0.02


def _kind_of_change(parent: Genome, child: Genome) -> str:
    (i,) = [k for k in range(len(parent.nodes)) if parent.nodes[k] != child.nodes[k]]
    before, after = parent.nodes[i], child.nodes[i]
    if len(before.inputs) != len(after.inputs):
        return "toggle"
    if before.op != after.op:
        return "operator"
    return "swap" if after.inputs == before.inputs[::-1] else "rewire"


def test_mutation_changes_one_active_node_with_the_papers_odds():
    """0.70 operator, 0.15 rewire (a binary node swaps operands 1 time in 5), 0.15 toggle."""
    parents = accepted_random(2, 40)
    rng = np.random.default_rng(3)
    kinds = Counter()
    binary_rewires = Counter()
    for k in range(6000):
        parent = parents[k % len(parents)]
        child = mutate(parent, rng)
        changed = [i for i in range(len(parent.nodes)) if parent.nodes[i] != child.nodes[i]]
        assert len(changed) == 1 and changed[0] in parent.active and child.sign == 1
        kind = _kind_of_change(parent, child)
        kinds[kind] += 1
        if kind in ("swap", "rewire") and len(parent.nodes[changed[0]].inputs) == 2:
            binary_rewires[kind] += 1
    total = sum(kinds.values())
    assert abs(kinds["operator"] / total - 0.70) < 0.02
    assert abs((kinds["rewire"] + kinds["swap"]) / total - 0.15) < 0.02
    assert abs(kinds["toggle"] / total - 0.15) < 0.02
    assert abs(binary_rewires["swap"] / sum(binary_rewires.values()) - 0.2) < 0.05


def test_an_operator_change_keeps_the_arity_and_picks_another_operator():
    parents = accepted_random(4, 20)
    rng = np.random.default_rng(5)
    for k in range(1000):
        parent = parents[k % len(parents)]
        child = mutate(parent, rng)
        if _kind_of_change(parent, child) == "operator":
            (i,) = [j for j in range(len(parent.nodes)) if parent.nodes[j] != child.nodes[j]]
            ops = UNARY_OPS if len(parent.nodes[i].inputs) == 1 else BINARY_OPS
            assert child.nodes[i].op in ops and child.nodes[i].op != parent.nodes[i].op


def test_new_inputs_come_from_every_column_and_the_check_rejects_the_cycles_among_them():
    """The authors' `Loss.mutate` draws a new input from every column not already an input:
    the root may read a leaf, and a node may propose itself or the root, which `check` rejects."""
    parents = accepted_random(6, 20)
    rng = np.random.default_rng(7)
    root_leaf = self_loops = 0
    for k in range(3000):
        parent = parents[k % len(parents)]
        child = mutate(parent, rng)
        (i,) = [j for j in range(len(parent.nodes)) if parent.nodes[j] != child.nodes[j]]
        ins = child.nodes[i].inputs
        root_leaf += i == ROOT and any(isinstance(x, str) for x in ins)
        if any(x == i and isinstance(x, int) for x in ins):
            self_loops += 1
            assert check(child).reason == "cycle"
    assert root_leaf > 0 and self_loops > 0


def test_random_nodes_keep_a_dormant_operator_of_the_other_arity_that_a_toggle_brings_back():
    rng = np.random.default_rng(11)
    g = random_genome(rng)
    for node in g.nodes:
        other = BINARY_OPS if len(node.inputs) == 1 else UNARY_OPS
        assert node.dormant in other
    toggles = 0
    for _ in range(400):
        child = mutate(g, rng)
        (i,) = [j for j in range(len(g.nodes)) if g.nodes[j] != child.nodes[j]]
        before, after = g.nodes[i], child.nodes[i]
        if len(before.inputs) != len(after.inputs):
            toggles += 1
            assert (after.op, after.dormant) == (before.dormant, before.op)
    assert toggles > 20


def test_the_dormant_operator_travels_in_the_file_but_is_not_part_of_the_function():
    g = random_genome(np.random.default_rng(2))
    again = Genome.from_json(g.to_json())
    assert again == g and [n.dormant for n in again.nodes] == [n.dormant for n in g.nodes]
    bare = Genome(tuple(Node(n.op, n.inputs) for n in g.nodes), g.output)
    assert bare.id == g.id


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "poly1"])
def test_hand_written_genomes_of_other_sizes_mutate_too(name):
    from nlfs.losses import get_genome

    g = get_genome(name)
    rng = np.random.default_rng(0)
    for _ in range(200):
        child = mutate(g, rng)
        assert len(child.nodes) == len(g.nodes) and child.output == g.output and child.name is None
