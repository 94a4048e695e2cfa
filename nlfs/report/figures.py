"""The report's figures: plain data in, PNG bytes out (matplotlib, Agg backend, no display).

Every figure has a title and labelled axes; `Figure` carries the caption and alt text the
HTML page shows beside it.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import numpy as np

from nlfs.report.history import Event, PopulationPoint

DPI = 110
SIZE = (7.5, 4.2)


@dataclass(frozen=True)
class Figure:
    name: str  # file name under reports/, e.g. fitness.png
    title: str
    caption: str
    png: bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    _plt().close(fig)
    return buf.getvalue()


def _axes(title: str, xlabel: str, ylabel: str, size=SIZE, integer_x: bool = False):
    plt = _plt()
    fig, ax = plt.subplots(figsize=size)
    if integer_x:  # counts of evaluations or children: no tick at 2.5
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def fitness_figure(evs: list[Event], baseline: float | None) -> Figure:
    """Main-stage fitness of every evaluation in fold order, with the best so far."""
    title = "Fitness of every evaluation, in order"
    fig, ax = _axes(title, "evaluation (main stage, in the order the controller folded them)",
                    "fitness (max validation accuracy)", integer_x=True)
    main = [e for e in evs if e.stage == "main" and e.status is not None]
    x = np.arange(1, len(main) + 1)
    for phase, color in (("rescore", "tab:blue"), ("evolve", "tab:green")):
        pts = [(i, e.fitness) for i, e in zip(x, main) if e.phase == phase and e.usable]
        if pts:
            ax.scatter(*zip(*pts), s=14, color=color, alpha=0.7,
                       label="re-scored initial population" if phase == "rescore" else "child")
    bad = [i for i, e in zip(x, main) if not e.usable]
    if bad:
        ax.scatter(bad, [0.0] * len(bad), marker="x", s=14, color="tab:red", label="no usable result (at 0)")
    best, so_far = [], None
    for e in main:
        if e.usable:
            so_far = e.fitness if so_far is None else max(so_far, e.fitness)
        best.append(np.nan if so_far is None else so_far)
    if main:
        ax.step(x, best, where="post", color="black", lw=1.5, label="best so far")
    if baseline is not None:
        ax.axhline(baseline, color="tab:orange", ls="--", lw=1.2, label="cross-entropy (same profile)")
    if main or baseline is not None:
        ax.legend(loc="lower right", fontsize=8)
    caption = (f"{len(main)} main-stage evaluations ({len(bad)} without a usable result, drawn at 0); "
               f"the black line is the best fitness found so far.")
    return Figure("fitness.png", title, caption, _png(fig))


def population_figure(points: list[PopulationPoint], size: int) -> Figure:
    """Best, median and worst fitness of the population after each child (quartiles shaded)."""
    title = "Population fitness over time"
    fig, ax = _axes(title, "children evaluated", "fitness of population members", integer_x=True)
    if points:
        x = [p.children for p in points]
        arr = [np.asarray(p.fitness) for p in points]
        q1, med, q3 = (np.array([np.percentile(a, q) for a in arr]) for q in (25, 50, 75))
        ax.fill_between(x, q1, q3, color="tab:blue", alpha=0.2, step="post", label="25-75th percentile")
        ax.step(x, [a.max() for a in arr], where="post", color="tab:green", label="best member")
        ax.step(x, med, where="post", color="tab:blue", label="median member")
        ax.step(x, [a.min() for a in arr], where="post", color="tab:red", lw=0.8, label="worst member")
        ax.legend(loc="lower right", fontsize=8)
    caption = (f"The population (capacity {size}) replayed from the batch files with the search's aging rule; "
               f"point 0 is the re-scored initial population.")
    return Figure("population.png", title, caption, _png(fig))


def probe_figure(curves: list[tuple[str, np.ndarray]], reference: np.ndarray) -> Figure:
    """Probe curves (METHOD.md 2) of the top losses, sign applied and min-max normalised."""
    from nlfs.genome.integrity import PROBE_SIZE

    title = "Probe curves of the top losses beside cross-entropy"
    fig, ax = _axes(title, "probability of the true class", "loss on the probe (sign applied, scaled to [0, 1])")
    # Probe row i has p = [q_i, 1 - q_i] with label [0, 1]: the true class's probability is 1 - q_i.
    q = np.linspace(1e-7, 1 - 1e-7, PROBE_SIZE)
    x = 1 - q
    ax.plot(x, reference, color="black", lw=2.5, ls="--", label="cross-entropy")
    for label, curve in curves:
        ax.plot(x, curve, lw=1.3, label=label)
    ax.legend(loc="upper right", fontsize=7)
    caption = ("Each loss on METHOD.md 2's probe (two classes, true-class probability falling from 1 to 0), "
               "after its sign, min-max normalised: the shape the integrity check sees.")
    return Figure("probe.png", title, caption, _png(fig))


def operator_figure(counts: Counter, members: int) -> Figure:
    """How often each operator appears among the active nodes of the population."""
    title = "Operator frequency in the population"
    items = counts.most_common()
    height = max(3.0, 0.28 * len(items) + 1.2)
    fig, ax = _axes(title, "active nodes using the operator", "operator", size=(7.5, height))
    if items:
        names, values = zip(*items)
        ax.barh(list(reversed(names)), list(reversed(values)), color="tab:purple")
    caption = f"Active nodes of the {members} member(s) of the final population, by operator."
    return Figure("operators.png", title, caption, _png(fig))


def transfer_figure(cells: list[str], losses: list[str], means: dict, stds: dict,
                    held_out: dict | None = None) -> Figure:
    """Grouped bars: mean accuracy ± std of each loss in each transfer cell (the paper's figure,
    the maximum test accuracy over epochs, where the cell scores the test set); a black diamond
    on a bar marks the mean test accuracy at the epoch of best held-out validation accuracy."""
    held_out = held_out or {}
    title = "Transfer: accuracy per setting (mean ± std over seeds)"
    fig, ax = _axes(title, "setting (cell of the grid)", "accuracy (mean over seeds)",
                    size=(max(7.5, 1.2 * len(cells) * max(1, len(losses)) / 3), 4.5))
    width = 0.8 / max(1, len(losses))
    x = np.arange(len(cells))
    for j, loss in enumerate(losses):
        m = [means.get((c, loss)) for c in cells]
        s = [stds.get((c, loss)) or 0.0 for c in cells]
        at = x + j * width - 0.4 + width / 2
        ax.bar(at, [np.nan if v is None else v for v in m], width, yerr=s, capsize=3, label=loss)
        h = [held_out.get((c, loss)) for c in cells]
        if any(v is not None for v in h):
            ax.scatter(at, [np.nan if v is None else v for v in h], marker="D", s=18, color="black", zorder=3,
                       label="test acc. at best held-out val. epoch" if j == 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels(cells, rotation=20, ha="right", fontsize=7)
    ax.legend(fontsize=7)
    caption = ("Bars: each cell's figure, the maximum test accuracy over epochs (the paper's, biased upwards: "
               "the epoch is picked on the test set), or the maximum validation accuracy where a cell never "
               "sees the test set; error bars are one sample standard deviation over the seeds.")
    if held_out:
        caption += (" Diamonds: the test accuracy at each run's epoch of best validation accuracy on the held-out "
                    "split, not biased upwards.")
    return Figure("transfer.png", title, caption, _png(fig))


def fidelity_figure(pairs: list[tuple[float, float]], against: str, summary: str) -> Figure:
    """Surrogate fitness against large-model accuracy, one point per loss."""
    title = f"Surrogate fidelity: search fitness vs {against}"
    fig, ax = _axes(title, "surrogate fitness (search, main stage)", f"accuracy ({against})")
    if pairs:
        ax.scatter(*zip(*pairs), s=24, color="tab:blue")
    caption = summary
    return Figure("fidelity.png", title, caption, _png(fig))
