"""The protocol file: METHOD.md defaults, the grid and its stage slugs, overrides, bad input."""

from __future__ import annotations

import pytest

from nlfs.errors import NlfsError
from nlfs.store import layout
from nlfs.train.profiles import load_profile
from nlfs.transfer.protocol import Protocol, load_protocol, parse_protocol
from runkit import tiny_protocol


def test_defaults_follow_method_sections_5_and_6():
    p = Protocol()
    assert [ph.survivors for ph in p.elimination.phases] == [25, 12, 6, 4]
    assert [ph.profile for ph in p.elimination.phases] == [f"eliminate-{k}" for k in (1, 2, 3, 4)]
    assert 150 <= p.elimination.candidates <= 300
    for ph in p.elimination.phases:
        load_profile(ph.profile)  # every default profile exists
    assert p.transfer.seeds == [0, 1, 2, 3, 4, 5]
    assert p.transfer.baselines == ["cross_entropy", "baikal"] and p.transfer.reference == "cross_entropy"
    cells = p.cells()
    assert len(cells) == 8  # {base, progressive} x {scratch, pretrained} x {CIFAR-10, CIFAR-100}
    for cell in cells:
        load_profile(cell.profile, cell.set)  # every cell is a valid profile


def test_cell_stages_are_distinct_valid_slugs():
    p = Protocol()
    stages = [c.stage(s) for c in p.cells() for s in p.transfer.seeds]
    assert len(set(stages)) == len(stages) == 48
    for st in stages:
        assert layout.validate_stage(st) == st and len(st) <= 64
    assert len({c.name for c in p.cells()}) == 8
    assert "setting=base-pretrained,dataset=cifar100" in {c.name for c in p.cells()}


def test_overrides_reach_nested_fields_and_change_the_hash():
    p = tiny_protocol(**{"elimination.phases.0.survivors": "1", "transfer.seeds": "[3]",
                         "transfer.axes.model.wide": "{set: {epochs: 2}}"})
    assert p.elimination.phases[0].survivors == 1 and p.transfer.seeds == [3]
    assert [c.name for c in p.cells()] == ["model=tiny_cnn", "model=wide"]
    assert p.cells()[1].set == {"epochs": "2"}
    assert p.hash != tiny_protocol().hash
    assert tiny_protocol().hash == tiny_protocol().hash


@pytest.mark.parametrize("text,overrides,match", [
    ("elimination: {phases: [{profile: tiny, survivors: 0}]}", None, "survivors"),
    ("transfer: {baselines: [cross_entropy]}", None, "baikal"),
    ("transfer: {reference: focal}", None, "reference"),
    ("bogus: 1", None, "bogus: unknown key"),
    ("[1, 2]", None, "mapping"),
    (None, {"elimination.nope": "1"}, "unknown protocol key"),
    (None, {"transfer.seeds": "[1, 1]"}, "distinct"),
])
def test_bad_protocols_are_one_line_errors(text, overrides, match):
    with pytest.raises(NlfsError, match=match) as err:
        parse_protocol(text, overrides)
    assert "\n" not in str(err.value)


def test_missing_protocol_file_is_a_user_error(tmp_path):
    with pytest.raises(NlfsError, match="cannot read"):
        load_protocol(str(tmp_path / "nope.yaml"))
