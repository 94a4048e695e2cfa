"""The transfer table: accuracy per loss and cell over seeds, tested against the reference.

Pure: from the finished grid's units to a `TransferTable`. Each entry is mean ± sample std of
the usable runs (n of them; the rest counted as failures) and a two-sided test against the
reference baseline in the same cell (`nlfs.stats`). A loss wins a cell when p < alpha and its
mean is higher, loses when p < alpha and lower, ties otherwise; its tally counts cells.

Each run enters by the paper's figure, the maximum test accuracy over its epochs (its fitness in
a cell that never sees the test set), and, in cells with a held-out validation split, also by the
test accuracy at its epoch of best validation accuracy (`nlfs.transfer.accuracy`), which gets
its own mean, test, verdicts and tally.
"""

from __future__ import annotations

from collections import Counter

from nlfs import stats
from nlfs.transfer.accuracy import CellMode, held_out_figure, paper_figure
from nlfs.transfer.protocol import Protocol
from nlfs.transfer.rank import fidelity
from nlfs.transfer.records import (CellRecord, Counts, Entry, HeldOut, LossRecord, ProtocolState, Tally,
                                   TransferTable)

_NO_TEST = CellMode(validates_on_test=False, scores_test=False)  # a cell whose runs are read by fitness
_WORDS = (("wins", "win"), ("ties", "tie"), ("losses", "loss"))


def transfer_table(state: ProtocolState, protocol: Protocol, losses: list[LossRecord],
                   modes: dict[str, CellMode] | None = None) -> TransferTable:
    """Aggregate a complete grid. `losses` describes every loss of the grid, in table order;
    `modes` says how each cell (by id) splits its data (none given: every run by its fitness)."""
    spec = protocol.transfer
    modes = modes or {}
    reference = {e.name: e.id for e in state.named}[spec.reference]
    outcome = {(u.stage, u.genome): u for u in state.units}
    cells, entries = [], []
    for cell in protocol.cells():
        mode = modes.get(cell.id, _NO_TEST)
        stages = [cell.stage(s) for s in spec.seeds]
        cells.append(CellRecord(id=cell.id, name=cell.name, labels=cell.labels, profile=cell.profile,
                                set=cell.set, stages=stages, figure=mode.figure, held_out=mode.held_out))
        runs = {loss.id: [outcome[(st, loss.id)] for st in stages if (st, loss.id) in outcome] for loss in losses}
        paper = {g: _values([paper_figure(mode, u.fitness, u.test_max) for u in us if u.usable])
                 for g, us in runs.items()}
        held = {g: _values([held_out_figure(mode, u.test_at_best_val) for u in us if u.usable])
                for g, us in runs.items()}
        for loss in losses:
            units = runs[loss.id]
            # A usable run without the figure (no test accuracy recorded) counts as a failure.
            first = _compare(paper[loss.id], paper[reference], loss.id == reference, spec)
            entries.append(Entry(cell=cell.id, loss=loss.id, failures=len(units) - first["n"],
                                 statuses=dict(Counter(u.status for u in units)), **first,
                                 held_out=HeldOut(**_compare(held[loss.id], held[reference], loss.id == reference,
                                                             spec)) if mode.held_out else None))
    tallies = []
    for loss in losses:
        if loss.id == reference:
            continue
        mine = [e for e in entries if e.loss == loss.id]
        held_out = [e.held_out for e in mine if e.held_out is not None]
        tallies.append(Tally(loss=loss.id, **_count(mine),
                             held_out=Counts(**_count(held_out)) if held_out else None))
    surrogate = {loss.id: loss.surrogate for loss in losses}
    fidelities = []
    for cell in cells:
        pairs = [(surrogate[e.loss], e.mean) for e in entries
                 if e.cell == cell.id and e.mean is not None and surrogate.get(e.loss) is not None]
        fidelities.append(fidelity(pairs, cell.name, cell.id, protocol.fidelity))
    return TransferTable(test=stats.TEST_NAMES[spec.test], alpha=spec.alpha, reference=reference,
                         seeds=list(spec.seeds), cells=cells, losses=losses, entries=entries, tallies=tallies,
                         fidelity=fidelities)


def _values(xs: list[float | None]) -> list[float]:
    return [x for x in xs if x is not None]


def _compare(values: list[float], base: list[float], is_reference: bool, spec) -> dict:
    """Mean ± std of `values` and the verdict against `base` (the reference's values), as the
    fields of an `Entry` or a `HeldOut`."""
    summary = stats.summarize(values)
    if is_reference:
        p, verdict = None, "reference"
    else:
        p = stats.p_value(values, base, spec.test)
        verdict = stats.verdict(summary.mean, stats.summarize(base).mean, p, spec.alpha)
    return {"values": values, "mean": summary.mean, "std": summary.std, "n": summary.n, "p_value": p,
            "verdict": verdict}


def _count(figures) -> dict[str, int]:
    return {key: sum(f.verdict == word for f in figures) for key, word in _WORDS}
