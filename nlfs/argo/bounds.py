"""How large one Workflow object grows: a model of Argo's node status, measured in bytes.

`nlfs workflow render|submit` refuses a Workflow whose status could outgrow the budget below and
names the largest number of generations (rounds) per Workflow that fits.
"""

from __future__ import annotations

import json
import math
from typing import Any

from nlfs.argo.params import ROUNDS_PARAM

# Argo keeps a Workflow, with one status entry per node, as one Kubernetes object in etcd. Argo's docs:
# "resources must be under 1MB"; past that it compresses the node status and then needs a database
# to offload it (docs/offloading-large-workflows.md). etcd itself rejects requests over 1.5 MiB by
# default (etcd.io/docs/latest/dev-guide/limit). We refuse to render a Workflow whose *uncompressed*
# status could exceed a quarter of Argo's 1 MB, so compression and offloading are never needed.
ARGO_OBJECT_LIMIT_BYTES = 1_000_000
WORKFLOW_BUDGET_BYTES = ARGO_OBJECT_LIMIT_BYTES // 4
# The spec part: status.storedWorkflowTemplateSpec (the template's spec) and status.storedTemplates
# (each template used once, e.g. evaluate-item). tests/workflows/test_bounds.py checks the real
# templates stay below this.
FIXED_BYTES = 32 * 1024


def _node(name: str, *, display: str | None = None, inputs: dict[str, str] | None = None,
          outputs: dict[str, str] | None = None, children: int = 0, pod: bool = False) -> dict[str, Any]:
    """A representative Argo NodeStatus entry (the fields Argo writes for a finished node)."""
    node_id = "nlfs-search-x7k2p-1234567890"
    node: dict[str, Any] = {
        "id": node_id, "name": name, "displayName": display or name.rsplit(".", 1)[-1],
        "type": "Pod" if pod else "Retry", "templateName": "evaluate-item",
        "templateRef": {"name": "nlfs-evaluate", "template": "evaluate-item"},
        "templateScope": "namespaced/nlfs-search", "phase": "Succeeded", "boundaryID": node_id,
        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:10:00Z", "progress": "1/1",
        "resourcesDuration": {"cpu": 123456, "memory": 1234567, "nvidia.com/gpu": 12345},
        "children": [node_id] * children, "outboundNodes": [node_id],
    }
    if pod:
        node.update(hostNodeName="gpu-node-000.cluster.example.internal",
                    message="", nodeFlag={"retried": True})
        node["outputs"] = {"exitCode": "0"}
    if inputs:
        node["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
    if outputs:
        node.setdefault("outputs", {})["parameters"] = [{"name": k, "value": v} for k, v in outputs.items()]
    return node


def _size(node: dict[str, Any]) -> int:
    return len(json.dumps(node, separators=(",", ":"))) + 64  # + the map key and the taskResults entry


def generation_bytes(template: str, values: dict[str, str], depth: int) -> dict[str, int]:
    """Status bytes one generation (round) adds at recursion depth `depth`, term by term."""
    workers = int(values["parallelism"])
    per_pod = int(values["genomes-per-pod"])
    pods = math.ceil(workers / per_pod)
    item = json.dumps({"batch": 99999, "genomes": ["0123456789abcdef"] * per_pod,
                       "run": values["run"], "stage": "initial"})
    items = json.dumps([json.loads(item)] * pods)
    # Recursion nests node names: each level adds "[2].next" to every name below it.
    prefix = f"{template}-x7k2p[1].generation" + "[2].next" * depth
    pod_inputs = {k: values.get(k, "") for k in (
        "profile", "profile-set", "image", "gpus", "gpu-resource", "cpu", "memory", "node-selector",
        "tolerations", "s3-secret", "data", "deadline-seconds", "cache-size")}
    pod_inputs.update(item=item, **{"stage-profiles": '{"main": "%s"}' % values.get("profile", "")})
    evaluate_display = f"evaluate({pods}:{item})"
    terms = {
        # generation steps node + its 3 step groups + the 2 skipped branches of the last group
        "steps, groups, skipped": _size(_node(prefix, inputs={"remaining": "99"}, children=3))
        + 5 * _size(_node(prefix + "[2]", children=pods)),
        # controller step: retry node + pod node, both holding the items list and done
        "controller": 2 * _size(_node(prefix + "[0].controller", pod=True,
                                      outputs={"items": items, "done": "false"}, children=1)),
        # evaluate fan-out: per pod a retry node and a pod node, both holding all inputs
        "evaluate": pods * 2 * _size(_node(f"{prefix}[1].{evaluate_display}", display=evaluate_display,
                                           inputs=pod_inputs, pod=True, children=1)),
    }
    return terms


def estimate_workflow_bytes(template: str, values: dict[str, str]) -> int:
    """Upper estimate of one Workflow object's size at its largest (all generations finished)."""
    if template not in ROUNDS_PARAM:
        return FIXED_BYTES + 2 * 2048  # nlfs-evaluate: one evaluation, a handful of nodes
    rounds = int(values[ROUNDS_PARAM[template]])
    return FIXED_BYTES + sum(sum(generation_bytes(template, values, d).values()) for d in range(rounds))


def max_rounds(template: str, values: dict[str, str]) -> int:
    """The most generations (rounds) per Workflow that keep it within the budget."""
    rounds, total = 0, FIXED_BYTES
    while True:
        total += sum(generation_bytes(template, values, rounds).values())
        if total > WORKFLOW_BUDGET_BYTES:
            return rounds
        rounds += 1
