"""Records read from a run's store are held to the rules they were written under: a result with
`"fitness": NaN` (or Infinity, or an accuracy of 1.7) is a named error at the reader, never a
number handed to the controller, which folded it into state.json as null and bricked the run
(issue 12, point 1). Likewise NaN in any other stored JSON.
"""

from __future__ import annotations

import json

import pytest

from nlfs.errors import NlfsError
from nlfs.result import ResultRecord
from nlfs.runs import open_run
from nlfs.store import layout

GENOME_ID = "0123456789abcdef"


def _result_text(fitness: str) -> str:
    record = ResultRecord(genome_id=GENOME_ID, profile="tiny", profile_hash="0" * 16, status="ok", fitness=0.5)
    return record.to_json().replace('"fitness": 0.5', f'"fitness": {fitness}')


@pytest.mark.parametrize("fitness", ["NaN", "Infinity", "-Infinity", "1.7", "-0.2"])
def test_a_stored_result_with_an_impossible_fitness_is_a_named_error_at_the_reader(store, fitness):
    key = layout.result_key("main", GENOME_ID)
    text = _result_text(fitness)
    assert f'"fitness": {fitness}' in text
    store.put(key, text.encode())
    run = open_run(store.uri)
    for read in (lambda: run.result("main", GENOME_ID), lambda: run.results("main"), lambda: run.results()):
        with pytest.raises(NlfsError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{store.uri}/{key}: invalid result record") and "\n" not in message


def test_a_state_holding_nan_is_refused_as_corrupt_not_read(store):
    state = {"format": "nlfs.state/v1", "config_hash": "0" * 16, "phase": "evolve",
             "population": [{"id": GENOME_ID, "birth": 0, "fitness": float("nan"), "genome": {}}]}
    store.put(layout.state_key(), json.dumps(state).encode())  # json.dumps writes the NaN literal
    with pytest.raises(NlfsError, match="state.json is corrupt: NaN and Infinity are not JSON numbers"):
        open_run(store.uri).read_state()


def test_a_genome_holding_nan_is_refused(store):
    doc = {"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}],
           "output": 1, "sign": -1, "label_smoothing": float("nan")}
    store.put(layout.genome_key(GENOME_ID), json.dumps(doc).encode())
    with pytest.raises(NlfsError, match="not JSON: NaN is not a JSON number"):
        open_run(store.uri).genome(GENOME_ID)
