"""A run as a notebook (or `nlfs.open_run`) reads it: `nlfs.runs.Run` plus the readings of
nlfs.report (`summary`) and nlfs.transfer (`elimination`, `transfer_table`).

A facade above those packages, which read runs through nlfs.runs themselves: runs.py stays below
them and never imports them (tests/test_imports.py keeps it so).
"""

from __future__ import annotations

from nlfs.report.results import RunSummary, summarize
from nlfs.runs import Run
from nlfs.store import open_store
from nlfs.transfer.plan import rankings, read_protocol, table
from nlfs.transfer.records import PhaseRanking, TransferTable


class RunReading(Run):
    """A run with the reading helpers of docs/results.md."""

    def summary(self, top: int = 10) -> RunSummary:
        """The top losses and progress, as `nlfs results` shows them.

        Reads a constant number of small files (state.json, never a listing of results/).
        """
        return summarize(self, top)

    def elimination(self) -> list[PhaseRanking]:
        """The stored rankings of the elimination phases run so far (phase 1 first)."""
        protocol = read_protocol(self)
        return rankings(self, len(protocol.elimination.phases)) if protocol else []

    def transfer_table(self) -> TransferTable | None:
        """The aggregated transfer table, or None before the grid is complete."""
        return table(self)


def open_run(uri: str) -> RunReading:
    """The run at `uri` (a directory path, `file://path` or `s3://bucket/prefix`), for reading."""
    return RunReading(open_store(uri))
