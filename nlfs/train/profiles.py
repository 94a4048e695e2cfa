"""Evaluation profiles: declarative YAML naming a dataset, model, augmentation, optimiser,
schedule, epochs, accuracy floors and seed (METHOD.md 4-6). Loaded by name or path, overridable.

A profile file may start with `base: OTHER` to inherit another profile and change a few fields.
`Profile.hash` covers what changes the science (not the name, seed or runtime knobs), so results
of different profiles never mix while a replicate with another seed or thread count still does.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlfs.errors import NlfsError
from nlfs.formats import read_yaml_mapping, set_dotted, validate

PROFILE_FORMAT = "nlfs.profile/v1"
# Fields outside the hash: labels, the replicate seed (recorded in every result anyway), and
# how/where the run executes.
_UNHASHED = ("name", "description", "seed", "runtime")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    name: str  # a registered dataset: digits, cifar10, cifar100, svhn, flowers102, stanford_cars, caltech101, fake
    val: Literal["holdout", "test"] = "holdout"  # holdout: carve val_size examples out of the training split
    val_size: int | None = None  # holdout size; None = the dataset's default (CIFAR: 5000, METHOD.md 4)
    split_seed: int = 0  # fixes the holdout split for every evaluation of every loss
    image_size: int | None = None  # size images are stored at (datasets of varied sizes); None = native
    train_limit: int | None = None  # cap on training examples (tests, benches)
    source: str | None = None  # store URI holding staged datasets; None = $NLFS_DATA, else local files only
    root: str | None = None  # local directory of the files; None = the cache under $NLFS_CACHE


class ModelSpec(_Strict):
    name: str  # a registered model
    dropout: float | None = None  # None = the model's own default
    pretrained: bool = False  # start from ImageNet weights (fine-tuning)
    weights: str | None = None  # where pretrained weights come from: a store URI of a state dict, or None = torchvision's URL


class AugmentSpec(_Strict):
    name: str = "none"  # a registered augmentation: none, cutout, mixup, cutmix, autoaugment, randaugment
    magnitude: float | None = None  # randaugment magnitude (torchvision's scale, bins 0..30)
    num_ops: int = 2  # randaugment: operations per image
    alpha: float = 1.0  # mixup / cutmix: Beta(alpha, alpha) mixing coefficient
    cutout_size: int = 16  # cutout: side of the erased square, pixels


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    eps: float = Field(1e-8, gt=0)  # adam/adamw epsilon: torch's default; Keras' is 1e-7 (METHOD.md 4)
    eps_mode: Literal["torch", "keras"] = "torch"
    # adam/adamw: where eps enters. torch: sqrt(v_hat) + eps, after bias correction. keras: the
    # "epsilon hat" form Keras' Adam computes, sqrt(v) + eps before bias correction, so eps weighs
    # 1 / sqrt(1 - beta2^t) times more in early steps (tf.keras.optimizers.Adam's docstring).

    @model_validator(mode="after")
    def _keras_eps_is_adams(self) -> "OptimizerSpec":
        if self.eps_mode == "keras" and self.name != "adam":
            raise ValueError(f"eps_mode keras is Keras' Adam; optimizer {self.name!r} has no such form")
        return self


class ScheduleSpec(_Strict):
    name: Literal["constant", "warmup_cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)  # linear warm-up from 0 to the peak lr, then cosine to 0
    total_steps: int | None = Field(None, gt=0)  # length the schedule is defined over, counted across
    # all stages of a run; None = the run's steps
    offset: float = 0.0  # warmup_cosine: added to every step's lr (the authors' WarmupCosineDecay adds 1e-7)


class LossSpec(_Strict):
    """How a genome's leaves are computed from the model's logits (METHOD.md 4)."""

    inputs: Literal["log_softmax", "probabilities"] = "log_softmax"
    # log_softmax: log(p) and log10(p) read log_softmax of the logits (exact, no guard), our
    # default. probabilities: every operator receives p = softmax(logits), so log(p) is
    # ln(|p| + 1e-7) as the operator table says: the authors' model ends in softmax.
    fuse_cross_entropy: bool = True
    # a genome whose term is exactly y * log(p) runs as F.cross_entropy of the logits, which is
    # also what Keras' CategoricalCrossentropy computes on a softmax output (the authors'
    # cross-entropy baseline). False: it runs as its program, like any other genome.


class FloorSpec(_Strict):
    """An accuracy floor (METHOD.md 3-5; the authors' `EpochCallback` and their fitness functions'
    `return None` tests). Epochs are counted from 0 within each stage, as Keras counts them.

    stop: at the end of each epoch whose index is >= `from_epoch_index`, stop training the stage
      when the metric is below `min` (the authors' `EpochCallback(threshold, epoch)`); the run keeps
      the fitness it reached, with status `stopped`. A multi-stage run goes on with its next stage.
    fail: after training, however it ended, the run fails (status `rejected`, no fitness) when the
      best metric over epochs with index >= `from_epoch_index` is below `min` (the authors'
      `if np.nanmax(history.history['accuracy']) < threshold: return None`).
    """

    metric: Literal["train_accuracy", "val_accuracy"] = "train_accuracy"
    min: float
    from_epoch_index: int = 0
    action: Literal["stop", "fail"] = "stop"


class StageSpec(_Strict):
    """One stage of progressive resizing (METHOD.md 5): image size, dropout, RandAugment magnitude."""

    epochs: int = Field(gt=0)
    image_size: int | None = None
    dropout: float | None = None
    magnitude: float | None = None


class RuntimeSpec(_Strict):
    """How the run executes; outside the profile hash."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None  # torch intra-op threads; None = torch's default
    compile: bool = False  # torch.compile the model (CUDA)
    channels_last: bool | None = None  # None = on for CUDA
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto = bf16 autocast on CUDA
    time_limit_s: float | None = None  # wall clock; past it the evaluation ends with status timeout
    eval_batch_size: int = 1024
    nan_check_every: int = 25  # steps between NaN/Inf checks (each check syncs a GPU)
    dtype: Literal["float32", "float64"] = "float32"  # parameters and inputs; float64 for numerical checks
    # How many genomes one process trains at once on its device (nlfs.train.cohort): auto = 1 on
    # CPU; on CUDA as many as fit, up to 16, for a one-stage profile of a small network.
    cohort: int | Literal["auto"] = "auto"
    compile_backend: str = "inductor"  # torch.compile's backend where `compile` or `compile_loss` is on
    compile_loss: bool = False  # cohort: torch.compile the members' losses of a step into one function
    cuda_graphs: bool = False  # cohort on CUDA: replay each training step as one captured CUDA graph

    @model_validator(mode="after")
    def _cohort_positive(self) -> "RuntimeSpec":
        if self.cohort != "auto" and self.cohort < 1:
            raise ValueError(f"cohort must be 'auto' or a positive integer, not {self.cohort}")
        return self


class Profile(_Strict):
    format: Literal["nlfs.profile/v1"] = PROFILE_FORMAT
    name: str = "custom"
    description: str = ""
    dataset: DatasetSpec
    model: ModelSpec
    augment: AugmentSpec = AugmentSpec()
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    loss: LossSpec = LossSpec()
    batch_size: int = Field(gt=0)
    epochs: int | None = None  # total epochs; with `stages`, their sum
    steps_per_epoch: int | None = None  # None = one pass over the training split
    image_size: int | None = None  # resize batches to this on the device (e.g. 32 -> 80, METHOD.md 4)
    stages: list[StageSpec] = []  # progressive resizing; empty = one stage of `epochs`
    floors: list[FloorSpec] = []
    seed: int = 0
    runtime: RuntimeSpec = RuntimeSpec()

    @model_validator(mode="after")
    def _epochs_consistent(self) -> "Profile":
        if self.stages:
            total = sum(s.epochs for s in self.stages)
            if self.epochs is not None and self.epochs != total:
                raise ValueError(f"epochs ({self.epochs}) must equal the sum of stage epochs ({total})")
            object.__setattr__(self, "epochs", total)
        elif self.epochs is None or self.epochs <= 0:
            raise ValueError("epochs must be a positive integer (or give stages)")
        return self

    def stage_plan(self) -> list[StageSpec]:
        """The stages to run in order; a profile without stages is one stage."""
        if self.stages:
            return list(self.stages)
        return [StageSpec(epochs=self.epochs, image_size=self.image_size, dropout=self.model.dropout,
                          magnitude=self.augment.magnitude)]

    @property
    def hash(self) -> str:
        """16 hex digits over the canonical content that changes results. Fields at their default
        are left out, so adding a field with a default later keeps existing hashes."""
        content = self.model_dump(mode="json", exclude=set(_UNHASHED), exclude_defaults=True)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# loading


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped in nlfs/train/profiles/*.yaml."""
    folder = resources.files("nlfs.train").joinpath("profiles")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _is_path(name_or_path: str) -> bool:
    return name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or Path(name_or_path).is_file()


def _raw_profile(name_or_path: str, seen: tuple[str, ...] = ()) -> dict:
    """The profile's mapping with `base:` inheritance resolved (deep merge)."""
    if name_or_path in seen:
        raise NlfsError(f"profile {name_or_path!r}: circular base ({' -> '.join(seen + (name_or_path,))})")
    if _is_path(name_or_path):
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as err:
            raise NlfsError(f"profile {name_or_path}: cannot read ({err.strerror})") from None
        data = read_yaml_mapping(text, name_or_path, "profile")
        data.setdefault("name", path.stem)
    else:
        ref = resources.files("nlfs.train").joinpath("profiles") / f"{name_or_path}.yaml"
        if not ref.is_file():
            raise NlfsError(f"unknown profile {name_or_path!r} (built in: {', '.join(builtin_profiles())}; or give a .yaml path)")
        data = read_yaml_mapping(ref.read_text(), f"profile {name_or_path}", "profile")
        data.setdefault("name", name_or_path)
    base = data.pop("base", None)
    if base is None:
        return data
    merged = _deep_merge(_raw_profile(str(base), seen + (name_or_path,)), data)
    merged["name"] = data["name"]
    merged.setdefault("description", "")
    return merged


def profile_mapping(name_or_path: str) -> dict:
    """A profile's whole mapping, `base:` inheritance resolved: what embedding a profile file
    into a run's config stores, so that the run never reads a file of one machine again."""
    return _raw_profile(name_or_path)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_profile(name_or_path: str, overrides: dict[str, str] | None = None) -> Profile:
    """A built-in profile by name (`tiny`, `surrogate`, ...) or a YAML file, with `key=value`
    overrides applied field by field (values are YAML scalars; nested keys use dots)."""
    profile = validate(Profile, _raw_profile(name_or_path), f"profile {name_or_path}", "profile")
    return apply_overrides(profile, overrides or {}, source=f"profile {name_or_path}")


def apply_overrides(profile: Profile, overrides: dict[str, str], source: str) -> Profile:
    """`profile` with dotted `key=value` overrides applied, validated again as a whole."""
    if not overrides:
        return profile
    data = profile.model_dump(mode="json")
    for key, raw in overrides.items():
        set_dotted(data, key, raw, lambda detail, key=key: f"unknown profile key {key!r}{detail}")
    if data["stages"] and "epochs" not in overrides:
        data["epochs"] = None  # derived from the stages again, which an override may have changed
    return validate(Profile, data, f"{source} with --set", "profile")


def profile_from_dict(data: dict, source: str = "profile") -> Profile:
    """A profile given inline as a mapping (e.g. embedded in a run's config); `base:` allowed."""
    data = dict(data)
    base = data.pop("base", None)
    if base is not None:
        merged = _deep_merge(_raw_profile(str(base)), data)
        merged["name"] = data.get("name", f"{base}+")
        data = merged
    return validate(Profile, data, source, "profile")
