"""Render, submit and list the Argo Workflows that run nlfs on Kubernetes.

One rendered object (a Workflow referencing a WorkflowTemplate of `workflows/`) goes either to the
Kubernetes API (kubeconfig or in-cluster) or to an Argo Server; `status` lists a run's Workflows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from nlfs.errors import NlfsError

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
DEFAULT_NAMESPACE = "nlfs"
RUN_LABEL = "nlfs.io/run"  # value: run_label(run URI); set by the templates' labelsFrom too
RUN_ANNOTATION = "nlfs.io/run-uri"  # the URI itself (annotations may hold any text)

# The parameters each WorkflowTemplate in workflows/ declares, with their defaults (None: required).
# tests/workflows/test_templates.py checks these against the YAML, so the two cannot drift apart.
_EVALUATE_POD = {
    "image": "nlfs:0.1.0",
    "gpus": "1",
    "node-selector": "{}",
    "tolerations": '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
    "s3-secret": "nlfs-s3",
    "data": "",
}
TEMPLATES: dict[str, dict[str, str | None]] = {
    "nlfs-search": {
        "run": None, "config": "paper", "image": _EVALUATE_POD["image"], "profile": "",
        "initial-profile": "", "profile-set": "[]", "parallelism": "16", "genomes-per-pod": "2",
        "gpus": "1", "cpu": "4", "memory": "24Gi", "node-selector": "{}",
        "tolerations": _EVALUATE_POD["tolerations"], "generations-per-workflow": "4",
        "s3-secret": "nlfs-s3", "data": "", "deadline-seconds": "21600",
    },
    "nlfs-evaluate": {
        "run": "", "stage": "main", "genome": "", "loss": "cross_entropy", "profile": "",
        "profile-set": "[]", "image": _EVALUATE_POD["image"], "gpus": "1", "cpu": "4",
        "memory": "24Gi", "node-selector": "{}", "tolerations": _EVALUATE_POD["tolerations"],
        "s3-secret": "nlfs-s3", "data": "", "deadline-seconds": "21600",
    },
    "nlfs-transfer": {
        "run": None, "image": _EVALUATE_POD["image"], "profile": "", "profile-set": "[]",
        "parallelism": "16", "genomes-per-pod": "1", "gpus": "1", "cpu": "8", "memory": "48Gi",
        "node-selector": "{}", "tolerations": _EVALUATE_POD["tolerations"],
        "rounds-per-workflow": "2", "s3-secret": "nlfs-s3", "data": "",
        "deadline-seconds": "172800",
    },
}
# The parameter bounding how many generations (rounds) one Workflow runs before its continuation.
_ROUNDS_PARAM = {"nlfs-search": "generations-per-workflow", "nlfs-transfer": "rounds-per-workflow"}

# --- The bound: how large can one Workflow object grow? -------------------------------------------
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

_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b")
_SECRETISH_NAME = re.compile(r"(secret.?key|access.?key|password|passwd|token|credential)", re.I)
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_INT_PARAMS = ("parallelism", "genomes-per-pod", "generations-per-workflow", "rounds-per-workflow",
               "deadline-seconds", "gpus")


def run_label(run: str) -> str:
    """The `nlfs.io/run` label value of a run: 16 hex digits of SHA-256 of its URI.

    The same as the templates' `sprig.trunc(16, sprig.sha256sum(workflow.parameters.run))`.
    """
    return hashlib.sha256(run.encode()).hexdigest()[:16]


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


def effective_params(template: str, run: str, params: dict[str, str] | None = None) -> dict[str, str]:
    """The template's defaults, overridden by `params`, with `run`; validated."""
    declared = _declared(template)
    params = dict(params or {})
    if "run" in params:
        raise NlfsError("give the run as the RUN argument, not as -p run=...")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise NlfsError(
            f"{template} has no parameter {unknown[0]!r} (known: {', '.join(sorted(declared))})"
        )
    values = {name: (default or "") for name, default in declared.items()}
    values.update(params)
    values["run"] = run
    if declared["run"] is None and not run:
        raise NlfsError(f"{template} needs a run URI")
    _check_no_credentials(values)
    _check_values(template, values)
    return values


def render(
    template: str,
    run: str,
    params: dict[str, str] | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """The Workflow object that runs `template` for `run`, as submitted by both submission paths.

    Only parameters the user set are listed (the template supplies the rest); Argo does not let a
    Workflow override a WorkflowTemplate's pod settings, so the object carries nothing else.
    """
    values = effective_params(template, run, params)
    size = estimate_workflow_bytes(template, values)
    if size > WORKFLOW_BUDGET_BYTES:
        rounds = _ROUNDS_PARAM[template]
        raise NlfsError(
            f"one {template} Workflow could grow to ~{size // 1000} kB of status, over the "
            f"{WORKFLOW_BUDGET_BYTES // 1000} kB budget; lower {rounds} "
            f"(at most {max_rounds(template, values)} with these settings) or raise genomes-per-pod"
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


# --- Size arithmetic ---------------------------------------------------------------------------------


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
        "profile", "profile-set", "image", "gpus", "cpu", "memory", "node-selector",
        "tolerations", "s3-secret", "data", "deadline-seconds")}
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
    if template not in _ROUNDS_PARAM:
        return FIXED_BYTES + 2 * 2048  # nlfs-evaluate: one evaluation, a handful of nodes
    rounds = int(values[_ROUNDS_PARAM[template]])
    return FIXED_BYTES + sum(sum(generation_bytes(template, values, d).values()) for d in range(rounds))


def max_rounds(template: str, values: dict[str, str]) -> int:
    """The most generations (rounds) per Workflow that keep it within the budget."""
    rounds, total = 0, FIXED_BYTES
    while True:
        total += sum(generation_bytes(template, values, rounds).values())
        if total > WORKFLOW_BUDGET_BYTES:
            return rounds
        rounds += 1


# --- Validation ----------------------------------------------------------------------------------------


def _declared(template: str) -> dict[str, str | None]:
    try:
        return TEMPLATES[template]
    except KeyError:
        raise NlfsError(f"unknown template {template!r} (known: {', '.join(TEMPLATES)})") from None


def _check_no_credentials(values: dict[str, str]) -> None:
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


def _check_values(template: str, values: dict[str, str]) -> None:
    """User errors caught here rather than in a pod: JSON parameters, integers, quantities."""
    for name in _INT_PARAMS:
        if name in values:
            value = values[name]
            if not value.isdigit() or (name != "gpus" and int(value) < 1):
                raise NlfsError(f"parameter {name!r} must be a {'non-negative' if name == 'gpus' else 'positive'} integer, got {value!r}")
    for name in ("cpu", "memory"):
        if name in values and not _QUANTITY.match(values[name]):
            raise NlfsError(f"parameter {name!r} must be a Kubernetes quantity (e.g. 4, 500m, 24Gi), got {values[name]!r}")
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


# --- Submission and status -----------------------------------------------------------------------------


def submit(
    workflow: dict[str, Any],
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    argo_server: str | None = None,
) -> dict[str, Any]:
    """Create `workflow`; returns the created object (with its generated name)."""
    namespace = workflow["metadata"]["namespace"]
    if argo_server:
        body = {"namespace": namespace, "workflow": workflow}
        return _argo_request("POST", argo_server, f"/api/v1/workflows/{_quote(namespace)}", body)
    api = _custom_objects_api(kubeconfig, context)
    return _kube_call(
        api.api_client.configuration.host,
        lambda: api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, workflow),
    )


def list_run_workflows(
    run: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | None = None,
    context: str | None = None,
    argo_server: str | None = None,
) -> list[dict[str, Any]]:
    """The Workflows labelled with `run` (first submission and every continuation), oldest first."""
    selector = f"{RUN_LABEL}={run_label(run)}"
    if argo_server:
        query = urllib.parse.urlencode({"listOptions.labelSelector": selector})
        answer = _argo_request("GET", argo_server, f"/api/v1/workflows/{_quote(namespace)}?{query}")
    else:
        api = _custom_objects_api(kubeconfig, context)
        answer = _kube_call(
            api.api_client.configuration.host,
            lambda: api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                      label_selector=selector),
        )
    items = answer.get("items") or []
    return sorted(items, key=lambda wf: wf.get("metadata", {}).get("creationTimestamp") or "")


def summarize(workflow: dict[str, Any]) -> dict[str, str]:
    """The columns `nlfs workflow status` shows for one Workflow."""
    meta, status = workflow.get("metadata", {}), workflow.get("status") or {}
    return {
        "name": meta.get("name", ""),
        "template": (workflow.get("spec", {}).get("workflowTemplateRef") or {}).get("name", ""),
        "phase": status.get("phase") or "Pending",
        "progress": status.get("progress", ""),
        "started": status.get("startedAt") or "",
        "finished": status.get("finishedAt") or "",
        "continues": (meta.get("annotations") or {}).get("nlfs.io/continues", ""),
        "message": " ".join(str(status.get("message", "")).split()),
    }


def _custom_objects_api(kubeconfig: str | None, context: str | None):
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if kubeconfig or context or os.environ.get("KUBECONFIG") or os.path.exists(
            os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)
        ):
            config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as err:
        raise NlfsError(f"no usable Kubernetes configuration (kubeconfig or in-cluster): {err}") from None
    configuration.retries = 1  # one quick retry, then a one-line error
    return client.CustomObjectsApi(client.ApiClient(configuration))


def _kube_call(host: str, call: Callable[[], Any]) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return call()
    except ApiException as err:
        raise NlfsError(f"Kubernetes API at {host}: {err.status} {err.reason}: {_api_message(err.body)}") from None
    except HTTPError as err:
        raise NlfsError(f"cannot reach the Kubernetes API at {host}: {type(err).__name__}") from None


def _argo_request(method: str, server: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to an Argo Server's HTTP API; the token comes from $ARGO_TOKEN only."""
    url = server.rstrip("/") + path
    headers = {"Accept": "application/json"}
    token = os.environ.get("ARGO_TOKEN", "").strip()
    if token:
        headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    context = None
    if os.environ.get("ARGO_INSECURE_SKIP_VERIFY", "").lower() == "true":
        context = ssl._create_unverified_context()  # noqa: S323 - opt-in, as the argo CLI's flag
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise NlfsError(f"Argo Server {server}: {err.code} {err.reason}: {_api_message(err.read())}") from None
    except (urllib.error.URLError, OSError) as err:
        raise NlfsError(f"cannot reach the Argo Server at {server}: {getattr(err, 'reason', err)}") from None


def _api_message(body: Any) -> str:
    try:
        parsed = json.loads(body)
        message = parsed.get("message") or parsed
    except (TypeError, ValueError, AttributeError):
        message = body.decode(errors="replace") if isinstance(body, bytes) else body
    return " ".join(str(message).split())[:300]


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
