"""The search configuration (`nlfs.search/v1`): one YAML file, validated on load, stored in the run.

Defaults follow METHOD.md 3 (population 100, tournament 20, 1000 random candidates, 4000
children); `configs/default.yaml` scales them down for the embedded one-machine search.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nlfs.errors import NlfsError

CONFIG_FORMAT = "nlfs.search/v1"
_BUILTIN = Path(__file__).parent / "configs"

STAGES = ("initial", "main")  # the cheap scoring of random candidates, and the real fitness


class StageProfile(BaseModel):
    """The evaluation profile a stage trains with, by name, with field overrides."""

    model_config = ConfigDict(extra="forbid")

    profile: str
    overrides: dict[str, str | int | float | bool] = Field(default_factory=dict)


class SearchConfig(BaseModel):
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

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_config(text: str | bytes, source: str = "config") -> SearchConfig:
    """Validate YAML text; NlfsError names the first field at fault."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise NlfsError(f"{source}: not YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise NlfsError(f"{source}: a search config is a YAML mapping")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise NlfsError(f"{source}: {where}: {first['msg']}") from None


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
