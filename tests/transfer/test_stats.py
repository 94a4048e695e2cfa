"""The transfer table's statistics, checked against scipy on fixed inputs (issue 6, point 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nlfs import stats
from nlfs.transfer.aggregate import transfer_table
from nlfs.transfer.records import Entrant, LossRecord, ProtocolState
from nlfs.transfer.rounds import _open_transfer
from runkit import tiny_protocol

CE = [0.941, 0.944, 0.939, 0.946, 0.942, 0.940]
BETTER = [0.952, 0.957, 0.955, 0.950, 0.958, 0.954]
SAME = [0.943, 0.938, 0.945, 0.941, 0.944, 0.939]
WORSE = [0.921, 0.925, 0.919, 0.924, 0.920, 0.926]


def test_summary_is_mean_and_sample_std():
    s = stats.summarize(BETTER)
    assert s.n == 6
    assert s.mean == pytest.approx(np.mean(BETTER), abs=1e-15)
    assert s.std == pytest.approx(np.std(BETTER, ddof=1), abs=1e-15)
    assert stats.summarize([0.5]) == stats.Summary(0.5, 0.0, 1)
    assert stats.summarize([]) == stats.Summary(None, None, 0)


@pytest.mark.parametrize("other", [BETTER, SAME, WORSE])
def test_welch_p_value_is_scipys(other):
    expected = sps.ttest_ind(other, CE, equal_var=False).pvalue
    assert stats.p_value(other, CE, "welch") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("other", [BETTER, SAME, WORSE])
def test_mann_whitney_p_value_is_scipys(other):
    expected = sps.mannwhitneyu(other, CE, alternative="two-sided").pvalue
    assert stats.p_value(other, CE, "mannwhitney") == pytest.approx(expected, rel=1e-12)


def test_undefined_tests_give_none_not_nan():
    assert stats.p_value([0.9], CE, "welch") is None  # one run: no variance estimate
    assert stats.p_value([0.9, 0.9], [0.8, 0.8], "welch") is None  # scipy says NaN
    assert stats.p_value([], CE, "mannwhitney") is None


def test_verdicts_need_significance():
    assert stats.verdict(0.95, 0.94, 0.01, 0.05) == "win"
    assert stats.verdict(0.93, 0.94, 0.01, 0.05) == "loss"
    assert stats.verdict(0.95, 0.94, 0.2, 0.05) == "tie"
    assert stats.verdict(0.95, 0.94, None, 0.05) == "tie"


def test_rank_correlations_are_scipys_with_a_reproducible_interval():
    x = [0.71, 0.69, 0.74, 0.66, 0.70, 0.73, 0.65, 0.72]
    y = [0.951, 0.948, 0.957, 0.941, 0.955, 0.953, 0.944, 0.950]
    got = stats.rank_correlations(x, y, resamples=500, seed=3)
    assert got["spearman"].value == pytest.approx(sps.spearmanr(x, y).statistic, rel=1e-12)
    assert got["kendall"].value == pytest.approx(sps.kendalltau(x, y).statistic, rel=1e-12)
    for c in got.values():
        assert c.n == 8 and -1 <= c.low <= c.value <= c.high <= 1
    assert stats.rank_correlations(x, y, resamples=500, seed=3) == got  # fixed seed, same interval
    tiny = stats.rank_correlations([1, 2], [2, 1])
    assert tiny["spearman"].value is None and tiny["spearman"].low is None


def _state_with(values: dict[str, list[float]]):
    """A finished one-cell, six-seed grid whose units carry `values` (loss name -> accuracies)."""
    protocol = tiny_protocol(**{"transfer.seeds": "[0, 1, 2, 3, 4, 5]"})
    ids = {name: f"{i + 1:016x}" for i, name in enumerate(values)}
    named = [Entrant(id=ids["cross_entropy"], name="cross_entropy"), Entrant(id=ids["baikal"], name="baikal")]
    state = ProtocolState(protocol_hash=protocol.hash, named=named,
                          candidates=[Entrant(id=ids["found"], surrogate=0.7)], finalists=[ids["found"]])
    state = _open_transfer(state, protocol)
    by_id = {v: k for k, v in ids.items()}
    units = []
    for u in state.units:
        seed = int(u.set["seed"])
        units.append(u.model_copy(update={"status": "ok", "fitness": values[by_id[u.genome]][seed]}))
    losses = [LossRecord(id=ids[n], name=None if n == "found" else n, text=n, surrogate=0.7 if n == "found" else None)
              for n in ("found", "cross_entropy", "baikal")]
    return transfer_table(state.model_copy(update={"units": units}), protocol, losses), ids


def test_transfer_table_numbers_match_scipy_on_a_fixed_grid():
    table, ids = _state_with({"found": BETTER, "cross_entropy": CE, "baikal": WORSE})
    entries = {e.loss: e for e in table.entries}
    found, ce, baikal = entries[ids["found"]], entries[ids["cross_entropy"]], entries[ids["baikal"]]
    assert found.values == BETTER and found.n == 6 and found.failures == 0
    assert found.mean == pytest.approx(np.mean(BETTER)) and found.std == pytest.approx(np.std(BETTER, ddof=1))
    assert found.p_value == pytest.approx(sps.ttest_ind(BETTER, CE, equal_var=False).pvalue, rel=1e-12)
    assert baikal.p_value == pytest.approx(sps.ttest_ind(WORSE, CE, equal_var=False).pvalue, rel=1e-12)
    assert (found.verdict, baikal.verdict, ce.verdict) == ("win", "loss", "reference")
    assert ce.p_value is None
    tallies = {t.loss: (t.wins, t.ties, t.losses) for t in table.tallies}
    assert tallies == {ids["found"]: (1, 0, 0), ids["baikal"]: (0, 0, 1)}
    assert "Welch" in table.test and table.alpha == 0.05
    assert math.isclose(sum(found.values) / 6, found.mean)


def test_a_close_loss_ties():
    table, ids = _state_with({"found": SAME, "cross_entropy": CE, "baikal": CE})
    assert {e.loss: e.verdict for e in table.entries}[ids["found"]] == "tie"
