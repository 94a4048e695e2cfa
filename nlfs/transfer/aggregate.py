"""The transfer table: accuracy per loss and cell over seeds, tested against the reference.

Pure: from the finished grid's units to a `TransferTable`. Each entry is mean ± sample std of
the usable runs (n of them; the rest counted as failures) and a two-sided test against the
reference baseline in the same cell (`nlfs.stats`). A loss wins a cell when p < alpha and its
mean is higher, loses when p < alpha and lower, ties otherwise; its tally counts cells.
"""

from __future__ import annotations

from collections import Counter

from nlfs import stats
from nlfs.transfer.protocol import Protocol
from nlfs.transfer.rank import fidelity
from nlfs.transfer.records import CellRecord, Entry, LossRecord, ProtocolState, Tally, TransferTable


def transfer_table(state: ProtocolState, protocol: Protocol, losses: list[LossRecord]) -> TransferTable:
    """Aggregate a complete grid. `losses` describes every loss of the grid, in table order."""
    spec = protocol.transfer
    reference = {e.name: e.id for e in state.named}[spec.reference]
    outcome = {(u.stage, u.genome): u for u in state.units}
    cells, entries = [], []
    for cell in protocol.cells():
        stages = [cell.stage(s) for s in spec.seeds]
        cells.append(CellRecord(id=cell.id, name=cell.name, labels=cell.labels, profile=cell.profile,
                                set=cell.set, stages=stages))
        values = {}
        for loss in losses:
            units = [outcome[(st, loss.id)] for st in stages if (st, loss.id) in outcome]
            values[loss.id] = ([u.fitness for u in units if u.usable], sum(not u.usable for u in units),
                               dict(Counter(u.status for u in units)))
        base = values[reference][0]
        base_mean = stats.summarize(base).mean
        for loss in losses:
            vals, failures, statuses = values[loss.id]
            summary = stats.summarize(vals)
            if loss.id == reference:
                p, verdict = None, "reference"
            else:
                p = stats.p_value(vals, base, spec.test)
                verdict = stats.verdict(summary.mean, base_mean, p, spec.alpha)
            entries.append(Entry(cell=cell.id, loss=loss.id, values=vals, failures=failures, statuses=statuses,
                                 mean=summary.mean,
                                 std=summary.std, n=summary.n, p_value=p, verdict=verdict))
    tallies = [Tally(loss=loss.id, **{key: sum(e.verdict == word for e in entries if e.loss == loss.id)
                                      for key, word in (("wins", "win"), ("ties", "tie"), ("losses", "loss"))})
               for loss in losses if loss.id != reference]
    surrogate = {loss.id: loss.surrogate for loss in losses}
    fidelities = []
    for cell in cells:
        pairs = [(surrogate[e.loss], e.mean) for e in entries
                 if e.cell == cell.id and e.mean is not None and surrogate.get(e.loss) is not None]
        fidelities.append(fidelity(pairs, cell.name, cell.id, protocol.fidelity))
    return TransferTable(test=stats.TEST_NAMES[spec.test], alpha=spec.alpha, reference=reference,
                         seeds=list(spec.seeds), cells=cells, losses=losses, entries=entries, tallies=tallies,
                         fidelity=fidelities)
