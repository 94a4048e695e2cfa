"""Plain-text tables of the elimination rankings and the transfer table, for terminals."""

from __future__ import annotations

from nlfs.transfer.records import Fidelity, PhaseRanking, TransferTable


def _num(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def fidelity_text(f: Fidelity) -> str:
    def one(label, c):
        if c.value is None:
            return f"{label} n/a"
        ci = f" [{c.low:+.3f}, {c.high:+.3f}]" if c.low is not None else ""
        return f"{label} {c.value:+.3f}{ci}"

    return (f"surrogate fidelity vs {f.against} (n={f.n}): {one('Spearman', f.spearman)}, "
            f"{one('Kendall', f.kendall)}; interval: {f.method}")


def elimination_text(rankings: list[PhaseRanking]) -> str:
    if not rankings:
        return "elimination: no phase ranked yet"
    lines = []
    for r in rankings:
        kept = sum(x.survived for x in r.ranking)
        settings = " ".join(f"{k}={v}" for k, v in r.set.items())
        lines.append(f"elimination phase {r.phase} ({r.profile}{' ' + settings if settings else ''}, "
                     f"stage {r.stage}): {len(r.ranking)} entrant(s), {kept} survive")
        lines.append(f"  {'rank':>4}  {'fitness':>7}  {'surrogate':>9}  {'status':<9}  {'id':16}")
        for x in r.ranking:
            mark = "  survives" if x.survived else ""
            lines.append(f"  {x.rank:>4}  {_num(x.fitness):>7}  {_num(x.surrogate):>9}  {x.status or '-':<9}  "
                         f"{x.id:16}{mark}")
        for ref in r.references:
            lines.append(f"  reference {ref.name}: {_num(ref.fitness)} ({ref.status})")
        if r.fidelity is not None:
            lines.append("  " + fidelity_text(r.fidelity))
    return "\n".join(lines)


def loss_label(table: TransferTable, genome_id: str) -> str:
    for loss in table.losses:
        if loss.id == genome_id:
            return loss.name or loss.id
    return genome_id


def _mean(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"


def transfer_text(table: TransferTable) -> str:
    lines = [f"transfer: {len(table.losses)} loss(es) x {len(table.cells)} cell(s) x {len(table.seeds)} seed(s); "
             f"test against {loss_label(table, table.reference)}: {table.test}, alpha {table.alpha}",
             "max test: the maximum test accuracy over epochs (the paper's figure, biased upwards); "
             "at best val: the test accuracy at the epoch of best held-out validation accuracy"]
    for cell in table.cells:
        lines.append(f"cell {cell.name} ({cell.profile}{''.join(f' {k}={v}' for k, v in cell.set.items())})")
        first = "max test" if cell.figure == "max_test_accuracy" else "max val"
        head = f"  {'loss':<18}  {first + ' mean ± std':>22}  {'n':>3}  {'failed':>6}  {'p':>7}  {'verdict':<9}"
        if cell.held_out:
            head += f"  {'at best val mean ± std':>22}  {'n':>3}  {'p':>7}  verdict"
        lines.append(head.rstrip())
        for e in (e for e in table.entries if e.cell == cell.id):
            p = "-" if e.p_value is None else f"{e.p_value:.4f}"
            line = (f"  {loss_label(table, e.loss):<18}  {_mean(e.mean, e.std):>22}  {e.n:>3}  {e.failures:>6}  "
                    f"{p:>7}  {e.verdict:<9}")
            if cell.held_out and e.held_out is not None:
                h = e.held_out
                hp = "-" if h.p_value is None else f"{h.p_value:.4f}"
                line += f"  {_mean(h.mean, h.std):>22}  {h.n:>3}  {hp:>7}  {h.verdict}"
            lines.append(line.rstrip())
    both = any(t.held_out is not None for t in table.tallies)
    lines.append("wins/ties/losses against the reference, over cells" + (" (each cell's figure; at best val)"
                                                                          if both else "") + ":")
    for t in table.tallies:
        held = "" if t.held_out is None else f"; {t.held_out.wins}/{t.held_out.ties}/{t.held_out.losses}"
        lines.append(f"  {loss_label(table, t.loss):<18}  {t.wins}/{t.ties}/{t.losses}{held}")
    for loss in table.losses:
        lines.append(f"  {loss.name or loss.id}: {loss.text}")
    for f in table.fidelity:
        lines.append(fidelity_text(f))
    return "\n".join(lines)
