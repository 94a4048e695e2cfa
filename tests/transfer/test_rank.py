"""Ranking an elimination phase (pure): fitness first, failures last, ties keep the earlier order."""

from __future__ import annotations

from nlfs.transfer.rank import rank_phase


def test_ties_keep_the_previous_order_and_failures_never_survive():
    entrants = ["a", "b", "c", "d", "e"]
    outcomes = {"a": ("ok", 0.5), "b": ("rejected", 0.9), "c": ("ok", 0.7), "d": ("diverged", 0.5),
                "e": ("failed", None)}
    ranking = rank_phase(entrants, outcomes, {"a": 0.8}, survivors=4)
    assert [r.id for r in ranking] == ["c", "a", "d", "b", "e"]
    assert [r.survived for r in ranking] == [True, True, True, False, False]  # only 3 usable
    assert [r.rank for r in ranking] == [1, 2, 3, 4, 5]
    assert ranking[1].surrogate == 0.8 and ranking[0].surrogate is None


def test_survivors_are_the_first_usable_ones():
    outcomes = {g: ("ok", f) for g, f in zip("abcd", (0.1, 0.4, 0.3, 0.2))}
    assert [r.id for r in rank_phase(list("abcd"), outcomes, {}, 2) if r.survived] == ["b", "c"]
