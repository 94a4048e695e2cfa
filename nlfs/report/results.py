"""`nlfs results`: the top losses of a run and its progress, read in a constant number of requests.

Everything comes from small files whose size does not grow with the history: config.yaml,
state.json (hall of fame and counters), the cross-entropy baseline, the protocol's state,
rankings and table, and the main-stage record of each of the K rows. results/ is never listed,
so the answer costs the same at evaluation 10 as at 10,000, on a directory or on S3.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nlfs.runs import Run
from nlfs.store import NotFoundError, layout

RESULTS_FORMAT = "nlfs.results/v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Row(_Model):
    """One of the top losses: search fitness, how far it went, and its evaluations by status."""

    rank: int
    id: str
    loss: str  # the whole loss as one line (nlfs.genome.describe)
    fitness: float  # main-stage (surrogate) fitness in the search
    vs_baseline: float | None  # fitness minus cross-entropy's on the same profile
    stage: str  # the furthest stage reached: main, elim-<k>, transfer
    runs: int  # evaluations of this loss the run holds, search and protocol
    statuses: dict[str, int]  # those evaluations by status


class Progress(_Model):
    phase: str  # the search's phase: initial, rescore, evolve, done
    done: bool
    evaluations: int  # results folded, every stage (reused ones included)
    budget: int  # evaluations a complete search performs (plus re-mutations so far)
    reused: int
    children: int
    children_budget: int
    discarded: int  # children that scored 0 (every training failed) and were not inserted
    remutations: int = 0  # re-mutations after a failed gate
    gate_failures: int = 0  # failed gates: each saved a main-stage training
    lost: int = 0  # evaluations recorded failed because no result came (failure budget)
    statuses: dict[str, int]  # every folded result by status
    failures: dict[str, int]  # the statuses other than ok
    protocol: str | None = None  # elimination/transfer progress, in words; None before it starts


class TransferFigure(_Model):
    """One loss in one cell of the finished transfer table, by both of its figures (means over seeds)."""

    cell: str  # the cell's name, e.g. setting=base,dataset=cifar10
    loss: str  # the baseline's name, or the genome id
    figure: Literal["max_test_accuracy", "max_val_accuracy"]  # what `mean` is (the cell's figure)
    mean: float | None  # the paper's figure where the cell scores the test set: max test accuracy over epochs
    held_out: float | None  # test accuracy at the epoch of best held-out validation accuracy; None without one
    n: int  # usable runs


class RunSummary(_Model):
    format: Literal["nlfs.results/v1"] = RESULTS_FORMAT
    run: str
    baseline: float | None = None  # cross-entropy's main-stage fitness, when evaluated
    baseline_profile: str | None = None
    progress: Progress
    top: list[Row] = Field(default_factory=list)
    transfer: list[TransferFigure] = Field(default_factory=list)  # once the transfer table exists


def summarize(run: Run, top: int = 10) -> RunSummary:
    """The run's top `top` losses and progress (see the module docstring for what is read)."""
    from nlfs.genome import Genome, describe
    from nlfs.result import ResultRecord

    config = run.config
    state = run.state()
    c = state.counters
    baseline = run.baseline("main")
    protocol = _protocol_view(run)
    rows = []
    for rank, member in enumerate(state.top[:top], 1):
        statuses: Counter = Counter()
        try:
            record = ResultRecord.from_json(run.store.get(layout.result_key("main", member.id)).data)
            statuses[record.status] += 1
        except NotFoundError:
            pass
        stage, extra = protocol.about(member.id)
        statuses.update(extra)
        rows.append(Row(rank=rank, id=member.id, loss=describe(Genome.from_json(member.genome)),
                        fitness=member.fitness,
                        vs_baseline=None if baseline is None or baseline.fitness is None
                        else member.fitness - baseline.fitness,
                        stage=stage, runs=sum(statuses.values()), statuses=dict(sorted(statuses.items()))))
    progress = Progress(
        phase=state.phase, done=state.done, evaluations=c.evaluations,
        budget=config.total_evaluations + c.remutations, reused=c.reused, children=c.children_done,
        children_budget=config.budget, discarded=c.discarded, remutations=c.remutations,
        gate_failures=c.gate_failures, lost=c.lost, statuses=dict(sorted(c.statuses.items())),
        failures={k: v for k, v in sorted(c.statuses.items()) if k != "ok"}, protocol=protocol.words)
    return RunSummary(run=run.uri, baseline=None if baseline is None else baseline.fitness,
                      baseline_profile=None if baseline is None else baseline.profile,
                      progress=progress, top=rows, transfer=_transfer_figures(protocol.table))


def _transfer_figures(table) -> list[TransferFigure]:
    if table is None:
        return []
    from nlfs.report.text import loss_label

    cells = {c.id: c for c in table.cells}
    return [TransferFigure(cell=cells[e.cell].name, loss=loss_label(table, e.loss), figure=cells[e.cell].figure,
                           mean=e.mean, held_out=None if e.held_out is None else e.held_out.mean, n=e.n)
            for e in table.entries]


class _ProtocolView:
    """What the protocol's files say about each loss: furthest stage and evaluations by status."""

    def __init__(self):
        self.stage: dict[str, str] = {}
        self.statuses: dict[str, Counter] = {}
        self.words: str | None = None
        self.table = None  # the transfer table, once the protocol is done

    def add(self, genome: str, stage: str, status: str | None) -> None:
        self.stage[genome] = stage
        if status is not None:
            self.statuses.setdefault(genome, Counter())[status] += 1

    def about(self, genome: str) -> tuple[str, Counter]:
        return self.stage.get(genome, "main"), self.statuses.get(genome, Counter())


def _protocol_view(run: Run) -> _ProtocolView:
    """Reads protocol/state.json, and the rankings and table it says exist (a handful of files)."""
    from nlfs.transfer.plan import rankings, read_protocol, read_state, table

    view = _ProtocolView()
    state, _ = read_state(run)
    if state is None:
        return view
    protocol = read_protocol(run)
    phases = len(protocol.elimination.phases) if protocol else 0
    closed = state.phase - 1 if state.step == "eliminate" else phases
    for ranking in rankings(run, closed):
        for r in ranking.ranking:
            view.add(r.id, ranking.stage, r.status)
    finished = table(run) if state.done else None
    view.table = finished
    if finished is not None:
        for e in finished.entries:
            for status, n in e.statuses.items():
                for _ in range(n):
                    view.add(e.loss, "transfer", status)
    else:
        for u in state.units:
            view.add(u.genome, "transfer" if state.step == "transfer" else u.stage, u.status)
    todo = sum(u.open for u in state.units)
    if state.step == "eliminate":
        view.words = (f"elimination phase {state.phase}/{phases}: {len(state.units) - todo}/"
                      f"{len(state.units)} evaluated, {len(state.entrants)} entrants")
    elif state.step == "transfer":
        view.words = (f"transfer grid: {len(state.units) - todo}/{len(state.units)} evaluated, "
                      f"{len(state.finalists)} finalist(s)")
    else:
        view.words = f"done: {len(state.finalists)} finalist(s), table in {layout.transfer_table_key()}"
    return view


# ---- output ------------------------------------------------------------------------------------

def to_text(summary: RunSummary) -> str:
    """A table for a terminal: progress first, then the top losses, best first."""
    p = summary.progress
    lines = [f"run {summary.run}: search {'done' if p.done else p.phase}, {p.evaluations}/{p.budget} "
             f"evaluations ({p.reused} reused), {p.children}/{p.children_budget} children, "
             f"{p.discarded} scored 0"]
    lines.append(f"gate: {p.gate_failures} failed, saving {p.gate_failures} main-stage trainings; "
                 f"{p.remutations} re-mutations" + (f"; {p.lost} evaluations lost" if p.lost else ""))
    failures = ", ".join(f"{k} {v}" for k, v in p.failures.items()) or "none"
    lines.append(f"failures by status: {failures}")
    if p.protocol:
        lines.append(f"protocol: {p.protocol}")
    if summary.baseline is not None:
        lines.append(f"cross-entropy on the main profile ({summary.baseline_profile}): {summary.baseline:.4f}")
    lines.append("")
    lines.append(f"{'rank':>4}  {'fitness':>7}  {'vs CE':>7}  {'stage':<9}  {'runs':>4}  {'statuses':<14}  "
                 f"{'id':16}  loss")
    for r in summary.top:
        delta = "n/a" if r.vs_baseline is None else f"{r.vs_baseline:+.4f}"
        statuses = " ".join(f"{k}:{v}" for k, v in r.statuses.items()) or "-"
        lines.append(f"{r.rank:>4}  {r.fitness:7.4f}  {delta:>7}  {r.stage:<9}  {r.runs:>4}  {statuses:<14}  "
                     f"{r.id:16}  {r.loss}")
    if not summary.top:
        lines.append("   (no loss has a main-stage fitness yet)")
    if summary.transfer:
        lines += ["", "transfer, means over seeds: max test = the maximum test accuracy over epochs (the paper's "
                  "figure; max val where a cell never sees the test set); at best val = the test accuracy at "
                  "the epoch of best held-out validation accuracy (not biased upwards)",
                  f"  {'cell':<40}  {'loss':<18}  {'max test':>12}  {'at best val':>11}  {'n':>3}"]
        for f in summary.transfer:
            first = "n/a" if f.mean is None else f"{f.mean:.4f}" + ("" if f.figure == "max_test_accuracy" else " (val)")
            held = "n/a" if f.held_out is None else f"{f.held_out:.4f}"
            lines.append(f"  {f.cell:<40}  {f.loss:<18}  {first:>12}  {held:>11}  {f.n:>3}")
    return "\n".join(lines)


CSV_COLUMNS = ("rank", "id", "fitness", "vs_baseline", "stage", "runs", "statuses", "loss")


def to_csv(summary: RunSummary) -> str:
    """One row per top loss; statuses as `ok:2;rejected:1`."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in summary.top:
        writer.writerow([r.rank, r.id, repr(r.fitness), "" if r.vs_baseline is None else repr(r.vs_baseline),
                         r.stage, r.runs, ";".join(f"{k}:{v}" for k, v in r.statuses.items()), r.loss])
    return out.getvalue()


def to_json(summary: RunSummary) -> str:
    return summary.model_dump_json(indent=1)
