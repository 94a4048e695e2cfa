"""Rendering for people: infix text, the whole loss in one line, a simplified form, LaTeX."""

from __future__ import annotations

import time

import pytest
import sympy
from genome_helpers import genome

from nlfs.genome import Genome, GenomeError, Node, describe, infix, latex, simplified
from nlfs.genome.render import MAX_INFIX_OPS
from nlfs.losses import get_genome


def test_cross_entropy_reads_as_its_formula():
    ce = get_genome("cross_entropy")
    assert infix(ce) == "y * log(p)"
    assert describe(ce) == "-mean_b sum_c [y * log(p)]"


def test_label_smoothing_is_part_of_the_description():
    assert describe(get_genome("label_smoothing")).endswith("(label smoothing 0.1)")


def test_operators_nest_with_the_parentheses_they_need():
    assert infix(get_genome("focal")) == "y * (square(1 - p) * log(p))"
    assert infix(genome(("sub", "y", "p"), ("div", 0, "p"), ("ndiv", 1, "-1"))) == "ndiv(div(y - p, p), -1)"


def test_simplified_form_uses_that_p_and_y_are_probabilities():
    """|p| and |y| vanish for positive symbols; the guard eps stays, as computed."""
    p, y = sympy.symbols("p y", positive=True)
    assert simplified(get_genome("mse")) == sympy.simplify((p - y) ** 2)
    assert sympy.simplify(simplified(get_genome("cross_entropy")) - y * sympy.log(p + 1e-7)) == 0


def test_latex_is_the_whole_loss_with_sign_and_reductions():
    text = latex(get_genome("cross_entropy"))
    assert text.startswith(r"\mathcal{L} = -\frac{1}{B}\sum_{b=1}^{B}\sum_{c=1}^{C}")
    assert r"\log" in text


def test_a_cyclic_graph_renders_without_looping():
    assert infix(genome(("log", 1), ("mul", "y", 0))) == "<cyclic graph>"


def ladder(levels: int) -> Genome:
    """Each level uses both nodes of the level below twice: 2^levels operators written out."""
    nodes = [Node("log", ("p",)), Node("mul", ("y", 0))]
    for _ in range(levels):
        a, b = len(nodes) - 2, len(nodes) - 1
        nodes += [Node("add", (a, b)), Node("mul", (a, b))]
    return Genome(tuple(nodes), len(nodes) - 1)


def test_a_graph_too_large_to_write_out_is_written_node_by_node():
    started = time.perf_counter()
    text = infix(ladder(31))
    assert text.startswith("n0 = log(p); n1 = y * n0; n2 = n0 + n1") and text.endswith("t = n63")
    with pytest.raises(GenomeError, match="too large to simplify"):
        simplified(ladder(31))
    assert time.perf_counter() - started < 1.0
    small = ladder(3)
    assert len(infix(small)) < 10 * MAX_INFIX_OPS and not infix(small).startswith("n0 =")


# ---- bounded rendering (issue 12, point 7) ------------------------------------------------------

def test_render_simplifies_once_and_gives_text_and_latex_from_that_one_form():
    from nlfs.genome.render import render

    shown = render(get_genome("focal"))
    assert shown.simplified and shown.note == ""
    assert shown.text == str(simplified(get_genome("focal")))
    assert shown.latex == latex(get_genome("focal")) and r"\log" in shown.latex


def test_past_its_time_sympy_is_stopped_and_t_is_shown_as_written():
    from nlfs.genome.render import render

    focal = get_genome("focal")
    started = time.perf_counter()
    shown = render(focal, seconds=0)
    assert not shown.simplified and "took longer than 0 s" in shown.note
    assert shown.text == infix(focal)
    assert shown.latex == (r"\mathcal{L} = -\frac{1}{B}\sum_{b=1}^{B}\sum_{c=1}^{C} \left[\left(y \cdot "
                           r"\left(\operatorname{square}\left(\left(1 - p\right)\right) \cdot "
                           r"\operatorname{log}\left(p\right)\right)\right)\right]")


def test_a_graph_too_large_for_sympy_is_rendered_node_by_node_without_it():
    from nlfs.genome.render import render

    shown = render(ladder(31))
    assert not shown.simplified and "too large to simplify" in shown.note
    assert r"\left[t\right],\quad n_{0} = \operatorname{log}\left(p\right)" in shown.latex
    assert shown.latex.endswith("t = n_{63}")


def test_large_random_genomes_render_in_any_case():
    """Genomes up to the format's 64 nodes: each renders, simplified or as written (the time
    each takes is measured by bench/bench_render.py, not here)."""
    import numpy as np
    from genomekit import large_random_genome

    from nlfs.genome.render import render

    rng = np.random.default_rng(12)
    for nodes in (64, 48, 32):
        g = large_random_genome(rng, nodes)
        shown = render(g, seconds=0.5)
        assert shown.latex.startswith(r"\mathcal{L} = ") and shown.text
        assert shown.simplified or shown.note
