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
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlfs.errors import NlfsError
from nlfs.formats import Float, Int, Seed, read_text_file, read_yaml_mapping, set_dotted, validate

PROFILE_FORMAT = "nlfs.profile/v1"
# Fields outside the hash: labels, the replicate seed (recorded in every result anyway), and
# how/where the run executes.
_UNHASHED = ("name", "description", "seed", "runtime")


# Ranges a profile's numbers must lie in, so that a bad value is a one-line error when the
# profile is loaded, not a traceback from torch at the first step. Int/Float refuse booleans;
# Float refuses NaN and infinities.
Positive = Annotated[Int, Field(gt=0)]
NonNegative = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Dropout = Annotated[Float, Field(ge=0, lt=1)]  # torch allows 1, which zeroes every activation
Fraction = Annotated[Float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    name: str  # a registered dataset: digits, cifar10, cifar100, svhn, flowers102, stanford_cars, caltech101, fake
    val: Literal["holdout", "test"] = "holdout"  # holdout: carve val_size examples out of the training split
    val_size: Positive | None = None  # holdout size; None = the dataset's default (CIFAR: 5000, METHOD.md 4)
    split_seed: Seed = 0  # fixes the holdout split for every evaluation of every loss
    holdout: Literal["random", "last"] = "random"
    # random: val_size examples drawn by a permutation seeded by split_seed; last: the last val_size
    # examples of the training split, as the authors' train_ind 0..44999 / val_ind 45000..49999
    # (fitness_functions.py)
    evaluate_test: bool = False
    # also score the test split after every epoch (EpochMetrics.test_accuracy), beside the
    # validation split that fitness is taken from; with val=test the two are one split
    image_size: Positive | None = None  # size images are stored at (datasets of varied sizes); None = native
    train_limit: Positive | None = None  # cap on training examples (tests, benches)
    source: str | None = None  # store URI holding staged datasets; None = $NLFS_DATA, else local files only
    root: str | None = None  # local directory of the files; None = the cache under $NLFS_CACHE


class ModelSpec(_Strict):
    name: str  # a registered model
    dropout: Dropout | None = None  # None = the model's own default
    pretrained: bool = False  # start from ImageNet weights (fine-tuning)
    weights: str | None = None  # where pretrained weights come from: a store URI of a state dict, or None = torchvision's URL


class AugmentSpec(_Strict):
    name: str = "none"  # a registered augmentation: none, cutout, mixup, cutmix, autoaugment, randaugment, randaugment_tf
    magnitude: NonNegativeFloat | None = None  # randaugment: torchvision's scale, bins 0..30; randaugment_tf: the 0..10 scale, extrapolated above 10
    num_ops: NonNegative = 2  # randaugment, randaugment_tf: operations (layers) per image
    alpha: PositiveFloat = 1.0  # mixup / cutmix: Beta(alpha, alpha) mixing coefficient
    cutout_size: Positive = 16  # cutout: side of the erased square, pixels


class InputSpec(_Strict):
    """How raw images become the model's input (METHOD.md 4). The defaults are nlfs's original
    pipeline; `resize: tf` with `scaling: centered_128` (augmented runs) or `unit` (32x32 runs)
    is the authors'."""

    resize: Literal["torch", "tf"] = "torch"
    # torch: bilinear, antialiased when shrinking; tf: tf.image.resize's bilinear (half-pixel
    # centres, no antialiasing), as the authors' RandomProcessImage and preprocess_image
    scaling: Literal["mean_std", "unit", "centered_128"] = "mean_std"
    # mean_std: per-channel dataset mean and std; unit: x / 255; centered_128: (x - 127.5) / 128


class BatchingSpec(_Strict):
    """The order training examples are drawn in (`nlfs.train.batches`). The defaults are nlfs's
    (a fresh permutation per pass, equal batch shapes); the authors' loaders are `sequential`
    at 32x32 and `buffer` (tf.data's shuffle(1024)) when augmented, keeping each pass's short
    last batch."""

    order: Literal["permutation", "sequential", "buffer"] = "permutation"
    buffer_size: Positive = 1024  # order: buffer
    drop_remainder: bool = True


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3  # peak learning rate
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    eps: PositiveFloat = 1e-8  # adam/adamw epsilon: torch's default; Keras' is 1e-7 (METHOD.md 4)
    eps_mode: Literal["torch", "keras"] = "torch"
    # adam/adamw: where eps enters. torch: sqrt(v_hat) + eps, after bias correction. keras: the
    # "epsilon hat" form Keras' Adam computes, sqrt(v) + eps before bias correction, so eps weighs
    # 1 / sqrt(1 - beta2^t) times more in early steps (tf.keras.optimizers.Adam's docstring).

    @model_validator(mode="after")
    def _keras_eps_is_adams(self) -> "OptimizerSpec":
        if self.eps_mode == "keras" and self.name != "adam":
            raise ValueError(f"eps_mode keras is Keras' Adam; optimizer {self.name!r} has no such form")
        return self

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimizerSpec":
        if self.name == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        return self


class ScheduleSpec(_Strict):
    name: Literal["constant", "warmup_cosine"] = "constant"
    warmup_steps: NonNegative = 0  # linear warm-up from 0 to the peak lr, then cosine to 0
    total_steps: Positive | None = None  # length the schedule is defined over, counted across
    # all stages of a run; None = the run's steps
    offset: NonNegativeFloat = 0.0  # warmup_cosine: added to every step's lr (the authors' WarmupCosineDecay adds 1e-7)


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
    min: Fraction
    from_epoch_index: NonNegative = 0
    action: Literal["stop", "fail"] = "stop"


class StageSpec(_Strict):
    """One stage of progressive resizing (METHOD.md 5): image size, dropout, RandAugment magnitude."""

    epochs: Positive
    image_size: Positive | None = None
    dropout: Dropout | None = None
    magnitude: NonNegativeFloat | None = None


class RuntimeSpec(_Strict):
    """How the run executes; outside the profile hash."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Positive | None = None  # torch intra-op threads; None = torch's default
    compile: bool = False  # torch.compile the model (CUDA)
    channels_last: bool | None = None  # None = on for CUDA
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto = bf16 autocast on CUDA
    time_limit_s: NonNegativeFloat | None = None  # wall clock; past it the evaluation ends with status timeout
    eval_batch_size: Positive = 1024
    nan_check_every: Positive = 25  # steps between NaN/Inf checks (each check syncs a GPU)
    dtype: Literal["float32", "float64"] = "float32"  # parameters and inputs; float64 for numerical checks
    # How many genomes one process trains at once on its device (nlfs.train.cohort): auto = 1 on
    # CPU; on CUDA as many as fit, up to 16, for a one-stage profile of a small network.
    cohort: Positive | Literal["auto"] = "auto"
    compile_backend: str = "inductor"  # torch.compile's backend where `compile` or `compile_loss` is on
    compile_loss: bool = False  # cohort: torch.compile the members' losses of a step into one function
    cuda_graphs: bool = False  # cohort on CUDA: replay each training step as one captured CUDA graph


class Profile(_Strict):
    format: Literal["nlfs.profile/v1"] = PROFILE_FORMAT
    name: str = "custom"
    description: str = ""
    dataset: DatasetSpec
    model: ModelSpec
    augment: AugmentSpec = AugmentSpec()
    input: InputSpec = InputSpec()
    batching: BatchingSpec = BatchingSpec()
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    loss: LossSpec = LossSpec()
    batch_size: Positive
    epochs: Positive | None = None  # total epochs; with `stages`, their sum
    steps_per_epoch: Positive | None = None  # None = one pass over the training split
    image_size: Positive | None = None  # resize batches to this on the device (e.g. 32 -> 80, METHOD.md 4)
    stages: list[StageSpec] = []  # progressive resizing; empty = one stage of `epochs`
    floors: list[FloorSpec] = []
    seed: Seed = 0
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
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return True
    try:
        return Path(name_or_path).is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: not a file
        return False


def _raw_profile(name_or_path: str, seen: tuple[str, ...] = ()) -> dict:
    """The profile's mapping with `base:` inheritance resolved (deep merge)."""
    if name_or_path in seen:
        raise NlfsError(f"profile {name_or_path!r}: circular base ({' -> '.join(seen + (name_or_path,))})")
    if _is_path(name_or_path):
        path = Path(name_or_path)
        text = read_text_file(path, f"profile {name_or_path}", what="profile")
        data = read_yaml_mapping(text, f"profile {name_or_path}", "profile")
        data.setdefault("name", path.stem)
    else:
        known = builtin_profiles()
        if name_or_path not in known:  # looked up in the list, never built into a path
            raise NlfsError(f"unknown profile {name_or_path[:100]!r} (built in: {', '.join(known)}; "
                            "or give a .yaml path)")
        ref = resources.files("nlfs.train").joinpath("profiles") / f"{name_or_path}.yaml"
        data = read_yaml_mapping(ref.read_text(), f"profile {name_or_path}", "profile")
        data.setdefault("name", name_or_path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise NlfsError(f"profile {name_or_path}: base: a profile name or a .yaml path, got {base!r:.100}")
    try:
        inherited = _raw_profile(base, seen + (name_or_path,))
    except NlfsError as err:  # say which file names the base that fails
        raise NlfsError(f"profile {name_or_path}: base: {err}") from None
    merged = _deep_merge(inherited, data)
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
