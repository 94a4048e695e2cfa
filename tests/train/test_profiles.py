"""Profiles: loading by name and path, inheritance, overrides, hashing."""

from __future__ import annotations

import pytest

from nlfs.errors import NlfsError
from nlfs.formats import parse_overrides
from nlfs.train.profiles import builtin_profiles, load_profile


def test_builtin_profiles_all_load():
    for name in builtin_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert len(profile.hash) == 16


def test_tiny_profile_is_digits_on_one_cpu_thread():
    p = load_profile("tiny")
    assert (p.dataset.name, p.model.name, p.runtime.device, p.runtime.threads) == ("digits", "tiny_cnn", "cpu", 1)


def test_tiny_stages_inherit_tiny_with_the_paper_floors_at_tiny_scale():
    tiny, pre, gate = load_profile("tiny"), load_profile("tiny-prefilter"), load_profile("tiny-gate")
    assert pre.dataset == tiny.dataset == gate.dataset and pre.model == tiny.model == gate.model
    assert pre.epochs == tiny.epochs > gate.epochs
    assert [(f.action, f.min) for f in pre.floors] == [("stop", 0.35), ("fail", 0.35)]
    assert [(f.action, f.min) for f in gate.floors] == [("fail", 0.35)]
    assert len({pre.hash, tiny.hash, gate.hash}) == 3


def test_override_nested_key_parses_yaml_scalar_and_changes_hash():
    base = load_profile("tiny")
    p = load_profile("tiny", {"optimizer.lr": "0.01", "epochs": "2", "augment.name": "cutout"})
    assert p.optimizer.lr == 0.01 and p.epochs == 2 and p.augment.name == "cutout"
    assert p.hash != base.hash


def test_override_of_list_item_by_index():
    p = load_profile("tiny-prefilter", {"floors.0.min": "0.5"})
    assert p.floors[0].min == 0.5


@pytest.mark.parametrize("key", ["optimizer.lrr", "nonsense", "optimizer.lr.x", "floors.3.min"])
def test_unknown_override_key_is_one_line_error_naming_it(key):
    with pytest.raises(NlfsError) as err:
        load_profile("tiny-prefilter", {key: "1"})
    assert key in str(err.value) and "\n" not in str(err.value)


def test_override_of_wrong_type_names_the_field():
    with pytest.raises(NlfsError, match="batch_size"):
        load_profile("tiny", {"batch_size": "many"})


def test_hash_ignores_name_seed_and_runtime():
    base = load_profile("tiny")
    other = load_profile("tiny", {"seed": "7", "runtime.threads": "4", "name": "x", "description": "y"})
    assert other.hash == base.hash


def test_profile_from_yaml_path_with_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny\nepochs: 2\n")
    p = load_profile(str(path))
    assert p.name == "mine" and p.epochs == 2 and p.dataset.name == "digits"


def test_unknown_key_in_yaml_file_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: tiny\nmodel: {name: tiny_cnn, depth: 3}\n")
    with pytest.raises(NlfsError, match="model.depth: unknown key"):
        load_profile(str(path))


def test_unknown_profile_name_lists_builtins():
    with pytest.raises(NlfsError, match="tiny"):
        load_profile("no-such-profile")


def test_stages_define_epochs_and_follow_overrides():
    p = load_profile("tiny", {"stages": "[{epochs: 2, image_size: 8}, {epochs: 3}]"})
    assert p.epochs == 5
    p2 = load_profile(str(_write(p)), {"stages.1.epochs": "1"})
    assert p2.epochs == 3


def _write(profile):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "staged.yaml"
    path.write_text(profile.to_yaml())
    return path


def test_parse_overrides_needs_key_equals_value():
    assert parse_overrides(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(NlfsError):
        parse_overrides(["novalue"])
