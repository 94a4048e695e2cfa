"""A run's Workflows, first submission to last continuation, and what a user sees of them.

Pure functions over Workflow objects (dicts as the API returns them); the verbs in
nlfs/cli/workflow_cmds.py fetch them through nlfs.argo.client.
"""

from __future__ import annotations

from typing import Any

from nlfs.argo.render import CONTINUES_ANNOTATION, RUN_LABEL, run_label

ACTIVE_PHASES = ("", "Pending", "Running")  # "" = not yet picked up by the controller
FAILED_PHASES = ("Failed", "Error")


def selector(run: str) -> str:
    """The label selector of every Workflow of `run` (the templates label continuations too)."""
    return f"{RUN_LABEL}={run_label(run)}"


def ordered(workflows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first: a continuation is always created after the Workflow that created it."""
    return sorted(workflows, key=lambda wf: (wf.get("metadata", {}).get("creationTimestamp") or "",
                                             wf.get("metadata", {}).get("name") or ""))


def phase(workflow: dict[str, Any]) -> str:
    return (workflow.get("status") or {}).get("phase") or ""


def active(workflows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Workflows of a chain still to finish (running, or waiting for the run's mutex)."""
    return [wf for wf in workflows if phase(wf) in ACTIVE_PHASES]


def finished(workflows: list[dict[str, Any]]) -> bool:
    """True once every Workflow of the run has completed: the chain created no further one."""
    return bool(workflows) and not active(workflows)


def reason(workflow: dict[str, Any]) -> str:
    """Why a Workflow failed, in one line: the message of its first failed pod node (the
    termination message nlfs writes: `nlfs: error: ...`), else the Workflow's own message.

    Argo sets a failed Workflow's message from its entry node, which for steps templates reads
    "child '<node id>' failed" (workflow/controller/steps.go, executeStepGroup); the pod node
    holds the container's reason ("main: Error (exit code 2): <termination message>",
    workflow/controller/operator.go, inferFailedReason). Only a search stopped on its failure
    budget carries the reason in the Workflow's own message (its exit handler's, operate).
    """
    status = workflow.get("status") or {}
    pods = [n for n in (status.get("nodes") or {}).values()
            if n.get("type") == "Pod" and n.get("phase") in FAILED_PHASES and n.get("message")]
    pods.sort(key=lambda n: n.get("finishedAt") or "")
    for node in pods:
        message = str(node["message"])
        if "nlfs: error:" in message or "nlfs-evaluate: error:" in message:
            return " ".join(message.split())
    if phase(workflow) in FAILED_PHASES and pods:
        return " ".join(str(pods[-1]["message"]).split())
    return " ".join(str(status.get("message", "")).split())


def summarize(workflow: dict[str, Any]) -> dict[str, str]:
    """The columns `nlfs workflow status` shows for one Workflow."""
    meta, status = workflow.get("metadata", {}), workflow.get("status") or {}
    return {
        "name": meta.get("name", ""),
        "template": (workflow.get("spec", {}).get("workflowTemplateRef") or {}).get("name", ""),
        "phase": phase(workflow) or "Pending",
        "progress": status.get("progress", ""),
        "started": status.get("startedAt") or "",
        "finished": status.get("finishedAt") or "",
        "continues": (meta.get("annotations") or {}).get(CONTINUES_ANNOTATION, ""),
        "message": reason(workflow),
    }


def arguments(workflow: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(template, run, other parameters) of a Workflow, to submit the chain again.

    A continuation carries every parameter, as Argo's `workflow.parameters.json` has them (with
    descriptions); only names and values are kept.
    """
    spec = workflow.get("spec") or {}
    template = (spec.get("workflowTemplateRef") or {}).get("name", "")
    params = {p["name"]: str(p.get("value", "")) for p in (spec.get("arguments") or {}).get("parameters") or []
              if "name" in p}
    return template, params.pop("run", ""), params
