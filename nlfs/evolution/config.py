"""The search configuration (`nlfs.search/v2`): one YAML file, validated on load, stored in the run.

Defaults follow METHOD.md 3 (population 100, tournament 20, 1000 random candidates, 4000
children, at most 7 trainings per child); `configs/default.yaml` scales them down for the
embedded one-machine search. v2 added the `gate` stage and `max_trainings` (v1 had
`max_remutations`, 1 + 7 trainings, and no gate): a v1 run cannot be resumed by this version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlfs.errors import NlfsError
from nlfs.files import read_file_bytes
from nlfs.formats import CanonicalModel, Int, Seed, read_yaml_mapping, validate
from nlfs.train.profiles import profile_mapping

CONFIG_FORMAT = "nlfs.search/v2"
_BUILTIN = Path(__file__).parent / "configs"

# initial: the random candidates' fitness (METHOD.md 4 A); gate: the short run every child (and
# every re-scored candidate) must pass before its main run; main: the population's fitness (4 B).
STAGES = ("initial", "gate", "main")
REQUIRED_STAGES = ("initial", "main")


class StageProfile(BaseModel):
    """The evaluation profile a stage trains with: a built-in profile's name, or the profile
    itself inline (a profile file named in a config is embedded when the config is loaded, so
    the run never depends on a file of one machine), with field overrides."""

    model_config = ConfigDict(extra="forbid")

    profile: str | dict
    overrides: dict[str, str | int | float | bool] = Field(default_factory=dict)


class SearchConfig(CanonicalModel):
    """Every knob of a search. Numbers without a METHOD.md source are marked 'our choice'."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nlfs.search/v2"] = CONFIG_FORMAT
    population: Int = Field(100, ge=2, le=10_000)
    tournament: Int = Field(20, ge=1, le=10_000)  # drawn with replacement
    initial_candidates: Int = Field(1000, ge=1, le=100_000)
    budget: Int = Field(4000, ge=0, le=10_000_000)  # children
    batch_size: Int = Field(1, ge=1, le=10_000)  # children per controller step; 1 = sequential
    initial_batch_size: Int = Field(64, ge=1, le=100_000)  # our choice: fan-out width of init
    max_mutation_attempts: Int = Field(2500, ge=1, le=1_000_000)
    max_trainings: Int = Field(7, ge=1, le=1000)  # per child: gate failures re-mutate until this
    hall_of_fame: Int = Field(25, ge=1, le=1000)  # our choice: best-ever members kept in state
    seed: Seed = 0
    stages: dict[Literal["initial", "gate", "main"], StageProfile] = Field(
        default_factory=lambda: {"initial": StageProfile(profile="prefilter"),
                                 "gate": StageProfile(profile="surrogate-gate"),
                                 "main": StageProfile(profile="surrogate")})

    @model_validator(mode="after")
    def _consistent(self) -> "SearchConfig":
        missing = [s for s in REQUIRED_STAGES if s not in self.stages]
        if missing:
            raise ValueError(f"stages must name {', '.join(REQUIRED_STAGES)} (and may name gate); "
                             f"missing: {', '.join(missing)}")
        if self.initial_candidates < self.population:
            raise ValueError("initial_candidates must be at least population")
        return self

    @property
    def gated(self) -> bool:
        return "gate" in self.stages

    @property
    def total_evaluations(self) -> int:
        """Main and initial trainings a complete run performs when no child is re-mutated."""
        return self.initial_candidates + self.population + self.budget


def parse_config(text: str | bytes, source: str = "config") -> SearchConfig:
    """Validate YAML text; NlfsError names the first field at fault."""
    data = read_yaml_mapping(text, source, "search config")
    if data.get("format") == "nlfs.search/v1":
        raise NlfsError(f"{source}: an nlfs.search/v1 config (before the gate stage); this nlfs "
                        f"reads {CONFIG_FORMAT}: start a new run with a current config")
    return validate(SearchConfig, data, source, "config")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in _BUILTIN.glob("*.yaml"))


def _embed_profile_files(data: dict, folder: Path, source: str) -> None:
    """Replace each stage's profile *file* (a .yaml path, relative to the config's folder) by
    its content, so the stored config is self-contained."""
    stages = data.get("stages")
    if not isinstance(stages, dict):
        return
    for stage, entry in stages.items():
        name = entry.get("profile") if isinstance(entry, dict) else None
        if isinstance(name, str) and name.endswith((".yaml", ".yml")):
            path = Path(name) if Path(name).is_absolute() else folder / name
            read_file_bytes(path, f"{source}: stages.{stage}.profile {name}", what="profile")
            try:
                entry["profile"] = profile_mapping(str(path))
            except NlfsError as err:
                raise NlfsError(f"{source}: stages.{stage}.profile: {err}") from None


def load_config(name_or_path: str) -> SearchConfig:
    """A built-in config by name (`default`, `paper`, ...) or a YAML file."""
    path = Path(name_or_path)
    if not path.exists():
        builtin = _BUILTIN / f"{name_or_path}.yaml"
        if not builtin.is_file():
            raise NlfsError(f"no config file or built-in config {name_or_path!r} "
                            f"(built-in: {', '.join(builtin_names())})")
        path = builtin
    data = read_yaml_mapping(read_file_bytes(path, str(name_or_path), what="search config"), str(name_or_path),
                             "search config")
    _embed_profile_files(data, path.parent, str(name_or_path))
    if data.get("format") == "nlfs.search/v1":
        return parse_config(b"format: nlfs.search/v1", source=str(name_or_path))
    return validate(SearchConfig, data, str(name_or_path), "config")
