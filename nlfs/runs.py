"""Typed access to one run in a store: config, state, genomes, batches and results.

Thin I/O around the file formats; every key comes from `nlfs.store.layout`. Below nlfs.report and
nlfs.transfer, which read runs through it: their readings of a run (summary, elimination, transfer
table) are on `nlfs.notebook.RunReading`, which `nlfs.open_run` returns.
"""

from __future__ import annotations

from functools import cached_property

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig, parse_config
from nlfs.evolution.state import Batch, State, parse_model
from nlfs.genome.graph import Genome
from nlfs.result import ResultRecord
from nlfs.store import NotFoundError, ObjectStore, layout, open_store


class Run:
    """A search run: the store at its URI, read through the run layout."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @property
    def uri(self) -> str:
        return self.store.uri

    # ---- config -----------------------------------------------------------------------
    @cached_property
    def config(self) -> SearchConfig:
        try:
            blob = self.store.get(layout.config_key())
        except NotFoundError:
            raise NlfsError(f"{self.uri}: no search here (no {layout.config_key()}); "
                            f"start one with `nlfs init` or `nlfs search`") from None
        return parse_config(blob.data, source=f"{self.uri}/{layout.config_key()}")

    # ---- state ------------------------------------------------------------------------
    def read_state(self) -> tuple[State | None, str | None]:
        """The state and its etag, or (None, None) before the first controller step."""
        blob = self.store.get_or_none(layout.state_key())
        if blob is None:
            return None, None
        return parse_model(State, blob.data, f"{self.uri}/{layout.state_key()}"), blob.etag

    def state(self) -> State:
        state, _ = self.read_state()
        if state is None:
            raise NlfsError(f"{self.uri}: the search has no state yet; run `nlfs controller step`")
        return state

    # ---- genomes ----------------------------------------------------------------------
    def genome(self, genome_id: str) -> Genome:
        key = layout.genome_key(genome_id)
        try:
            blob = self.store.get(key)
        except NotFoundError:
            raise NlfsError(f"{self.uri}: no genome {genome_id}") from None
        genome = Genome.from_json(blob.data, source=f"{self.uri}/{key}")
        if genome.id != genome_id:
            raise NlfsError(f"{self.uri}/{key} is corrupt: its content has id {genome.id}")
        return genome

    def put_genome(self, genome: Genome) -> None:
        self.store.put_if_absent(layout.genome_key(genome.id), genome.to_json(indent=1).encode())

    def put_batch(self, batch: Batch) -> None:
        self.store.put_if_absent(layout.batch_key(batch.index), batch.model_dump_json(indent=1).encode())

    # ---- results ----------------------------------------------------------------------
    def result(self, stage: str, genome_id: str) -> ResultRecord | None:
        return self._record(layout.result_key(stage, genome_id))

    def baseline(self, stage: str, name: str = "cross_entropy") -> ResultRecord | None:
        """A reference loss evaluated on a stage's profile (baselines/), if it has been."""
        return self._record(layout.baseline_key(stage, name))

    def _record(self, key: str) -> ResultRecord | None:
        blob = self.store.get_or_none(key)
        return None if blob is None else ResultRecord.from_json(blob.data, source=f"{self.uri}/{key}")

    def put_result(self, record: ResultRecord) -> bool:
        """Create-only: True if this call wrote it, False if a result was already there."""
        key = layout.result_key(record.stage, record.genome_id)
        return self.store.put_if_absent(key, record.to_json().encode())

    def results(self, stage: str | None = None) -> list[ResultRecord]:
        """Every result record of a stage (or all stages), in key order."""
        out = []
        for key in self.store.list(layout.results_prefix(stage)):
            blob = self.store.get(key)
            out.append(ResultRecord.from_json(blob.data, source=f"{self.uri}/{key}"))
        return out


def open_run(uri: str) -> Run:
    """The run at `uri`: a directory path, `file://path` or `s3://bucket/prefix`."""
    return Run(open_store(uri))
