"""Ranking an elimination phase and measuring surrogate fidelity: pure functions.

A phase ranks its entrants by fitness; a loss without a usable result (rejected, failed) ranks
after every usable one and never survives. Ties in fitness keep the earlier order (the previous
phase's ranking, or the search's for phase 1), so a ranking is deterministic.
"""

from __future__ import annotations

from nlfs import stats
from nlfs.result import USABLE_STATUSES
from nlfs.transfer.protocol import FidelitySpec
from nlfs.transfer.records import CorrelationRecord, Fidelity, Ranked


def rank_phase(entrants: list[str], outcomes: dict[str, tuple[str | None, float | None]],
               surrogate: dict[str, float | None], survivors: int) -> list[Ranked]:
    """Entrants (best first by the previous ranking) ranked by this phase's fitness.

    `outcomes` maps id -> (status, fitness). The first `survivors` usable ones survive.
    """
    def usable(g: str) -> bool:
        status, fitness = outcomes[g]
        return status in USABLE_STATUSES and fitness is not None

    order = sorted(range(len(entrants)), key=lambda i: (
        not usable(entrants[i]), -(outcomes[entrants[i]][1] or 0.0) if usable(entrants[i]) else 0.0, i))
    out = []
    kept = 0
    for rank, i in enumerate(order, 1):
        g = entrants[i]
        survived = usable(g) and kept < survivors
        kept += survived
        status, fitness = outcomes[g]
        out.append(Ranked(rank=rank, id=g, status=status, fitness=fitness, surrogate=surrogate.get(g),
                          survived=survived))
    return out


def fidelity(pairs: list[tuple[float, float]], against: str, stage: str, spec: FidelitySpec) -> Fidelity:
    """Spearman and Kendall between surrogate fitness (first) and large-model accuracy (second)."""
    xs = [p[0] for p in pairs]
    ys = [p[1] for p in pairs]
    corr = stats.rank_correlations(xs, ys, confidence=spec.confidence, resamples=spec.resamples, seed=spec.seed)
    method = (f"{spec.confidence:.0%} percentile bootstrap over {spec.resamples} resamples of the pairs "
              f"(numpy default_rng seed {spec.seed})")
    return Fidelity(against=against, stage=stage, n=len(pairs), method=method,
                    spearman=CorrelationRecord(**_corr(corr["spearman"])),
                    kendall=CorrelationRecord(**_corr(corr["kendall"])))


def _corr(c: stats.Correlation) -> dict:
    return {"value": c.value, "low": c.low, "high": c.high}
