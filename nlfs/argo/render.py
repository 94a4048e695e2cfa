"""The Workflow object that runs a WorkflowTemplate of workflows/ for a run: what both submission
paths (Kubernetes API, Argo Server) send, and what `nlfs workflow render` prints."""

from __future__ import annotations

import hashlib
from typing import Any

from nlfs.argo import bounds
from nlfs.argo.params import DEFAULT_NAMESPACE, ROUNDS_PARAM, effective_params
from nlfs.errors import NlfsError

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
RUN_LABEL = "nlfs.io/run"  # value: run_label(run URI); set by the templates' labelsFrom too
RUN_ANNOTATION = "nlfs.io/run-uri"  # the URI itself (annotations may hold any text)
CONTINUES_ANNOTATION = "nlfs.io/continues"  # on a continuation: the Workflow that created it


def run_label(run: str) -> str:
    """The `nlfs.io/run` label value of a run: 16 hex digits of SHA-256 of its URI.

    The same as the templates' `sprig.trunc(16, sprig.sha256sum(workflow.parameters.run))`.
    """
    return hashlib.sha256(run.encode()).hexdigest()[:16]


def render(
    template: str,
    run: str,
    params: dict[str, str] | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """The Workflow that runs `template` for `run`, refused past the size budget (nlfs.argo.bounds).

    Only parameters the user set are listed (the template supplies the rest), and nothing else
    of the spec: under the controller's `templateReferencing: Strict` or `Secure` a Workflow may
    override only an allow-list of spec fields (docs/kubernetes.md, the version table).
    """
    values = effective_params(template, run, params)
    size = bounds.estimate_workflow_bytes(template, values)
    if size > bounds.WORKFLOW_BUDGET_BYTES:
        rounds = ROUNDS_PARAM[template]
        raise NlfsError(
            f"one {template} Workflow could grow to ~{size // 1000} kB of status, over the "
            f"{bounds.WORKFLOW_BUDGET_BYTES // 1000} kB budget; lower {rounds} "
            f"(at most {bounds.max_rounds(template, values)} with these settings) or raise genomes-per-pod"
        )
    arguments = [{"name": "run", "value": run}] if run else []
    arguments += [{"name": name, "value": value} for name, value in (params or {}).items()]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{template}-",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "nlfs", RUN_LABEL: run_label(run)},
            "annotations": {RUN_ANNOTATION: run},
        },
        "spec": {
            "workflowTemplateRef": {"name": template},
            "arguments": {"parameters": arguments},
        },
    }
