"""The WorkflowTemplates of workflows/ and the strict Argo schema, loaded once per test session."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
# The project's shared folder sits beside the checkout (CI lays it there too);
# NLFS_ARGO_SCHEMA points elsewhere when it does not.
SCHEMA_PATH = Path(os.environ.get(
    "NLFS_ARGO_SCHEMA", ROOT.parent / "shared" / "schemas" / "argo-workflows-v4.1.schema.json"))
KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


def template_files() -> list[Path]:
    """Every Argo document file of workflows/ (the kustomization is not one)."""
    return sorted(p for p in WORKFLOWS.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.lru_cache(maxsize=1)
def load_templates() -> dict[str, dict]:
    """WorkflowTemplates of workflows/ by metadata.name (parsed once per session)."""
    docs: dict[str, dict] = {}
    for path in template_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["metadata"]["name"]] = doc
    return docs


@functools.lru_cache(maxsize=1)
def strict_schema() -> dict:
    """The Argo schema with additionalProperties: false on every object definition that has
    properties and no additionalProperties of its own (../shared/schemas/README.md)."""
    if not SCHEMA_PATH.exists():
        pytest.fail(f"Argo schema not found at {SCHEMA_PATH}: set NLFS_ARGO_SCHEMA to its path")
    schema = json.loads(SCHEMA_PATH.read_text())
    for definition in schema["definitions"].values():
        if definition.get("type") == "object" and "properties" in definition \
                and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    return schema


@functools.lru_cache(maxsize=8)
def _validator(kind: str):
    from jsonschema import Draft202012Validator

    schema = copy.copy(strict_schema())
    schema.pop("oneOf", None)
    schema["$ref"] = f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}"
    return Draft202012Validator(schema)


def schema_errors(doc: dict) -> list[str]:
    """Strict-schema violations of an Argo document, one line each ('' path = the root)."""
    kind = doc.get("kind")
    if kind not in KINDS:
        return [f"kind {kind!r} is not one of {KINDS}"]
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors]
