"""The search config: built-ins load, defaults follow METHOD.md, bad files say what is wrong."""

import pytest

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig, builtin_names, load_config, parse_config
from nlfs.evolution.stages import stage_profiles, validate_stages


def test_paper_config_is_the_published_method():
    c = load_config("paper")
    assert (c.population, c.tournament, c.initial_candidates, c.budget) == (100, 20, 1000, 4000)
    assert (c.max_mutation_attempts, c.max_trainings) == (2500, 7)
    assert {k: v.profile for k, v in c.stages.items()} == {
        "initial": "prefilter", "gate": "surrogate-gate", "main": "surrogate"}
    assert c.gated


def test_paper_stages_train_what_the_authors_fitness_functions_train():
    """fitness_functions.py: A is 80 epochs at 32x32 stopped below 0.35 from epoch index 6 and
    failed below 0.35; B's gate is 8 epochs failed below 0.35; B's main run is 80 epochs at 80x80
    stopped below 0.22 from epoch index 7, keeping its fitness."""
    profiles = stage_profiles(load_config("paper"))
    floors = {k: [(f.action, f.min, f.from_epoch_index) for f in p.floors] for k, p in profiles.items()}
    assert floors == {"initial": [("stop", 0.35, 6), ("fail", 0.35, 0)],
                      "gate": [("fail", 0.35, 0)],
                      "main": [("stop", 0.22, 7)]}
    assert [(p.epochs, p.steps_per_epoch, p.batch_size) for p in profiles.values()] == [
        (80, 100, 128), (8, 100, 128), (80, 100, 64)]
    assert profiles["main"].image_size == 80 and profiles["gate"].image_size is None
    for p in profiles.values():
        assert (p.schedule.warmup_steps, p.schedule.total_steps) == (800, 8000)


def test_embedded_default_has_the_paper_stage_structure_at_tiny_scale():
    c = load_config("default")
    profiles = stage_profiles(c)
    assert set(profiles) == {"initial", "gate", "main"}
    # The initial candidates get the full tiny run; the gate is a short one.
    assert profiles["initial"].epochs == profiles["main"].epochs > profiles["gate"].epochs
    assert [f.action for f in profiles["initial"].floors] == ["stop", "fail"]
    assert [f.action for f in profiles["gate"].floors] == ["fail"]
    assert [f.action for f in profiles["main"].floors] == ["stop"]


def test_model_defaults_equal_the_paper_config_but_for_batching():
    paper = load_config("paper")
    assert SearchConfig().model_copy(update={"batch_size": 16, "initial_batch_size": 100}) == paper


def test_builtins_are_listed():
    assert {"default", "paper"} <= set(builtin_names())


@pytest.mark.parametrize("text, fragment", [
    ("population: [", "not YAML"),
    ("- 1\n- 2", "YAML mapping"),
    ("populaton: 5", "populaton"),
    ("population: -3", "population"),
    ("population: 50\ninitial_candidates: 10", "initial_candidates must be at least population"),
    ("stages: {main: {profile: tiny}}", "stages"),
    ("tournament: true", "tournament"),
    ("seed: -1", "seed"),
    ("seed: 99999999999999999999999", "seed"),
    ("max_trainings: 0", "max_trainings"),
    ("format: nlfs.search/v1", "nlfs.search/v1"),
])
def test_bad_config_is_one_line_naming_the_problem(text, fragment):
    with pytest.raises(NlfsError) as err:
        parse_config(text, source="c.yaml")
    message = str(err.value)
    assert fragment in message and "\n" not in message and message.startswith("c.yaml")


def test_unknown_config_name_lists_builtins():
    with pytest.raises(NlfsError, match="built-in: default, paper, paper-effnet"):
        load_config("no-such-config")


def test_hash_changes_with_any_field():
    assert SearchConfig().hash != SearchConfig(seed=1).hash
    assert SearchConfig().hash == SearchConfig().hash


@pytest.mark.parametrize("stages, fragment", [
    ({"initial": {"profile": "no-such-profile"}}, "stages.initial: unknown profile 'no-such-profile'"),
    ({"initial": {"profile": "/etc/passwd"}}, "stages.initial: unknown profile '/etc/passwd'"),
    ({"gate": {"profile": "tiny", "overrides": {"optimizer.lrr": 1}}}, "stages.gate: unknown profile key"),
    ({"main": {"profile": "tiny", "overrides": {"epochs": -3}}}, "stages.main"),
    ({"main": {"profile": "tiny", "overrides": {"model.name": "nope"}}}, "unknown model 'nope'"),
])
def test_a_run_whose_stages_cannot_train_is_refused_as_a_whole(stages, fragment):
    base = {"initial": {"profile": "tiny-prefilter"}, "gate": {"profile": "tiny-gate"}, "main": {"profile": "tiny"}}
    config = SearchConfig(stages={**base, **stages})
    with pytest.raises(NlfsError) as err:
        validate_stages(config)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_profile_file_named_in_a_config_file_is_embedded(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: tiny\nepochs: 3\n")
    (tmp_path / "c.yaml").write_text("stages:\n  initial: {profile: mine.yaml}\n  main: {profile: tiny}\n")
    config = load_config(str(tmp_path / "c.yaml"))
    (tmp_path / "mine.yaml").unlink()  # the run never reads the file again
    assert isinstance(config.stages["initial"].profile, dict)
    assert stage_profiles(config)["initial"].epochs == 3
    assert stage_profiles(parse_config(config.to_yaml()))["initial"].epochs == 3


def test_a_binary_config_file_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00population: 5")
    with pytest.raises(NlfsError) as err:
        load_config(str(path))
    assert "\n" not in str(err.value)


def test_the_integrity_check_mirrors_how_the_stages_read_log_p():
    """The paper profiles feed genomes softmax probabilities, as the authors trained; the
    embedded default reads log(p) as log_softmax. The gradient test follows each."""
    from nlfs.evolution.stages import gradient_readings

    assert gradient_readings(load_config("paper")) == ("probabilities",)
    assert gradient_readings(load_config("default")) == ("log_softmax",)
