"""`nlfs results` and the report show the final study's two figures (METHOD.md 6 and 7): the
maximum test accuracy over epochs (the paper's) beside the test accuracy at the epoch of best
held-out validation accuracy, on a run whose grid was finished with hand-written records."""

from __future__ import annotations

import json

import pytest

from nlfs.report.html import build
from nlfs.report.results import summarize, to_json, to_text
from nlfs.runs import open_run
from reportkit import nlfs_inprocess
from runkit import finish_grid, held_out_protocol, synthetic_search


@pytest.fixture(scope="module")
def run_uri(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("final") / "run")
    run = open_run(uri)
    synthetic_search(run, evaluations=20, top=6)
    finish_grid(run, held_out_protocol())
    return uri


def test_results_list_both_figures_of_every_loss_in_every_cell(run_uri):
    summary = summarize(open_run(run_uri))
    figures = {f.loss: f for f in summary.transfer}
    assert set(figures) >= {"cross_entropy", "baikal"} and len(figures) == 3
    candidate = next(f for name, f in figures.items() if name not in ("cross_entropy", "baikal"))
    assert candidate.figure == "max_test_accuracy" and candidate.n == 2
    assert candidate.mean == pytest.approx(0.925) and candidate.held_out == pytest.approx(0.725)
    assert figures["cross_entropy"].mean == pytest.approx(0.635) and figures["cross_entropy"].held_out == pytest.approx(0.615)
    text = to_text(summary)
    assert "max test" in text and "at best val" in text
    assert "0.9250" in text and "0.7250" in text
    assert json.loads(to_json(summary))["transfer"][0]["held_out"] is not None


def test_the_cli_prints_them(run_uri):
    code, out, err = nlfs_inprocess("results", run_uri)
    assert code == 0, err
    assert "at best val" in out and "0.7250" in out


def test_the_report_shows_both_figures_in_its_table_and_figure(run_uri):
    page, figs = build(open_run(run_uri))
    assert "max test accuracy" in page and "test acc. at best held-out val. epoch" in page
    assert "0.9250 &plusmn; 0.0354" in page and "0.7250 &plusmn; 0.0354" in page
    assert "by the held-out figure" in page
    transfer = next(f for f in figs if f.name == "transfer.png")
    assert "Diamonds" in transfer.caption and "held-out" in transfer.caption
