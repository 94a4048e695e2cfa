"""The final study's two figures (METHOD.md 6 and 7): per run from its epochs, per cell through
the planner into the transfer table, on real stores with the result records written by hand."""

from __future__ import annotations

import pytest

from nlfs.notebook import RunReading as Run
from nlfs.report.text import transfer_text
from nlfs.transfer.accuracy import CellMode, held_out_figure, paper_figure, run_accuracy
from runkit import epochs_of, finish_grid, held_out_protocol, synthetic_search


def test_a_runs_figures_are_its_best_test_epoch_and_its_test_at_the_first_best_validation_epoch():
    got = run_accuracy(epochs_of([0.5, 0.7, 0.7, 0.6], [0.6, 0.65, 0.8, 0.9]))
    assert (got.test_max, got.test_at_best_val) == (0.9, 0.65)  # epoch 2 is the first of the two best
    assert run_accuracy(epochs_of([0.5, 0.7], [None, None])) == run_accuracy([])
    assert run_accuracy([]).test_max is None and run_accuracy([]).test_at_best_val is None


def test_which_figure_a_cell_reports_follows_how_it_splits_its_data():
    held = CellMode(validates_on_test=False, scores_test=True)
    authors = CellMode(validates_on_test=True, scores_test=True)
    blind = CellMode(validates_on_test=False, scores_test=False)
    assert paper_figure(held, 0.7, 0.9) == 0.9 and held_out_figure(held, 0.65) == 0.65
    assert paper_figure(authors, 0.9, 0.9) == 0.9 and held_out_figure(authors, 0.9) is None
    assert paper_figure(blind, 0.7, None) == 0.7 and held_out_figure(blind, None) is None
    assert (held.figure, authors.figure, blind.figure) == ("max_test_accuracy", "max_test_accuracy",
                                                           "max_val_accuracy")


@pytest.fixture
def run(store) -> Run:
    r = Run(store)
    synthetic_search(r, evaluations=20, top=6)
    return r


def test_the_table_holds_the_papers_figure_and_the_held_out_one_per_cell(run):
    finish_grid(run, held_out_protocol())
    table = run.transfer_table()
    (cell,) = table.cells
    assert cell.figure == "max_test_accuracy" and cell.held_out
    by_name = {(loss.name or "candidate"): loss.id for loss in table.losses}
    entry = {name: next(e for e in table.entries if e.loss == g) for name, g in by_name.items()}
    assert entry["candidate"].values == [0.95, 0.9]  # the maximum test accuracy over epochs
    assert entry["candidate"].held_out.values == [0.7, 0.75]  # the test accuracy at the best validation epoch
    assert entry["cross_entropy"].values == [0.64, 0.63] and entry["cross_entropy"].held_out.values == [0.62, 0.61]
    assert entry["candidate"].held_out.mean == pytest.approx(0.725)
    assert entry["cross_entropy"].verdict == entry["cross_entropy"].held_out.verdict == "reference"
    assert entry["baikal"].held_out.p_value is not None
    (tally,) = [t for t in table.tallies if t.loss == by_name["candidate"]]
    assert tally.held_out is not None and tally.wins + tally.ties + tally.losses == 1
    text = transfer_text(table)
    assert "max test mean ± std" in text and "at best val mean ± std" in text
    assert "0.9250 ± 0.0354" in text and "0.7250 ± 0.0354" in text  # the candidate's two figures


def test_in_the_authors_setting_the_table_has_only_the_papers_figure(run):
    finish_grid(run, held_out_protocol(**{"transfer.set": "{epochs: 1, dataset.val: test, dataset.evaluate_test: true}"}))
    table = run.transfer_table()
    (cell,) = table.cells
    assert cell.figure == "max_test_accuracy" and not cell.held_out
    assert all(e.held_out is None for e in table.entries) and all(t.held_out is None for t in table.tallies)
    # validation is the test set: a run's fitness is its maximum test accuracy
    candidate = next(loss.id for loss in table.losses if loss.name is None)
    assert next(e for e in table.entries if e.loss == candidate).values == [0.8, 0.7]
