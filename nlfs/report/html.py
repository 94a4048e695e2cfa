"""`nlfs report`: one self-contained HTML page with its figures, written into the run's reports/.

The page embeds every figure as a data: URI (it opens on its own, downloaded from any S3
client); the same PNGs are written beside it as reports/<figure>.png. A report is derived and
regenerated on each call, so its files are overwritten, unlike the run's create-only records.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections import Counter
from pathlib import Path

from nlfs.report import figures
from nlfs.report.history import events, population_over_time, read_batches, read_results
from nlfs.report.results import RunSummary, summarize
from nlfs.report.text import fidelity_text, loss_label
from nlfs.runs import Run
from nlfs.store import layout
from nlfs.transfer.plan import rankings as elimination_rankings
from nlfs.transfer.plan import read_protocol
from nlfs.transfer.plan import table as transfer_table
from nlfs.transfer.records import PhaseRanking, TransferTable

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums} code{font-size:.9em}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
.win{color:#060;font-weight:600} .loss{color:#a00;font-weight:600} .muted{color:#777}
"""


def build(run: Run, top: int = 5) -> tuple[str, list[figures.Figure]]:
    """The page's HTML and its figures (reads the whole history: batches and results)."""
    from nlfs.genome import Genome
    from nlfs.genome.integrity import phenotype, probe_curve
    from nlfs.losses import get_genome

    summary = summarize(run, top=max(top, 10))
    state = run.state()
    config = run.config
    evs = events(read_batches(run), read_results(run))
    figs = [figures.fitness_figure(evs, summary.baseline),
            figures.population_figure(population_over_time(evs, config.population), config.population)]
    ce = get_genome("cross_entropy")
    curves = []
    for m in state.top[:top]:
        g = Genome.from_json(m.genome)
        curves.append((f"{m.id[:8]} ({m.fitness:.3f})", phenotype(probe_curve(g), g.sign)))
    figs.append(figures.probe_figure(curves, phenotype(probe_curve(ce), ce.sign)))
    ops: Counter = Counter()
    for m in state.population:
        g = Genome.from_json(m.genome)
        ops.update(g.nodes[i].op for i in g.active)
    figs.append(figures.operator_figure(ops, len(state.population)))

    protocol = read_protocol(run)
    rankings = elimination_rankings(run, len(protocol.elimination.phases)) if protocol else []
    table = transfer_table(run)
    if table is not None:
        cells = [c.name for c in table.cells]
        names = {c.id: c.name for c in table.cells}
        labels = [loss_label(table, l.id) for l in table.losses]
        means = {(names[e.cell], loss_label(table, e.loss)): e.mean for e in table.entries}
        stds = {(names[e.cell], loss_label(table, e.loss)): e.std for e in table.entries}
        held = {(names[e.cell], loss_label(table, e.loss)): e.held_out.mean for e in table.entries
                if e.held_out is not None}
        figs.append(figures.transfer_figure(cells, labels, means, stds, held))
    first = next((r for r in rankings if r.fidelity is not None), None)
    if first is not None:
        pairs = [(x.surrogate, x.fitness) for x in first.ranking
                 if x.surrogate is not None and x.fitness is not None and x.status in ("ok", "diverged", "timeout")]
        figs.append(figures.fidelity_figure(pairs, f"elimination phase {first.phase}", fidelity_text(first.fidelity)))
    return _page(summary, figs, rankings, table), figs


def write_report(run: Run, top: int = 5, local_dir: str | None = None) -> list[str]:
    """Write reports/index.html and reports/<figure>.png into the run; returns their keys, page first."""
    page, figs = build(run, top)
    files = [("index.html", page.encode())] + [(f.name, f.png) for f in figs]
    keys = []
    for name, data in files:
        key = layout.report_key(name)
        run.store.put(key, data)
        keys.append(key)
        if local_dir:
            Path(local_dir).mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / name).write_bytes(data)
    return keys


# ---- the page ---------------------------------------------------------------------------------

def _e(x) -> str:
    return html.escape(str(x))


def _num(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _page(summary: RunSummary, figs: list[figures.Figure], rankings: list[PhaseRanking],
          table: TransferTable | None) -> str:
    p = summary.progress
    out = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>nlfs report: {_e(summary.run)}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>nlfs report</h1><p><code>{_e(summary.run)}</code> &middot; generated "
           f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</p>",
           "<h2>Progress</h2><ul>",
           f"<li>search {'done' if p.done else _e(p.phase)}: {p.evaluations} of {p.budget} evaluations "
           f"({p.reused} reused), {p.children} of {p.children_budget} children, {p.discarded} scored 0</li>",
           f"<li>gate: {p.gate_failures} failed, saving {p.gate_failures} main-stage trainings; "
           f"{p.remutations} re-mutations{f'; {p.lost} evaluations lost' if p.lost else ''}</li>",
           f"<li>results by status: {_e(', '.join(f'{k} {v}' for k, v in p.statuses.items()) or 'none')}</li>"]
    if summary.baseline is not None:
        out.append(f"<li>cross-entropy on the main profile ({_e(summary.baseline_profile)}): {summary.baseline:.4f}</li>")
    if p.protocol:
        out.append(f"<li>protocol: {_e(p.protocol)}</li>")
    out.append("</ul><h2>Top losses</h2><table><tr><th>rank</th><th>fitness</th><th>vs CE</th><th>stage</th>"
               "<th>runs</th><th>statuses</th><th>id</th><th>loss</th></tr>")
    for r in summary.top:
        statuses = " ".join(f"{k}:{v}" for k, v in r.statuses.items())
        delta = "n/a" if r.vs_baseline is None else f"{r.vs_baseline:+.4f}"
        out.append(f"<tr><td class=num>{r.rank}</td><td class=num>{r.fitness:.4f}</td><td class=num>{delta}</td>"
                   f"<td>{_e(r.stage)}</td><td class=num>{r.runs}</td><td>{_e(statuses)}</td>"
                   f"<td><code>{r.id}</code></td><td><code>{_e(r.loss)}</code></td></tr>")
    out.append("</table><h2>Figures</h2>")
    for f in figs:
        data = base64.b64encode(f.png).decode()
        out.append(f"<figure id=\"{_e(f.name[:-4])}\"><img src=\"data:image/png;base64,{data}\" "
                   f"alt=\"{_e(f.title)}\"><figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} "
                   f"<span class=muted>(also reports/{_e(f.name)})</span></figcaption></figure>")
    if rankings:
        out.append("<h2>Elimination</h2>")
        for r in rankings:
            out.append(_ranking_html(r))
    if table is not None:
        out.append(_table_html(table))
    out.append("</body></html>")
    return "\n".join(out)


def _ranking_html(r: PhaseRanking) -> str:
    settings = " ".join(f"{k}={v}" for k, v in r.set.items())
    rows = [f"<h3>Phase {r.phase}: <code>{_e(r.profile)}</code> {_e(settings)} (stage <code>{_e(r.stage)}</code>), "
            f"{sum(x.survived for x in r.ranking)} of {len(r.ranking)} survive</h3>",
            "<table><tr><th>rank</th><th>fitness</th><th>surrogate</th><th>status</th><th>id</th><th>survives</th></tr>"]
    for x in r.ranking:
        rows.append(f"<tr><td class=num>{x.rank}</td><td class=num>{_num(x.fitness)}</td>"
                    f"<td class=num>{_num(x.surrogate)}</td><td>{_e(x.status)}</td><td><code>{x.id}</code></td>"
                    f"<td>{'yes' if x.survived else ''}</td></tr>")
    for ref in r.references:
        rows.append(f"<tr class=muted><td>ref</td><td class=num>{_num(ref.fitness)}</td><td></td>"
                    f"<td>{_e(ref.status)}</td><td>{_e(ref.name)}</td><td></td></tr>")
    rows.append("</table>")
    if r.fidelity is not None:
        rows.append(f"<p>{_e(fidelity_text(r.fidelity))}</p>")
    return "\n".join(rows)


def _table_html(t: TransferTable) -> str:
    rows = [f"<h2>Transfer</h2><p>Each run enters by its cell's figure: the <b>maximum test accuracy over "
            f"epochs</b>, the paper's (METHOD.md 6; biased upwards, as the epoch is picked on the test set), "
            f"or its maximum validation accuracy where the cell never sees the test set. Where the cell "
            f"validates on a held-out split, the <b>test accuracy at the epoch of best held-out validation "
            f"accuracy</b> stands beside it, not biased upwards. Mean &plusmn; sample std over "
            f"{len(t.seeds)} seed(s); significance of each figure against "
            f"<b>{_e(loss_label(t, t.reference))}</b> in the same setting by {_e(t.test)}, alpha {t.alpha}: "
            f"a win or loss needs p &lt; alpha.</p>"]
    for cell in t.cells:
        rows.append(f"<h3>{_e(cell.name)} <span class=muted>(<code>{_e(cell.profile)}</code> "
                    f"{_e(' '.join(f'{k}={v}' for k, v in cell.set.items()))})</span></h3>")
        first = "max test accuracy" if cell.figure == "max_test_accuracy" else "max validation accuracy"
        head = (f"<table><tr><th>loss</th><th>{first}<br>mean &plusmn; std</th><th>n</th><th>failed</th>"
                f"<th>p</th><th>verdict</th>")
        if cell.held_out:
            head += ("<th>test acc. at best held-out val. epoch<br>mean &plusmn; std</th><th>n</th><th>p</th>"
                     "<th>verdict</th>")
        rows.append(head + "</tr>")
        for e in (e for e in t.entries if e.cell == cell.id):
            row = (f"<tr><td>{_e(loss_label(t, e.loss))}</td><td class=num>{_mean_html(e.mean, e.std)}</td>"
                   f"<td class=num>{e.n}</td><td class=num>{e.failures}</td><td class=num>{_num(e.p_value)}</td>"
                   f"<td class={e.verdict}>{e.verdict}</td>")
            if cell.held_out and e.held_out is not None:
                h = e.held_out
                row += (f"<td class=num>{_mean_html(h.mean, h.std)}</td><td class=num>{h.n}</td>"
                        f"<td class=num>{_num(h.p_value)}</td><td class={h.verdict}>{h.verdict}</td>")
            rows.append(row + "</tr>")
        rows.append("</table>")
    held_out = any(tally.held_out is not None for tally in t.tallies)
    rows.append("<h3>Wins / ties / losses against the reference, over settings</h3><table>"
                "<tr><th>loss</th><th>wins</th><th>ties</th><th>losses</th>"
                + ("<th>by the held-out figure: wins / ties / losses</th>" if held_out else "")
                + "<th>formula</th></tr>")
    text = {l.id: l.text for l in t.losses}
    for tally in t.tallies:
        extra = ""
        if held_out:
            h = tally.held_out
            extra = f"<td class=num>{'n/a' if h is None else f'{h.wins} / {h.ties} / {h.losses}'}</td>"
        rows.append(f"<tr><td>{_e(loss_label(t, tally.loss))}</td><td class=num>{tally.wins}</td>"
                    f"<td class=num>{tally.ties}</td><td class=num>{tally.losses}</td>{extra}"
                    f"<td><code>{_e(text.get(tally.loss, ''))}</code></td></tr>")
    rows.append("</table>")
    for f in t.fidelity:
        rows.append(f"<p>{_e(fidelity_text(f))}</p>")
    return "\n".join(rows)


def _mean_html(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.4f} &plusmn; {std:.4f}"
