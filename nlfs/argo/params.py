"""The parameters of the WorkflowTemplates in workflows/, and the checks a value passes before it
reaches a cluster: names, integers, quantities, JSON values, and no credentials."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable

from nlfs.errors import NlfsError

DEFAULT_NAMESPACE = "nlfs"

# The parameters each WorkflowTemplate in workflows/ declares, with their defaults (None: required).
# tests/workflows/test_templates.py checks these against the YAML, so the two cannot drift apart.
_GPU_TOLERATION = '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'
TEMPLATES: dict[str, dict[str, str | None]] = {
    "nlfs-search": {
        "run": None, "config": "paper", "image": "nlfs:0.1.0", "profile": "",
        "initial-profile": "", "profile-set": "[]", "parallelism": "16", "genomes-per-pod": "2",
        "gpus": "1", "gpu-resource": "nvidia.com/gpu", "cpu": "4", "memory": "24Gi",
        "node-selector": "{}", "tolerations": _GPU_TOLERATION, "generations-per-workflow": "4",
        "s3-secret": "nlfs-s3", "data": "", "deadline-seconds": "21600", "cache-size": "100Gi",
        "max-failed-evaluations": "10",
    },
    "nlfs-evaluate": {
        "run": "", "stage": "main", "genome": "", "loss": "cross_entropy", "profile": "",
        "profile-set": "[]", "image": "nlfs:0.1.0", "gpus": "1", "gpu-resource": "nvidia.com/gpu",
        "cpu": "4", "memory": "24Gi", "node-selector": "{}", "tolerations": _GPU_TOLERATION,
        "s3-secret": "nlfs-s3", "data": "", "deadline-seconds": "21600", "cache-size": "100Gi",
    },
    "nlfs-transfer": {
        "run": None, "image": "nlfs:0.1.0", "profile": "", "profile-set": "[]",
        "parallelism": "16", "genomes-per-pod": "1", "gpus": "1", "gpu-resource": "nvidia.com/gpu",
        "cpu": "8", "memory": "48Gi", "node-selector": "{}", "tolerations": _GPU_TOLERATION,
        "rounds-per-workflow": "2", "s3-secret": "nlfs-s3", "data": "",
        "deadline-seconds": "172800", "cache-size": "200Gi",
    },
}
# The parameter bounding how many generations (rounds) one Workflow runs before its continuation.
ROUNDS_PARAM = {"nlfs-search": "generations-per-workflow", "nlfs-transfer": "rounds-per-workflow"}

_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b")
_SECRETISH_NAME = re.compile(r"(secret.?key|access.?key|password|passwd|token|credential)", re.I)
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
# An extended resource name (Kubernetes: a domain-qualified name, e.g. nvidia.com/mig-1g.10gb).
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_INT_PARAMS = ("parallelism", "genomes-per-pod", "generations-per-workflow", "rounds-per-workflow",
               "deadline-seconds", "gpus", "max-failed-evaluations")
_NON_NEGATIVE = ("gpus", "max-failed-evaluations")


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """`["name=value", ...]` (the CLI's repeated -p) -> dict; a name given twice is an error."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise NlfsError(f"parameter {pair!r}: expected NAME=VALUE")
        if name in params:
            raise NlfsError(f"parameter {name!r} given twice")
        params[name] = value
    return params


def declared(template: str) -> dict[str, str | None]:
    """The parameters `template` declares, with their defaults."""
    try:
        return TEMPLATES[template]
    except KeyError:
        raise NlfsError(f"unknown template {template!r} (known: {', '.join(TEMPLATES)})") from None


def effective_params(template: str, run: str, params: dict[str, str] | None = None) -> dict[str, str]:
    """The template's defaults, overridden by `params`, with `run`; validated."""
    names = declared(template)
    params = dict(params or {})
    if "run" in params:
        raise NlfsError("give the run as the RUN argument, not as -p run=...")
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise NlfsError(f"{template} has no parameter {unknown[0]!r} (known: {', '.join(sorted(names))})")
    values = {name: (default or "") for name, default in names.items()}
    values.update(params)
    values["run"] = run
    if names["run"] is None and not run:
        raise NlfsError(f"{template} needs a run URI")
    check_no_credentials(values)
    _check_values(values)
    return values


def check_no_credentials(values: dict[str, str]) -> None:
    """Credentials reach pods only from the Secret named by s3-secret, never as parameters."""
    known = {v for v in (os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_ACCESS_KEY_ID"),
                         os.environ.get("ARGO_TOKEN")) if v and len(v) >= 8}
    for name, value in values.items():
        if _AWS_KEY_ID.search(value) or any(secret in value for secret in known):
            raise NlfsError(
                f"parameter {name!r} holds a credential; credentials belong in the Kubernetes "
                "Secret named by s3-secret, never in workflow parameters"
            )
        if name != "s3-secret" and _SECRETISH_NAME.search(name):
            raise NlfsError(f"parameter {name!r} looks like a credential; use the s3-secret Secret")


def _check_values(values: dict[str, str]) -> None:
    """User errors caught here rather than in a pod: JSON parameters, integers, quantities."""
    for name in _INT_PARAMS:
        if name in values:
            value = values[name]
            if not value.isdigit() or (name not in _NON_NEGATIVE and int(value) < 1):
                kind = "non-negative" if name in _NON_NEGATIVE else "positive"
                raise NlfsError(f"parameter {name!r} must be a {kind} integer, got {value!r}")
    for name in ("cpu", "memory", "cache-size"):
        if name in values and not _QUANTITY.match(values[name]):
            raise NlfsError(f"parameter {name!r} must be a Kubernetes quantity (e.g. 4, 500m, 24Gi), "
                            f"got {values[name]!r}")
    if "gpu-resource" in values and not _RESOURCE_NAME.match(values["gpu-resource"]):
        raise NlfsError("parameter 'gpu-resource' must be an extended resource name such as "
                        f"nvidia.com/gpu or nvidia.com/mig-1g.10gb, got {values['gpu-resource']!r}")
    checks: dict[str, tuple[type, Callable[[Any], bool], str]] = {
        "node-selector": (dict, lambda d: all(isinstance(v, str) for v in d.values()),
                          "a JSON object of label: value strings"),
        "tolerations": (list, lambda t: all(isinstance(x, dict) for x in t), "a JSON list of toleration objects"),
        "profile-set": (list, lambda s: all(isinstance(x, str) and "=" in x for x in s),
                        'a JSON list of "key=value" strings'),
    }
    for name, (kind, ok, what) in checks.items():
        if name not in values:
            continue
        try:
            parsed = json.loads(values[name])
        except ValueError:
            parsed = None
        if not isinstance(parsed, kind) or not ok(parsed):
            raise NlfsError(f"parameter {name!r} must be {what}, got {values[name]!r}")
