"""The protocol as pure state transitions: start, fold results in, close a round, open the next.

No I/O: the planner (`nlfs.transfer.plan`) reads results and files around these functions.
A round is one elimination phase or the whole transfer grid; it closes when every unit has a
result, and closing is a deterministic function of the state (plus the earlier rankings for
fidelity), so racing planners compute the same next state and the same files.
"""

from __future__ import annotations

from typing import NamedTuple

from nlfs.result import USABLE_STATUSES
from nlfs.transfer.protocol import Protocol, elimination_stage, override_text
from nlfs.transfer.rank import fidelity, rank_phase
from nlfs.transfer.records import Entrant, PhaseRanking, ProtocolState, Reference, Unit


class Outcome(NamedTuple):
    """What the protocol keeps of one result: its status and fitness, and for runs that scored
    the test split, its test accuracies (nlfs.transfer.accuracy)."""

    status: str
    fitness: float | None
    test_max: float | None = None
    test_at_best_val: float | None = None


def start(protocol: Protocol, candidates: list[Entrant], named: list[Entrant]) -> ProtocolState:
    """The state before any evaluation: phase 1 opened (or the transfer grid, without phases)."""
    state = ProtocolState(protocol_hash=protocol.hash, candidates=candidates, named=named,
                          entrants=[c.id for c in candidates])
    if protocol.elimination.phases and state.entrants:
        return _open_phase(state, protocol, 1)
    return _open_transfer(state.model_copy(update={"finalists": state.entrants, "entrants": []}), protocol)


def fold(state: ProtocolState, results: dict[tuple[str, str], Outcome]) -> tuple[ProtocolState, bool]:
    """Copy known outcomes into the open units; True if anything changed."""
    changed = False
    units = []
    for u in state.units:
        outcome = results.get((u.stage, u.genome)) if u.open else None
        if outcome is not None:
            u = u.model_copy(update=outcome._asdict())  # its fields are the unit's, by name
            changed = True
        units.append(u)
    return (state.model_copy(update={"units": units}) if changed else state), changed


def round_complete(state: ProtocolState) -> bool:
    return not state.done and all(not u.open for u in state.units)


def close_phase(state: ProtocolState, protocol: Protocol) -> tuple[ProtocolState, PhaseRanking]:
    """Rank a finished elimination phase, keep its survivors, open the next phase or the grid."""
    k = state.phase
    spec = protocol.elimination.phases[k - 1]
    stage = elimination_stage(k)
    by_id = {u.genome: u for u in state.units if u.stage == stage}
    surrogate = {c.id: c.surrogate for c in state.candidates}
    ranking = rank_phase(state.entrants, {g: (by_id[g].status, by_id[g].fitness) for g in state.entrants},
                         surrogate, spec.survivors)
    names = {e.id: e.name for e in state.named}
    references = [Reference(name=names[g], id=g, status=by_id[g].status, fitness=by_id[g].fitness)
                  for g in _reference_ids(state, protocol) if g in by_id]
    record = PhaseRanking(
        phase=k, stage=stage, profile=spec.profile, set=_text(spec.set), survivors=spec.survivors,
        ranking=ranking, references=references,
        fidelity=fidelity([(r.surrogate, r.fitness) for r in ranking if r.fitness is not None
                           and r.status is not None and r.surrogate is not None and _usable(r.status)],
                          f"elimination phase {k}", stage, protocol.fidelity))
    survivors = [r.id for r in ranking if r.survived]
    state = state.model_copy(update={"entrants": survivors})
    if k < len(protocol.elimination.phases) and survivors:
        return _open_phase(state, protocol, k + 1), record
    return _open_transfer(state.model_copy(update={"finalists": survivors, "entrants": []}), protocol), record


def finish(state: ProtocolState) -> ProtocolState:
    """The transfer grid is complete: the protocol is done (the planner writes the table)."""
    return state.model_copy(update={"step": "done", "phase": 0})


# ---- opening rounds ---------------------------------------------------------------------------

def _open_phase(state: ProtocolState, protocol: Protocol, k: int) -> ProtocolState:
    spec = protocol.elimination.phases[k - 1]
    stage = elimination_stage(k)
    genomes = _unique([*state.entrants, *_reference_ids(state, protocol)])
    units = [Unit(stage=stage, genome=g, profile=spec.profile, set=_text(spec.set)) for g in genomes]
    return state.model_copy(update={"step": "eliminate", "phase": k, "round": state.round + 1, "units": units})


def _open_transfer(state: ProtocolState, protocol: Protocol) -> ProtocolState:
    losses = transfer_losses(state, protocol)
    units = []
    for cell in protocol.cells():
        for seed in protocol.transfer.seeds:
            overrides = {**cell.set, "seed": str(seed)}
            units += [Unit(stage=cell.stage(seed), genome=g, profile=cell.profile, set=overrides) for g in losses]
    return state.model_copy(update={"step": "transfer", "phase": 0, "round": state.round + 1, "units": units})


def transfer_losses(state: ProtocolState, protocol: Protocol) -> list[str]:
    """The losses of the grid: the finalists, then the baselines (each id once)."""
    ids = {e.name: e.id for e in state.named}
    return _unique([*state.finalists, *(ids[name] for name in protocol.transfer.baselines)])


def _reference_ids(state: ProtocolState, protocol: Protocol) -> list[str]:
    ids = {e.name: e.id for e in state.named}
    return [ids[name] for name in protocol.elimination.references]


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _text(overrides: dict) -> dict[str, str]:
    return {k: override_text(v) for k, v in overrides.items()}


def _usable(status: str) -> bool:
    return status in USABLE_STATUSES


def named_losses(protocol: Protocol) -> list[str]:
    """Every loss the protocol trains by name: the references and the baselines."""
    return _unique([*protocol.elimination.references, *protocol.transfer.baselines])
