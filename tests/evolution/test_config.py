"""The search config: built-ins load, defaults follow METHOD.md, bad files say what is wrong."""

import pytest

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig, builtin_names, load_config, parse_config


def test_paper_config_is_the_published_method():
    c = load_config("paper")
    assert (c.population, c.tournament, c.initial_candidates, c.budget) == (100, 20, 1000, 4000)
    assert (c.max_mutation_attempts, c.max_remutations) == (2500, 7)
    assert c.stages["initial"].profile == "prefilter" and c.stages["main"].profile == "surrogate"


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
])
def test_bad_config_is_one_line_naming_the_problem(text, fragment):
    with pytest.raises(NlfsError) as err:
        parse_config(text, source="c.yaml")
    message = str(err.value)
    assert fragment in message and "\n" not in message and message.startswith("c.yaml")


def test_unknown_config_name_lists_builtins():
    with pytest.raises(NlfsError, match="built-in: default, paper"):
        load_config("no-such-config")


def test_hash_changes_with_any_field():
    assert SearchConfig().hash != SearchConfig(seed=1).hash
    assert SearchConfig().hash == SearchConfig().hash
