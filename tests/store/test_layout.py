"""The run-layout key functions: exact keys (they are a documented contract) and validation.

Pure tests, no store needed.
"""

from __future__ import annotations

import pytest

from nlfs.errors import NlfsError
from nlfs.store import layout, validate_key

GID = "0123456789abcdef"


def test_fixed_keys() -> None:
    assert layout.config_key() == "config.yaml"
    assert layout.state_key() == "state.json"
    assert layout.genomes_prefix() == "genomes/"
    assert layout.batches_prefix() == "batches/"
    assert layout.results_prefix() == "results/"
    assert layout.report_prefix() == "reports/"


def test_genome_key_round_trip() -> None:
    key = layout.genome_key(GID)
    assert key == f"genomes/{GID}.json"
    assert key.startswith(layout.genomes_prefix())
    assert layout.genome_id_from_key(key) == GID


def test_batch_keys_sort_numerically() -> None:
    numbers = [0, 1, 2, 9, 10, 11, 99, 100, 12345]
    keys = [layout.batch_key(n) for n in numbers]
    assert layout.batch_key(7) == "batches/00000007.json"
    assert sorted(keys) == keys  # what list() returns is numeric order
    assert [layout.batch_number(k) for k in keys] == numbers


def test_result_keys() -> None:
    key = layout.result_key("prefilter", GID)
    assert key == f"results/prefilter/{GID}.json"
    assert layout.results_prefix("prefilter") == "results/prefilter/"
    assert key.startswith(layout.results_prefix("prefilter"))
    assert layout.result_id_from_key(key) == ("prefilter", GID)
    assert layout.result_key("final-cifar10_r1", GID).startswith("results/final-cifar10_r1/")


def test_report_key() -> None:
    assert layout.report_key("index.html") == "reports/index.html"
    assert layout.report_key("plots/fitness.png") == "reports/plots/fitness.png"
    for bad in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(NlfsError):
            layout.report_key(bad)


def test_fec_and_baseline_keys() -> None:
    assert layout.fec_key(GID) == f"fec/{GID}.json"
    assert layout.baseline_key("main", "cross_entropy") == "baselines/main/cross-entropy.json"
    for bad in ("../x", "Focal", ""):
        with pytest.raises(NlfsError):
            layout.baseline_key("main", bad)
    with pytest.raises(NlfsError):
        layout.fec_key("not-hex")


def test_every_key_is_a_valid_store_key() -> None:
    for key in (layout.config_key(), layout.state_key(), layout.genome_key(GID), layout.batch_key(3),
                layout.result_key("s", GID), layout.fec_key(GID), layout.baseline_key("s", "focal")):
        assert validate_key(key) == key


@pytest.mark.parametrize("bad", ["", "ABCDEF0123456789", "0123", "xyz0123456789abc", "../0123456789", "0" * 65, 12])
def test_bad_genome_ids(bad) -> None:
    with pytest.raises(NlfsError):
        layout.genome_key(bad)
    with pytest.raises(NlfsError):
        layout.result_key("prefilter", bad)


@pytest.mark.parametrize("bad", ["", "Final", "a/b", "..", "-x", "x-", "a b", "a.b", "x" * 65, 3])
def test_bad_stages(bad) -> None:
    with pytest.raises(NlfsError):
        layout.results_prefix(bad)
    with pytest.raises(NlfsError):
        layout.result_key(bad, GID)


def test_result_key_requires_a_stage() -> None:
    with pytest.raises(NlfsError):
        layout.result_key(None, GID)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 10**8, 1.0, "3", True, None])
def test_bad_batch_numbers(bad) -> None:
    with pytest.raises(NlfsError):
        layout.batch_key(bad)


@pytest.mark.parametrize("key", ["genomes/x.json", "genomes/0123456789abcdef.yaml", "batches/7.json",
                                 "results/a/b/c.json", "state.json"])
def test_inverse_parsers_reject_foreign_keys(key: str) -> None:
    parsers = [layout.genome_id_from_key, layout.batch_number, layout.result_id_from_key]
    for parse in parsers:
        with pytest.raises(NlfsError):
            parse(key)
