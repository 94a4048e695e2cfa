"""The search configuration (`nlfs.search/v1`): one YAML file, validated on load, stored in the run.

Defaults follow METHOD.md 3 (population 100, tournament 20, 1000 random candidates, 4000
children); `configs/default.yaml` scales them down for the embedded one-machine search.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlfs.errors import NlfsError
from nlfs.formats import CanonicalModel, read_yaml_mapping, validate

CONFIG_FORMAT = "nlfs.search/v1"
_BUILTIN = Path(__file__).parent / "configs"

STAGES = ("initial", "main")  # the cheap scoring of random candidates, and the real fitness


class StageProfile(BaseModel):
    """The evaluation profile a stage trains with, by name, with field overrides."""

    model_config = ConfigDict(extra="forbid")

    profile: str
    overrides: dict[str, str | int | float | bool] = Field(default_factory=dict)


class SearchConfig(CanonicalModel):
    """Every knob of a search. Numbers without a METHOD.md source are marked 'our choice'."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nlfs.search/v1"] = CONFIG_FORMAT
    population: int = Field(100, ge=2, le=10_000)
    tournament: int = Field(20, ge=1, le=10_000)  # drawn with replacement
    initial_candidates: int = Field(1000, ge=1, le=100_000)
    budget: int = Field(4000, ge=0, le=10_000_000)  # children
    batch_size: int = Field(1, ge=1, le=10_000)  # children per controller step; 1 = sequential
    initial_batch_size: int = Field(64, ge=1, le=100_000)  # our choice: fan-out width of init
    max_mutation_attempts: int = Field(2500, ge=1)
    max_remutations: int = Field(7, ge=0)
    hall_of_fame: int = Field(25, ge=1, le=1000)  # our choice: best-ever members kept in state
    seed: int = 0
    stages: dict[Literal["initial", "main"], StageProfile] = Field(
        default_factory=lambda: {"initial": StageProfile(profile="prefilter"),
                                 "main": StageProfile(profile="surrogate")})

    @model_validator(mode="after")
    def _consistent(self) -> "SearchConfig":
        if set(self.stages) != set(STAGES):
            raise ValueError(f"stages must name exactly {', '.join(STAGES)}")
        if self.initial_candidates < self.population:
            raise ValueError("initial_candidates must be at least population")
        return self

    @property
    def total_evaluations(self) -> int:
        """Trainings a complete run performs at most: candidates, re-scoring, children."""
        return self.initial_candidates + self.population + self.budget



def parse_config(text: str | bytes, source: str = "config") -> SearchConfig:
    """Validate YAML text; NlfsError names the first field at fault."""
    return validate(SearchConfig, read_yaml_mapping(text, source, "search config"), source, "config")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in _BUILTIN.glob("*.yaml"))


def load_config(name_or_path: str) -> SearchConfig:
    """A built-in config by name (`default`, `paper`) or a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        builtin = _BUILTIN / f"{name_or_path}.yaml"
        if not builtin.is_file():
            raise NlfsError(f"no config file or built-in config {name_or_path!r} "
                            f"(built-in: {', '.join(builtin_names())})")
        path = builtin
    try:
        text = path.read_text()
    except OSError as err:
        raise NlfsError(f"{name_or_path}: cannot read: {err.strerror}") from None
    return parse_config(text, source=str(name_or_path))
