"""One planner call against a run's store: fold finished results, close rounds, hand out work.

Shaped like the controller step (`nlfs.evolution.controller.step`): idempotent and safe under
concurrency. The protocol state moves only by compare-and-swap; genomes, rankings and the
table are written create-only before the state that names them, and are deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from nlfs.errors import NlfsError
from nlfs.runs import Run
from nlfs.store import ConflictError, layout
from nlfs.transfer.accuracy import CellMode, run_accuracy
from nlfs.transfer.aggregate import transfer_table
from nlfs.transfer.protocol import Protocol, parse_protocol, set_list
from nlfs.transfer.records import Entrant, LossRecord, PhaseRanking, ProtocolState, TransferTable, Unit
from nlfs.transfer import rounds

log = logging.getLogger("nlfs.transfer")
MAX_CAS_RETRIES = 50
Until = Literal["elimination", "transfer"]


@dataclass
class Plan:
    """What a planner call leaves to do: the open units (at most `workers` of them)."""

    state: ProtocolState
    units: list[Unit] = field(default_factory=list)
    done: bool = False

    def items(self, run_uri: str, genomes_per_item: int = 1) -> list[dict]:
        """Work items for a fan-out: units of one stage, profile and overrides, K genomes each."""
        k = max(1, genomes_per_item)
        groups: dict[tuple, list[str]] = {}
        for u in self.units:
            groups.setdefault((u.stage, u.profile, tuple(u.set.items())), []).append(u.genome)
        items = []
        for (stage, profile, overrides), genomes in groups.items():
            for i in range(0, len(genomes), k):
                items.append({"run": run_uri, "batch": self.state.round, "stage": stage,
                              "genomes": genomes[i:i + k], "profile": profile,
                              "set": set_list(dict(overrides))})
        return items


# ---- the protocol file ------------------------------------------------------------------------

def read_protocol(run: Run) -> Protocol | None:
    blob = run.store.get_or_none(layout.protocol_key())
    if blob is None:
        return None
    return parse_protocol(blob.data, source=f"{run.uri}/{layout.protocol_key()}")


def ensure_protocol(run: Run, given: Protocol | None) -> Protocol:
    """The run's protocol: stored once (create-only). `given` must match a stored one; without
    one given, the stored protocol, else METHOD.md's defaults (stored then)."""
    stored = read_protocol(run)
    if stored is not None:
        if given is not None and given.hash != stored.hash:
            raise NlfsError(f"{run.uri} already holds a different protocol (hash {stored.hash}, given "
                            f"{given.hash}); drop --protocol/--set to resume it, or use another run")
        return stored
    protocol = given if given is not None else parse_protocol(None)
    if not run.store.put_if_absent(layout.protocol_key(), protocol.to_yaml().encode()):
        return ensure_protocol(run, given)  # another planner stored one meanwhile: compare with it
    return protocol


# ---- the planner ------------------------------------------------------------------------------

def plan(run: Run, protocol: Protocol | None = None, *, until: Until = "transfer",
         workers: int | None = None) -> Plan:
    """Advance the protocol as far as finished results allow; return the open units.

    `until="elimination"` stops once the last phase is ranked (`nlfs eliminate`). `workers`
    hands out at most that many units; the next call, seeing them finished, hands out more.
    """
    protocol = ensure_protocol(run, protocol)
    for _ in range(MAX_CAS_RETRIES):
        state, etag = read_state(run)
        changed = state is None
        if state is None:
            state = _start(run, protocol)
        elif state.protocol_hash != protocol.hash:
            raise NlfsError(f"{run.uri}: {layout.protocol_state_key()} belongs to another protocol "
                            f"({state.protocol_hash}, protocol is {protocol.hash})")
        while True:
            state, folded = rounds.fold(state, _outcomes(run, state))
            changed |= folded
            if not rounds.round_complete(state):
                break
            if state.step == "eliminate":
                state, ranking = rounds.close_phase(state, protocol)
                _put_once(run, layout.elimination_key(ranking.phase), ranking.model_dump_json(indent=1))
                log.info("elimination phase %d ranked: %d of %d survive", ranking.phase,
                         sum(r.survived for r in ranking.ranking), len(ranking.ranking))
            else:
                table = _table(run, state, protocol)
                _put_once(run, layout.transfer_table_key(), table.model_dump_json(indent=1))
                state = rounds.finish(state)
                log.info("transfer grid complete: %s", layout.transfer_table_key())
            changed = True
        if changed:
            try:
                run.store.compare_and_swap(layout.protocol_state_key(), state.to_json().encode(), etag)
            except ConflictError:
                continue  # another planner moved first: look again
        return _result(state, until, workers)
    raise NlfsError(f"{run.uri}: {layout.protocol_state_key()} kept changing under {MAX_CAS_RETRIES} attempts")


def read_state(run: Run) -> tuple[ProtocolState | None, str | None]:
    from nlfs.evolution.state import parse_model

    blob = run.store.get_or_none(layout.protocol_state_key())
    if blob is None:
        return None, None
    return parse_model(ProtocolState, blob.data, f"{run.uri}/{layout.protocol_state_key()}"), blob.etag


def _result(state: ProtocolState, until: Until, workers: int | None) -> Plan:
    if state.done or (until == "elimination" and state.step != "eliminate"):
        return Plan(state, [], True)
    open_units = [u for u in state.units if u.open]
    return Plan(state, open_units if workers is None else open_units[:workers], False)


def _outcomes(run: Run, state: ProtocolState) -> dict[tuple[str, str], rounds.Outcome]:
    """The results that exist for the open units (one read each)."""
    out = {}
    for u in state.units:
        if u.open:
            record = run.result(u.stage, u.genome)
            if record is not None:
                test = run_accuracy(record.epochs)
                out[(u.stage, u.genome)] = rounds.Outcome(record.status, record.fitness, test.test_max,
                                                          test.test_at_best_val)
    return out


def _put_once(run: Run, key: str, text: str) -> None:
    run.store.put_if_absent(key, text.encode())


# ---- the first call ---------------------------------------------------------------------------

def _start(run: Run, protocol: Protocol) -> ProtocolState:
    """Freeze the candidates (the search's best) and store the named losses as genomes."""
    from nlfs import losses

    search = run.state()
    if not search.done:
        raise NlfsError(f"{run.uri}: the search has not finished (phase {search.phase}); elimination "
                        f"and transfer start from a finished search")
    candidates = candidates_of(run, protocol.elimination.candidates)
    if not candidates:
        raise NlfsError(f"{run.uri}: the search has no loss with a main-stage fitness to eliminate")
    named = []
    for name in rounds.named_losses(protocol):
        genome = losses.get_genome(name)
        run.put_genome(genome)
        named.append(Entrant(id=genome.id, name=name))
    state = rounds.start(protocol, candidates, named)
    log.info("protocol started: %d candidates, %d phase(s), %d transfer cell(s) x %d seed(s)",
             len(candidates), len(protocol.elimination.phases), len(protocol.cells()),
             len(protocol.transfer.seeds))
    return state


def candidates_of(run: Run, n: int) -> list[Entrant]:
    """The search's n best losses by main-stage fitness (ties: lower id), best first.

    From the hall of fame in state.json when it holds n; otherwise from every main-stage result
    (a one-off listing when the protocol starts), skipping results copied from an equivalent loss.
    """
    search = run.state()
    if n <= len(search.top):
        return [Entrant(id=m.id, surrogate=m.fitness) for m in search.top[:n]]
    scored = [(r.fitness, r.genome_id) for r in run.results("main") if r.usable and not r.reused_from]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [Entrant(id=g, surrogate=f) for f, g in scored[:n]]


def _table(run: Run, state: ProtocolState, protocol: Protocol) -> TransferTable:
    from nlfs.genome import describe

    surrogate = {c.id: c.surrogate for c in state.candidates}
    names = {e.id: e.name for e in state.named}
    # A searched loss that is a baseline's very function keeps the baseline's name.
    losses = [LossRecord(id=g, name=names.get(g), text=describe(run.genome(g)), surrogate=surrogate.get(g))
              for g in rounds.transfer_losses(state, protocol)]
    return transfer_table(state, protocol, losses, cell_modes(protocol))


def cell_modes(protocol: Protocol) -> dict[str, CellMode]:
    """How each cell's profile splits its data: whether it validates on the test set, and whether
    it scores the test set every epoch beside a held-out split (what the table can report)."""
    from nlfs.train.profiles import load_profile

    modes = {}
    for cell in protocol.cells():
        dataset = load_profile(cell.profile, cell.set).dataset
        modes[cell.id] = CellMode(validates_on_test=dataset.val == "test", scores_test=dataset.evaluate_test)
    return modes


def rankings(run: Run, phases: int) -> list[PhaseRanking]:
    """The stored rankings of phases 1..phases that exist (one read each)."""
    from nlfs.evolution.state import parse_model

    out = []
    for k in range(1, phases + 1):
        blob = run.store.get_or_none(layout.elimination_key(k))
        if blob is None:
            break
        out.append(parse_model(PhaseRanking, blob.data, f"{run.uri}/{layout.elimination_key(k)}"))
    return out


def table(run: Run) -> TransferTable | None:
    from nlfs.evolution.state import parse_model

    blob = run.store.get_or_none(layout.transfer_table_key())
    if blob is None:
        return None
    return parse_model(TransferTable, blob.data, f"{run.uri}/{layout.transfer_table_key()}")
