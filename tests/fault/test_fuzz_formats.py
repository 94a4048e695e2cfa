"""Property-based fuzz of every file format's parser (issue 12, the fault-and-fuzz suite).

For each format: arbitrary bytes, arbitrary JSON/YAML values, and valid documents with parts
replaced by arbitrary values or removed. Whatever comes in, the parser returns a parsed object
or raises NlfsError (a one-line message): never another exception, never a hang (a deadline
per example).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlfs.errors import NlfsError
from nlfs.evolution.config import parse_config
from nlfs.evolution.state import Batch, Member, Slot, State, parse_model
from nlfs.genome import Genome
from nlfs.losses import get_genome
from nlfs.result import EpochMetrics, ResultRecord
from nlfs.train.profiles import load_profile
from nlfs.transfer.protocol import Protocol, parse_protocol
from nlfs.transfer.records import (
    CellRecord,
    Entrant,
    Entry,
    LossRecord,
    PhaseRanking,
    ProtocolState,
    Ranked,
    Tally,
    TransferTable,
    Unit,
)
from searchkit import fast_config

FUZZ = settings(max_examples=120, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- valid documents of each format, to mutate ---------------------------------------------------

GENOME = get_genome("focal").to_dict()
RESULT = json.loads(ResultRecord(genome_id="0123456789abcdef", profile="tiny", profile_hash="0" * 16,
                                 status="ok", fitness=0.9, seconds=1.0,
                                 epochs=[EpochMetrics(epoch=1, train_loss=0.3, val_accuracy=0.9)]).to_json())
PROFILE = load_profile("tiny").model_dump(mode="json")
PROFILE_WITH_BASE = {"base": "tiny", "epochs": 2, "optimizer": {"lr": 0.01}}
CONFIG = fast_config().model_dump(mode="json")
_SLOT = Slot(id="a1", genome=GENOME, child=3, parent="b2", parent_genome=GENOME)
BATCH = Batch(index=2, phase="evolve", stage="main", slots=[_SLOT]).model_dump(mode="json")
STATE = State(config_hash="0" * 16, phase="evolve", next_batch=3, pending=Batch.model_validate(BATCH),
              population=[Member(id="b2", birth=0, fitness=0.5, genome=GENOME)],
              top=[Member(id="b2", birth=0, fitness=0.5, genome=GENOME)]).model_dump(mode="json")
PROTOCOL = Protocol().model_dump(mode="json")
PROTOCOL_STATE = ProtocolState(protocol_hash="0" * 16, phase=1, candidates=[Entrant(id="a1", surrogate=0.5)],
                               entrants=["a1"], units=[Unit(stage="e1", genome="a1", profile="tiny")]
                               ).model_dump(mode="json")
RANKING = PhaseRanking(phase=1, stage="e1", profile="tiny", survivors=1,
                       ranking=[Ranked(rank=1, id="a1", status="ok", fitness=0.5, surrogate=0.4, survived=True)]
                       ).model_dump(mode="json")
TABLE = TransferTable(test="Welch", alpha=0.05, reference="a1", seeds=[0],
                      cells=[CellRecord(id="c1", name="c", labels={}, profile="tiny", set={}, stages=["t0"])],
                      losses=[LossRecord(id="a1", name=None, text="t")],
                      entries=[Entry(cell="c1", loss="a1", values=[0.5], failures=0, mean=0.5, std=0.0, n=1,
                                     p_value=None, verdict="reference")],
                      tallies=[Tally(loss="a1", wins=0, ties=0, losses=0)]).model_dump(mode="json")


# ---- strategies -----------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=24))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=16)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every value inside `doc`."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            stack.append(value)
    return out


@st.composite
def mutated(draw, doc: Any) -> Any:
    """`doc` with one to three values replaced by arbitrary ones, or removed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(VALUES)
    return doc


def json_inputs(doc: Any) -> st.SearchStrategy[bytes]:
    as_json = lambda value: json.dumps(value).encode()  # noqa: E731 - NaN and Infinity written bare
    return st.one_of(st.binary(max_size=600), VALUES.map(as_json), mutated(doc).map(as_json))


def yaml_inputs(*docs: Any) -> st.SearchStrategy[bytes]:
    documents = st.one_of(*(mutated(doc) for doc in docs))
    return st.one_of(
        st.binary(max_size=600),
        st.text(alphabet=":-[]{}&*!|>'\"#%@`,? \n\t.0123456789abcdeflnrstuy~<", max_size=200).map(str.encode),
        VALUES.map(lambda v: yaml.safe_dump(v).encode()),
        documents.map(lambda d: yaml.safe_dump(d).encode()),
        documents.map(lambda d: json.dumps(d).encode()),
    )


def parses_or_refuses(parse: Callable[[bytes], Any], data: bytes) -> None:
    try:
        parse(data)
    except NlfsError as err:
        assert "\n" not in str(err)


# ---- the parsers ------------------------------------------------------------------------------------

def _genome(data: bytes) -> None:
    genome = Genome.from_json(data, source="fuzz.json").validate(source="fuzz.json")
    assert len(genome.id) == 16


@FUZZ
@given(json_inputs(GENOME))
def test_genome_parser(data: bytes):
    parses_or_refuses(_genome, data)


@FUZZ
@given(json_inputs(RESULT))
def test_result_record_parser(data: bytes):
    parses_or_refuses(lambda d: ResultRecord.from_json(d, source="fuzz"), data)


@FUZZ
@given(data=yaml_inputs(PROFILE, PROFILE_WITH_BASE))
def test_profile_parser(tmp_path: Path, data: bytes):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    parses_or_refuses(lambda _: load_profile(str(path), {"epochs": "1"}), data)


@FUZZ
@given(yaml_inputs(CONFIG))
def test_search_config_parser(data: bytes):
    parses_or_refuses(lambda d: parse_config(d, source="fuzz.yaml"), data)


@FUZZ
@given(yaml_inputs(PROTOCOL))
def test_protocol_parser(data: bytes):
    parses_or_refuses(lambda d: parse_protocol(d, {"transfer.seeds": "[0, 1]"}, source="fuzz.yaml"), data)


@pytest.mark.parametrize("model, doc", [(State, STATE), (Batch, BATCH), (ProtocolState, PROTOCOL_STATE),
                                        (PhaseRanking, RANKING), (TransferTable, TABLE)],
                         ids=["state", "batch", "protocol-state", "elimination-phase", "transfer-table"])
def test_stored_record_parsers(model, doc):
    @FUZZ
    @given(json_inputs(doc))
    def fuzz(data: bytes):
        parses_or_refuses(lambda d: parse_model(model, d, "fuzz.json"), data)

    fuzz()


def test_the_valid_documents_parse():
    """The fuzz starts from documents every parser accepts (so mutations test the checks)."""
    _genome(json.dumps(GENOME).encode())
    ResultRecord.from_json(json.dumps(RESULT))
    parse_config(json.dumps(CONFIG))
    parse_protocol(json.dumps(PROTOCOL))
    for model, doc in ((State, STATE), (Batch, BATCH), (ProtocolState, PROTOCOL_STATE),
                       (PhaseRanking, RANKING), (TransferTable, TABLE)):
        parse_model(model, json.dumps(doc), "doc")
