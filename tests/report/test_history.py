"""The report's reading of history: fold order from the batch files, and the population replay."""

from __future__ import annotations

from nlfs.report.history import events, population_over_time, read_batches, read_results
from nlfs.report.html import write_report
from nlfs.runs import open_run
from nlfs.store import layout
from runkit import synthetic_search


def test_population_replay_ends_at_the_searchs_own_population(tiny_search):
    run = open_run(str(tiny_search))
    state = run.state()
    batches = read_batches(run)
    evs = events(batches, read_results(run))
    assert len(evs) == sum(len(b.slots) for b in batches) == state.counters.evaluations
    assert all(e.status is not None for e in evs)  # a finished search has every result
    points = population_over_time(evs, run.config.population)
    assert sorted(points[-1].fitness) == sorted(m.fitness for m in state.population)
    assert points[-1].children == state.counters.children_done


def test_a_report_of_a_run_without_batches_or_protocol(tmp_path):
    run = open_run(str(tmp_path / "run"))
    synthetic_search(run, evaluations=30, top=5)
    keys = write_report(run)
    assert keys[0] == layout.report_key("index.html") and len(keys) == 5  # page + 4 search figures
    page = run.store.get(keys[0]).data.decode()
    assert "<h2>Transfer</h2>" not in page and page.count("<figure") == 4
