"""Issue 6, point 1: on a run made by a real tiny search, results, eliminate, transfer, report and
export all run end to end through the CLI, on a directory store and on a real S3 server."""

from __future__ import annotations

import json

import pytest

from reportkit import Finished, nlfs_inprocess
from nlfs.notebook import open_run  # the run with its summary, elimination and transfer readings
from nlfs.store import layout


@pytest.fixture
def reading(finished: Finished, request):
    """The finished run opened for reading (S3 credentials set for the S3 one)."""
    if finished.kind == "s3":
        request.getfixturevalue("s3_env")
    return open_run(finished.uri)


def test_every_command_exits_zero(finished: Finished):
    bad = {verb: finished.err[verb][-800:] for verb, code in finished.codes.items() if code != 0}
    assert not bad


def test_results_before_the_protocol_show_the_search(finished: Finished, reading):
    summary = json.loads(finished.out["results-before"])
    state = reading.state()
    assert summary["format"] == "nlfs.results/v1" and summary["run"] == reading.uri
    assert summary["progress"]["done"] and summary["progress"]["evaluations"] == state.counters.evaluations
    assert summary["progress"]["protocol"] is None
    c = state.counters
    assert (summary["progress"]["gate_failures"], summary["progress"]["remutations"]) == (c.gate_failures, c.remutations)
    assert [r["id"] for r in summary["top"]] == [m.id for m in state.top[:10]]
    assert all(r["stage"] == "main" and r["runs"] == 1 for r in summary["top"])
    assert summary["baseline"] is not None  # the search evaluated cross-entropy on its profile


def test_eliminate_ranks_two_phases_and_stores_them(finished: Finished, reading):
    assert "elimination phase 1" in finished.out["eliminate"] and "elimination phase 2" in finished.out["eliminate"]
    phase1, phase2 = reading.elimination()
    assert len(phase1.ranking) == 3 and sum(r.survived for r in phase1.ranking) <= 2
    finalists = [loss.id for loss in reading.transfer_table().losses if loss.name is None]
    assert [r.id for r in phase2.ranking if r.survived] == finalists
    assert phase1.references[0].name == "cross_entropy" and phase1.references[0].status is not None
    for k in (1, 2):
        assert reading.store.exists(layout.elimination_key(k))


def test_transfer_aggregates_baselines_and_finalists(finished: Finished, reading):
    table = reading.transfer_table()
    assert table is not None and "Welch" in table.test
    names = [loss.name for loss in table.losses]
    assert names[-2:] == ["cross_entropy", "baikal"]
    assert all(e.n + e.failures == 2 for e in table.entries)  # two seeds each
    assert len(table.tallies) == len(table.losses) - 1
    text = finished.out["transfer"]
    assert "wins/ties/losses" in text and "mean ± std" in text and "surrogate fidelity" in text


def test_transfer_again_is_a_no_op(finished: Finished, reading):
    before = reading.store.list(layout.results_prefix())
    etag = reading.store.get(layout.protocol_state_key()).etag
    code, out, err = nlfs_inprocess("transfer", finished.uri, "--quiet")
    assert code == 0, err
    assert reading.store.list(layout.results_prefix()) == before
    assert reading.store.get(layout.protocol_state_key()).etag == etag


def test_results_after_the_protocol_show_how_far_each_loss_went(finished: Finished, reading):
    text = finished.out["results"]
    assert "protocol: done" in text and "failures by status" in text
    saved = reading.state().counters.gate_failures
    assert f"gate: {saved} failed, saving {saved} main-stage trainings" in text
    summary = json.loads(finished.out["results-json"])
    stages = {r["id"]: r["stage"] for r in summary["top"]}
    for r in reading.elimination()[0].ranking:
        if r.id in stages:
            assert stages[r.id] in ("elim-1", "elim-2", "transfer")
    for loss in reading.transfer_table().losses:
        if loss.id in stages:
            assert stages[loss.id] == "transfer"
            row = next(r for r in summary["top"] if r["id"] == loss.id)
            assert row["runs"] == 1 + 2 + 2 and sum(row["statuses"].values()) == 5  # main, 2 phases, 2 seeds
    csv_lines = finished.out["results-csv"].strip().splitlines()
    assert csv_lines[0].startswith("rank,id,fitness") and len(csv_lines) == 4


def test_report_is_written_into_the_run(finished: Finished, reading):
    keys = reading.store.list(layout.report_prefix())
    names = {k.split("/", 1)[1] for k in keys}
    assert {"index.html", "fitness.png", "population.png", "probe.png", "operators.png", "transfer.png",
            "fidelity.png"} <= names
    page = reading.store.get(layout.report_key("index.html")).data.decode()
    assert page.count("data:image/png;base64,") == len(names) - 1
    assert "<h2>Transfer</h2>" in page and "<h2>Elimination</h2>" in page
    assert (finished.local / "index.html").read_text() == page


def test_export_from_the_run(finished: Finished):
    assert "class Genome" in finished.out["export-python"] and "import nlfs" not in finished.out["export-python"]
    assert finished.out["export-latex"].startswith(r"\mathcal{L}")
