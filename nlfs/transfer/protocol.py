"""The protocol after a search (`nlfs.protocol/v1`): elimination phases and the transfer grid.

One YAML file, validated on load and stored once in the run (`protocol.yaml`). Defaults follow
METHOD.md 5 (four phases, survivors 25/12/6/4, profiles eliminate-1..4) and METHOD.md 6 (the four
settings of final_loss_testing.py: base and progressive, from scratch and ImageNet-pretrained,
EfficientNetV2-S on CIFAR-10 and CIFAR-100, 6 runs; cross-entropy and Baikal as baselines).
Numbers without a source say so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlfs.formats import CanonicalModel, read_text_file, read_yaml_mapping, set_dotted, validate

PROTOCOL_FORMAT = "nlfs.protocol/v1"
ALWAYS_BASELINES = ("cross_entropy", "baikal")  # METHOD.md 6: every transfer study trains both
Value = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseSpec(_Model):
    """One elimination phase: every entrant trained once under `profile` with `set` overrides."""

    profile: str
    set: dict[str, Value] = Field(default_factory=dict)
    survivors: int = Field(ge=1)


def _method_phases() -> list[PhaseSpec]:
    return [PhaseSpec(profile=f"eliminate-{k}", survivors=s) for k, s in zip((1, 2, 3, 4), (25, 12, 6, 4))]


class EliminationSpec(_Model):
    candidates: int = Field(150, ge=1, le=100_000)  # METHOD.md 5: "150-300" of the search's best
    phases: list[PhaseSpec] = Field(default_factory=_method_phases)
    # Trained beside the entrants in every phase as a yardstick, never ranked (our choice).
    references: list[str] = Field(default_factory=lambda: ["cross_entropy"])


class AxisValue(_Model):
    """One value of a grid axis: a profile (replacing the base) and/or overrides."""

    profile: str | None = None
    set: dict[str, Value] = Field(default_factory=dict)


def _method_axes() -> dict[str, dict[str, AxisValue]]:
    """METHOD.md 6 (final_loss_testing.py `__main__`): four settings, each on CIFAR-10 and CIFAR-100."""
    return {
        "setting": {"base": AxisValue(profile="final-effnetv2s-cifar10-base"),
                    "base-pretrained": AxisValue(profile="final-effnetv2s-cifar10-base-pretrained"),
                    "progressive": AxisValue(profile="final-effnetv2s-cifar10"),
                    "progressive-pretrained": AxisValue(profile="final-effnetv2s-cifar10-pretrained")},
        "dataset": {"cifar10": AxisValue(), "cifar100": AxisValue(set={"dataset.name": "cifar100"})},
    }


class TransferSpec(_Model):
    profile: str = "final-effnetv2s-cifar10"  # the base profile of every cell (an axis value may name its own)
    set: dict[str, Value] = Field(default_factory=dict)  # overrides of every cell
    # axis -> named values; the grid is their product in the order written (models x datasets x ...)
    axes: dict[str, dict[str, AxisValue]] = Field(default_factory=_method_axes)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5])  # METHOD.md 6: 6 runs
    baselines: list[str] = Field(default_factory=lambda: ["cross_entropy", "baikal"])
    reference: str = "cross_entropy"  # the baseline every loss is tested against
    test: Literal["welch", "mannwhitney"] = "welch"
    alpha: float = Field(0.05, gt=0, lt=1)  # significance level of a win or a loss

    @model_validator(mode="after")
    def _consistent(self) -> "TransferSpec":
        missing = [name for name in ALWAYS_BASELINES if name not in self.baselines]
        if missing:
            raise ValueError(f"baselines must include {' and '.join(ALWAYS_BASELINES)} (METHOD.md 6); "
                             f"missing {', '.join(missing)}")
        if self.reference not in self.baselines:
            raise ValueError(f"reference {self.reference!r} must be one of the baselines")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError("seeds must be distinct non-negative integers, at least one")
        for axis, values in self.axes.items():
            if not values:
                raise ValueError(f"axis {axis!r} has no values")
        return self


class FidelitySpec(_Model):
    """Surrogate fidelity: rank correlations with a percentile bootstrap interval (nlfs.stats)."""

    confidence: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(2000, ge=10, le=100_000)
    seed: int = 0


class Protocol(_Model, CanonicalModel):
    format: Literal["nlfs.protocol/v1"] = PROTOCOL_FORMAT
    elimination: EliminationSpec = Field(default_factory=EliminationSpec)
    transfer: TransferSpec = Field(default_factory=TransferSpec)
    fidelity: FidelitySpec = Field(default_factory=FidelitySpec)

    def cells(self) -> list["Cell"]:
        """The transfer grid: one cell per combination of axis values, in axis order."""
        spec = self.transfer
        axes = list(spec.axes.items())
        out = []
        for combo in itertools.product(*(list(values.items()) for _, values in axes)):
            profile, overrides = spec.profile, dict(spec.set)
            for _, value in combo:
                profile = value.profile or profile
                overrides.update(value.set)
            labels = {axis: name for (axis, _), (name, _) in zip(axes, combo)}
            out.append(Cell(labels, profile, {k: override_text(v) for k, v in overrides.items()}))
        return out


@dataclass(frozen=True)
class Cell:
    """One setting of the transfer grid: its axis labels, profile and overrides (as --set text)."""

    labels: dict[str, str]
    profile: str
    set: dict[str, str]

    @property
    def name(self) -> str:
        return ",".join(f"{axis}={value}" for axis, value in self.labels.items()) or "default"

    @property
    def id(self) -> str:
        """10 hex digits over what changes training (profile and overrides), not the labels."""
        canonical = json.dumps([self.profile, sorted(self.set.items())], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def stage(self, seed: int) -> str:
        return transfer_stage(self.id, seed)


def transfer_stage(cell_id: str, seed: int) -> str:
    """The result stage of one cell and seed, e.g. `t-3fa9c0d2e1-s0` (a slug, see layout)."""
    return f"t-{cell_id}-s{seed}"


def elimination_stage(phase: int) -> str:
    """The result stage of elimination phase `phase` (1-based), e.g. `elim-1`."""
    return f"elim-{phase}"


def override_text(value: Value) -> str:
    """A YAML-typed value as the `--set` text that parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def set_list(overrides: dict[str, str]) -> list[str]:
    """Overrides as the work item's `set` list, `["key=value", ...]`, in a stable order."""
    return [f"{k}={v}" for k, v in overrides.items()]


# ---- loading ----------------------------------------------------------------------------------

def parse_protocol(text: str | bytes | None, overrides: dict[str, str] | None = None,
                   source: str = "protocol") -> Protocol:
    """Validate YAML text (None: the defaults) with dotted `key=value` overrides applied.

    Overrides address the fully populated protocol, e.g. `elimination.candidates=3`,
    `elimination.phases.0.survivors=2`, `transfer.seeds=[0, 1]`; values are YAML.
    """
    protocol = validate(Protocol, read_yaml_mapping(text, source, "protocol"), source, "protocol")
    if not overrides:
        return protocol
    dumped = protocol.model_dump(mode="json")
    for key, raw in overrides.items():
        set_dotted(dumped, key, raw, lambda detail, key=key: f"--set {key}: unknown protocol key{detail}",
                   may_add=_open_mapping)
    return validate(Protocol, dumped, f"{source} with --set", "protocol")


def load_protocol(path: str | None, overrides: dict[str, str] | None = None) -> Protocol:
    """The protocol of a YAML file (None: METHOD.md's defaults), with overrides."""
    if path is None:
        return parse_protocol(None, overrides, source="default protocol")
    text = read_text_file(path, f"--protocol {path}", what="protocol")
    return parse_protocol(text, overrides, source=path)


def _open_mapping(path: list[str]) -> bool:
    """Mappings whose keys are the user's: overrides (`set`) and the grid's axes and values."""
    return bool(path) and (path[-1] == "set" or path[:2] == ["transfer", "axes"])
