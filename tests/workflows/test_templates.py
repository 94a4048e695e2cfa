"""Static checks of the WorkflowTemplates in workflows/: the strict Argo schema, references,
parameters, outputs, and the Argo sharp edges the design must stand clear of."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from argo_docs import ROOT, WORKFLOWS, load_templates, schema_errors, template_files
from argo_sim import evaluate, substitute

from nlfs import argo

SIMPLE_TAG = re.compile(r"\{\{\s*([^=][^}]*?)\s*\}\}")
EXPR_TAG = re.compile(r"\{\{=(.*?)\}\}", re.S)
INPUT_REF = re.compile(r"inputs\.parameters(?:\.([\w-]+)|\['([\w-]+)'\])")
WORKFLOW_REF = re.compile(r"workflow\.parameters(?:\.([\w-]+)|\['([\w-]+)'\])")
STEP_OUTPUT_REF = re.compile(r"steps(?:\.([\w-]+)|\['([\w-]+)'\])\.outputs\.(result|parameters\.([\w-]+))")
NAMES = [name for name in load_templates()]


def _each_template():
    for wft_name, doc in load_templates().items():
        for tmpl in doc["spec"]["templates"]:
            yield wft_name, tmpl


def _refs(pattern: re.Pattern, text: str) -> set[str]:
    return {a or b for a, b in pattern.findall(text)}


def _text(obj) -> str:
    return json.dumps(obj)


def _base_docs() -> dict[str, list[dict]]:
    docs: dict[str, list[dict]] = {}
    for path in sorted((ROOT / "k8s" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                docs.setdefault(doc["kind"], []).append(doc)
    return docs


# --- 1. schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", template_files(), ids=lambda p: p.name)
def test_template_file_validates_against_the_strict_argo_schema(path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        assert doc["kind"] == "WorkflowTemplate"
        assert schema_errors(doc) == [], f"{path.name}: {schema_errors(doc)}"


def test_strict_schema_rejects_a_misspelt_field(templates):
    doc = copy.deepcopy(templates["nlfs-search"])
    doc["spec"]["templates"][0]["retryStrategyy"] = {"limit": "1"}
    doc["spec"]["podGC"]["stratgy"] = "OnPodSuccess"
    errors = schema_errors(doc)
    assert any("retryStrategyy" in e for e in errors) and any("stratgy" in e for e in errors)


def test_kustomization_lists_every_template_file():
    listed = yaml.safe_load((WORKFLOWS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in template_files())


def test_the_three_templates_exist(templates):
    assert set(templates) == {"nlfs-search", "nlfs-evaluate", "nlfs-transfer"}


# --- 1. references, parameters, outputs ---------------------------------------------------------


def test_every_template_reference_resolves(templates):
    for wft_name, doc in templates.items():
        local = {t["name"] for t in doc["spec"]["templates"]}
        assert doc["spec"]["entrypoint"] in local
        for _, tmpl in [(w, t) for w, t in _each_template() if w == wft_name]:
            for group in tmpl.get("steps", []):
                for step in group:
                    if "templateRef" in step:
                        ref = step["templateRef"]
                        assert ref["name"] in templates, f"{wft_name}/{step['name']}: no {ref['name']}"
                        targets = {t["name"] for t in templates[ref["name"]]["spec"]["templates"]}
                        assert ref["template"] in targets, f"{wft_name}/{step['name']}: no {ref}"
                    else:
                        assert step["template"] in local, f"{wft_name}/{step['name']}: no {step['template']}"


def _target(wft_name: str, step: dict) -> dict:
    if "templateRef" in step:
        wft_name, name = step["templateRef"]["name"], step["templateRef"]["template"]
    else:
        name = step["template"]
    return next(t for t in load_templates()[wft_name]["spec"]["templates"] if t["name"] == name)


@pytest.mark.parametrize("wft_name,tmpl", list(_each_template()), ids=lambda x: x if isinstance(x, str) else x["name"])
def test_every_input_parameter_used_is_declared_and_every_declared_one_used(wft_name, tmpl):
    declared = {p["name"] for p in tmpl.get("inputs", {}).get("parameters", [])}
    body = {k: v for k, v in tmpl.items() if k != "inputs"}
    used = set()
    for tag in SIMPLE_TAG.findall(_text(body)):
        used |= _refs(INPUT_REF, tag)
    for expr in EXPR_TAG.findall(_text(body)):
        used |= _refs(INPUT_REF, expr)
    assert used <= declared, f"{wft_name}/{tmpl['name']} uses undeclared inputs {used - declared}"
    assert declared <= used, f"{wft_name}/{tmpl['name']} declares unused inputs {declared - used}"


def test_workflow_parameters_used_are_declared(templates):
    for wft_name, doc in templates.items():
        declared = {p["name"] for p in doc["spec"]["arguments"]["parameters"]}
        used = _refs(WORKFLOW_REF, _text(doc["spec"]["templates"]))
        used |= _refs(WORKFLOW_REF, _text(doc["spec"].get("workflowMetadata", {})))
        used.discard("json")  # workflow.parameters.json: Argo's built-in list of all parameters
        assert used <= declared, f"{wft_name} uses undeclared workflow parameters {used - declared}"
        assert declared <= used | {"run"}, f"{wft_name} declares unused parameters {declared - used}"


def test_templates_used_through_template_ref_read_only_their_inputs(templates):
    """Inside another Workflow, {{workflow.parameters.*}} would be the caller's: inputs only."""
    for wft_name, tmpl in _each_template():
        for group in tmpl.get("steps", []):
            for step in group:
                if "templateRef" in step and step["templateRef"]["name"] != wft_name:
                    target = _target(wft_name, step)
                    assert "workflow.parameters" not in _text(target), target["name"]


def test_step_arguments_match_the_target_inputs():
    for wft_name, tmpl in _each_template():
        for group in tmpl.get("steps", []):
            for step in group:
                target = _target(wft_name, step)
                inputs = {p["name"]: p for p in target.get("inputs", {}).get("parameters", [])}
                given = {p["name"] for p in step.get("arguments", {}).get("parameters", [])}
                assert given <= set(inputs), f"{wft_name}/{step['name']}: {given - set(inputs)} not inputs"
                required = {n for n, p in inputs.items() if "value" not in p}
                assert required <= given, f"{wft_name}/{step['name']}: missing {required - given}"


def test_every_step_output_used_is_produced_by_an_earlier_step():
    checked = 0
    for wft_name, tmpl in _each_template():
        earlier: dict[str, dict] = {}
        for group in tmpl.get("steps", []):
            for step in group:
                for dotted, bracketed, kind, param in STEP_OUTPUT_REF.findall(_text(step)):
                    name = dotted or bracketed
                    checked += 1
                    assert name in earlier, f"{wft_name}/{step['name']} reads steps.{name} before it ran"
                    producer = _target(wft_name, earlier[name])
                    if kind == "result":
                        assert "container" in producer or "script" in producer
                    else:
                        produced = {p["name"] for p in producer.get("outputs", {}).get("parameters", [])}
                        assert param in produced, f"{wft_name}: {name} produces no output {param!r}"
            earlier.update({step["name"]: step for step in group})
    assert checked >= 8  # withParam and the three `when`s of each generation/round loop


def test_python_registry_matches_the_templates_parameters(templates):
    """nlfs.argo.TEMPLATES (render's validation) is the YAML's parameter list, with defaults."""
    for name, doc in templates.items():
        declared = {p["name"]: p.get("value") for p in doc["spec"]["arguments"]["parameters"]}
        assert argo.TEMPLATES[name] == declared


@pytest.mark.parametrize("name", NAMES)
def test_template_defaults_are_valid_parameter_values(name):
    values = argo.effective_params(name, "s3://bucket/runs/r1")
    assert argo.render(name, "s3://bucket/runs/r1")["spec"]["workflowTemplateRef"] == {"name": name}
    assert json.loads(values["tolerations"]) and isinstance(json.loads(values["node-selector"]), dict)


# --- Argo's sharp edges ------------------------------------------------------------------------------


def _evaluate_item(templates) -> dict:
    return next(t for t in templates["nlfs-evaluate"]["spec"]["templates"] if t["name"] == "evaluate-item")


@pytest.mark.parametrize("gpu_resource", ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"])
def test_pod_spec_patch_renders_a_valid_gpu_pod(templates, gpu_resource):
    import kubernetes_validate

    tmpl = _evaluate_item(templates)
    defaults = argo.effective_params("nlfs-search", "s3://b/r", {"gpu-resource": gpu_resource})
    scope = {f"inputs.parameters.{k}": v for k, v in defaults.items()}
    patch = json.loads(substitute(tmpl["podSpecPatch"], scope))
    (main,) = patch["containers"]
    resources = main["resources"]
    assert resources["requests"][gpu_resource] == resources["limits"][gpu_resource] == "1"
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    # The dataset cache's size limit is requested as ephemeral storage, so the scheduler places the
    # pod where the cache fits instead of the kubelet evicting it later.
    volumes = json.loads(substitute(json.dumps(tmpl["volumes"]), scope))
    cache = next(v for v in volumes if v["name"] == "dataset-cache")
    assert resources["requests"]["ephemeral-storage"] == cache["emptyDir"]["sizeLimit"] == defaults["cache-size"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evaluate"},
           "spec": {"containers": [{"name": "main", "image": "nlfs:0.1.0", "resources": resources}],
                    "nodeSelector": patch["nodeSelector"], "tolerations": patch["tolerations"],
                    "volumes": volumes}}
    kubernetes_validate.validate(pod, "1.33.0", strict=True)


def _retries(retry: dict, exit_code: str, status: str, message: str) -> bool:
    """Would Argo retry after this attempt? The policy first, then the expression, as Argo's
    processNodeRetries does (workflow/controller/operator.go)."""
    policy = retry.get("retryPolicy") or ("Always" if retry.get("expression") else "OnFailure")
    if status == "Failed" and policy not in ("Always", "OnFailure"):
        return False
    if status == "Error" and policy not in ("Always", "OnError"):
        return False
    if "expression" not in retry:
        return True
    scope = {"lastRetry.exitCode": exit_code, "lastRetry.status": status, "lastRetry.message": message}
    return evaluate(retry["expression"], scope) is True


# (exit code, node phase, node message) of what happens to pods, as Argo's controller reports them
# (workflow/controller/operator.go: inferFailedReason, podReconciliation).
INFRASTRUCTURE = {
    "OOM kill": ("137", "Failed", "main: OOMKilled (exit code 137)"),
    "eviction": ("137", "Failed", "The node was low on resource: memory. Threshold quantity: 100Mi."),
    "node shutdown": ("143", "Failed", "Pod was terminated in response to imminent node shutdown."),
    "pod deleted (preemption, a user)": ("-1", "Error", "pod deleted"),
    "init container failed": ("-1", "Error", "init: Error (exit code 1): failed to copy the executor"),
    "wait container failed": ("0", "Failed", "pod failed: wait container did not complete successfully"),
}
DETERMINISTIC = {
    "bad input": ("2", "Failed", "main: Error (exit code 2): nlfs: error: no genome 0123456789abcdef"),
    "a bug": ("1", "Failed", "main: Error (exit code 1)"),
    "bad input mentioning an eviction": ("2", "Failed", "main: Error (exit code 2): nlfs: error: evicted"),
    "own deadline": ("137", "Failed", "Pod was active on the node longer than the specified deadline"),
}


def _pod_templates(templates):
    for wft_name, tmpl in _each_template():
        if "container" in tmpl or "script" in tmpl:
            yield wft_name, tmpl


# The search's exit handler keeps its pod's message (docs/kubernetes.md, "Failures"): no expression.
EXIT_HANDLER = "report-stop"


@pytest.mark.parametrize("case", sorted(INFRASTRUCTURE))
def test_every_pod_retries_what_infrastructure_does_to_it(templates, case):
    for wft_name, tmpl in _pod_templates(templates):
        if tmpl["name"] == EXIT_HANDLER:
            continue
        assert _retries(tmpl["retryStrategy"], *INFRASTRUCTURE[case]), f"{wft_name}/{tmpl['name']}: {case}"


def test_the_exit_handler_retries_errors_only_so_its_message_reaches_the_workflow(templates):
    """A Failed node under OnError is given up with its own message; an expression or a retry of
    Failed would give the Workflow "retryStrategy.expression evaluated to false" or "No more
    retries left" instead (operator.go, processNodeRetries)."""
    spec = templates["nlfs-search"]["spec"]
    assert spec["onExit"] == EXIT_HANDLER
    tmpl = next(t for t in spec["templates"] if t["name"] == EXIT_HANDLER)
    retry = tmpl["retryStrategy"]
    assert retry["retryPolicy"] == "OnError" and "expression" not in retry and "backoff" not in retry
    for case, (code, phase, message) in INFRASTRUCTURE.items():
        assert _retries(retry, code, phase, message) == (phase == "Error"), case
    assert tmpl["container"]["args"][:2] == ["controller", "check"]


@pytest.mark.parametrize("case", sorted(DETERMINISTIC))
def test_no_pod_retries_a_deterministic_failure(templates, case):
    for wft_name, tmpl in _pod_templates(templates):
        assert not _retries(tmpl["retryStrategy"], *DETERMINISTIC[case]), f"{wft_name}/{tmpl['name']}: {case}"


def test_retry_backoff_suits_hours_long_trainings(templates):
    """No maxDuration (it counts from the first attempt's start and becomes each retry's deadline:
    an evaluation that ran longer would never be retried); no nodeAntiAffinity (a retry on a
    one-GPU-node cluster would never be scheduled); backoff doubling from a short base."""
    for wft_name, tmpl in _each_template():
        retry = tmpl.get("retryStrategy")
        if retry is None:
            continue
        assert int(retry["limit"]) >= 3, f"{wft_name}/{tmpl['name']}"
        if tmpl["name"] == EXIT_HANDLER:
            continue
        assert "maxDuration" not in retry["backoff"] and "affinity" not in retry, f"{wft_name}/{tmpl['name']}"
        assert retry["backoff"]["duration"] and int(retry["backoff"]["factor"]) == 2
    evaluate_retry = _evaluate_item(templates)["retryStrategy"]
    assert evaluate_retry["backoff"]["duration"] == "2m"


def test_every_template_pod_has_an_explicit_command(templates):
    """Without `command`, Argo's emissary looks the image's entrypoint up in its registry, which
    fails for an image loaded into kind or in a private registry (workflowpod.go)."""
    pods = list(_pod_templates(templates))
    assert len(pods) == 5
    for wft_name, tmpl in pods:
        body = tmpl.get("container") or tmpl.get("script")
        assert body.get("command"), f"{wft_name}/{tmpl['name']} has no command"
        if "container" in tmpl:
            assert body["command"] == ["nlfs"], f"{wft_name}/{tmpl['name']}"


def test_a_failed_evaluate_pod_does_not_stop_the_search_or_the_transfer(templates):
    for name, loop in (("nlfs-search", "generation"), ("nlfs-transfer", "round")):
        tmpl = next(t for t in templates[name]["spec"]["templates"] if t["name"] == loop)
        (evaluate_step,) = [s for g in tmpl["steps"] for s in g if s["name"] == "evaluate"]
        assert evaluate_step["continueOn"] == {"failed": True, "error": True}
        planners = [s for g in tmpl["steps"] for s in g if s.get("template") in ("controller-step", "plan")]
        assert planners and all("continueOn" not in s for s in planners), "a planner failure must stop"


def test_the_search_passes_its_failure_budget_to_every_controller_step(templates):
    step = next(t for t in templates["nlfs-search"]["spec"]["templates"] if t["name"] == "controller-step")
    args = step["container"]["args"]
    assert args[args.index("--max-failed-evaluations") + 1] == "{{workflow.parameters.max-failed-evaluations}}"
    assert argo.TEMPLATES["nlfs-search"]["max-failed-evaluations"] == "10"


def test_gpus_are_limited_by_a_quota_not_a_semaphore_held_through_backoff(templates):
    """Argo holds a template's semaphore on the retry node until the last attempt ends, backoff
    included (operator.go, executeTemplate); a ResourceQuota counts only pods that exist."""
    assert "synchronization" not in _evaluate_item(templates)
    (quota,) = _base_docs()["ResourceQuota"]
    default = argo.TEMPLATES["nlfs-search"]["gpu-resource"]
    assert int(quota["spec"]["hard"][f"requests.{default}"]) > 0
    assert all(argo.TEMPLATES[name]["gpu-resource"] == default for name in argo.TEMPLATES)


def test_evaluate_pods_have_a_deadline(templates):
    tmpl = _evaluate_item(templates)
    assert tmpl["activeDeadlineSeconds"] == "{{inputs.parameters.deadline-seconds}}"


def test_evaluate_pods_cache_datasets_in_an_empty_dir(templates):
    tmpl = _evaluate_item(templates)
    volumes = {v["name"]: v for v in tmpl["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in tmpl["script"]["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in tmpl["script"]["env"]}
    assert "emptyDir" in volumes[mounts[env["NLFS_CACHE"]]]


def test_every_pod_template_carries_its_own_volumes_and_security_context(templates):
    """Spec-level volumes and pod settings do not travel with templateRef: each template has its
    own. Every container meets Pod Security `restricted` with a read-only root filesystem, and
    every path nlfs writes (/tmp, $HOME, the dataset cache) is a mounted volume."""
    for wft_name, tmpl in _each_template():
        body = tmpl.get("container") or tmpl.get("script")
        if body is None:
            continue
        own = {v["name"] for v in tmpl.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in body.get("volumeMounts", [])}
        assert set(mounts.values()) <= own, f"{wft_name}/{tmpl['name']}"
        assert {"/tmp", "/home/nlfs"} <= set(mounts), f"{wft_name}/{tmpl['name']} writes /tmp and $HOME"
        security = body["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        assert security["readOnlyRootFilesystem"] is True, f"{wft_name}/{tmpl['name']}"
        pod_security = tmpl.get("securityContext") or templates[wft_name]["spec"]["securityContext"]
        if wft_name != "nlfs-evaluate" or tmpl["name"] == "evaluate-item":
            assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
            assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}


def _accounts() -> dict[str, dict]:
    return {sa["metadata"]["name"]: sa for sa in _base_docs()["ServiceAccount"]}


def _setting(templates, wft_name: str, tmpl: dict, key: str):
    return tmpl[key] if key in tmpl else templates[wft_name]["spec"].get(key)


def test_no_pod_but_the_continuation_carries_a_token_that_may_create_workflows(templates):
    """nlfs's containers run as nlfs-workflow with no token; Argo's executor gets nlfs-executor's
    (workflowtaskresults only); only the continuation's executor runs as nlfs-continuation."""
    accounts = _accounts()
    assert set(accounts) == {"nlfs-workflow", "nlfs-executor", "nlfs-continuation"}
    for wft_name, tmpl in _each_template():
        if not ({"container", "script", "resource"} & set(tmpl)):
            continue
        where = f"{wft_name}/{tmpl['name']}"
        assert _setting(templates, wft_name, tmpl, "serviceAccountName") == "nlfs-workflow", where
        assert _setting(templates, wft_name, tmpl, "automountServiceAccountToken") is False, where
        executor = _setting(templates, wft_name, tmpl, "executor")["serviceAccountName"]
        expected = "nlfs-continuation" if tmpl["name"] == "submit-continuation" else "nlfs-executor"
        assert executor == expected, where
    for name in accounts:
        assert accounts[name]["automountServiceAccountToken"] is False
    # Argo mounts an executor's token from the Secret <account>.service-account-token.
    tokens = {s["metadata"]["name"]: s for s in _base_docs()["Secret"]}
    for name in ("nlfs-executor", "nlfs-continuation"):
        secret = tokens[f"{name}.service-account-token"]
        assert secret["type"] == "kubernetes.io/service-account-token"
        assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == name


def test_every_pod_is_labelled_for_the_network_policies(templates):
    for wft_name, tmpl in _each_template():
        if not ({"container", "script", "resource"} & set(tmpl)):
            continue
        labels = dict((templates[wft_name]["spec"].get("podMetadata") or {}).get("labels") or {})
        labels.update((tmpl.get("metadata") or {}).get("labels") or {})
        assert labels.get("app.kubernetes.io/name") == "nlfs" and labels.get("nlfs.io/role"), f"{wft_name}/{tmpl['name']}"


def test_workflows_are_garbage_collected_bounded_and_labelled_by_run(templates):
    for name, doc in templates.items():
        spec = doc["spec"]
        assert spec["podGC"]["strategy"] in ("OnPodSuccess", "OnPodCompletion")
        assert spec["podGC"]["deleteDelayDuration"]
        assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0 and spec["ttlStrategy"]["secondsAfterFailure"] > 0
        assert int(spec["activeDeadlineSeconds"]) > 0
        expression = spec["workflowMetadata"]["labelsFrom"][argo.RUN_LABEL]["expression"]
        assert expression == "sprig.trunc(16, sprig.sha256sum(workflow.parameters.run))"
    assert argo.run_label("s3://b/r") == __import__("hashlib").sha256(b"s3://b/r").hexdigest()[:16]


@pytest.mark.parametrize("name", ["nlfs-search", "nlfs-transfer"])
def test_one_chain_per_run_every_workflow_of_a_run_holds_its_mutex(templates, name):
    (mutex,) = templates[name]["spec"]["synchronization"]["mutexes"]
    scope = {"workflow.parameters.run": "s3://b/r"}
    assert substitute(mutex["name"], scope) == f"nlfs-run-{argo.run_label('s3://b/r')}"
    assert "synchronization" not in templates["nlfs-evaluate"]["spec"]  # one evaluation may run beside


@pytest.mark.parametrize("name", ["nlfs-search", "nlfs-transfer"])
def test_continuation_is_a_new_workflow_of_the_same_template_not_owned_by_this_one(templates, name):
    doc = templates[name]
    tmpl = next(t for t in doc["spec"]["templates"] if t["name"] == "submit-continuation")
    # `apply` of a name fixed by this Workflow's uid: a retried step finds the Workflow it created
    # instead of starting a second chain (generateName + create would).
    assert tmpl["resource"]["action"] == "apply" and tmpl["resource"]["setOwnerReference"] is False
    params = [{"name": p["name"], "value": p.get("value", "x")} for p in doc["spec"]["arguments"]["parameters"]]
    scope = {"workflow.name": f"{name}-abcde", "workflow.uid": "0b7c5a4e-6f1d-4c55-9a7e-2d9f1c3b8e10",
             "workflow.parameters.json": json.dumps(params)}
    manifest = json.loads(substitute(tmpl["resource"]["manifest"], scope))
    again = json.loads(substitute(tmpl["resource"]["manifest"], scope))
    assert schema_errors(manifest) == []
    assert manifest["metadata"]["name"] == again["metadata"]["name"] == f"{name}-{scope['workflow.uid']}"
    assert "generateName" not in manifest["metadata"] and len(manifest["metadata"]["name"]) <= 63
    assert manifest["metadata"]["annotations"]["nlfs.io/continues"] == f"{name}-abcde"
    assert manifest["spec"]["workflowTemplateRef"] == {"name": name}
    assert manifest["spec"]["entrypoint"] in {t["name"] for t in doc["spec"]["templates"]}
    assert manifest["spec"]["arguments"]["parameters"] == params
    # Nothing else: under templateReferencing Strict/Secure a Workflow may override only an allow-list.
    assert set(manifest["spec"]) == {"workflowTemplateRef", "entrypoint", "arguments"}


def test_generation_recursion_is_bounded_by_the_parameter(templates):
    for name, loop, bound in (("nlfs-search", "generation", "generations-per-workflow"),
                              ("nlfs-transfer", "round", "rounds-per-workflow")):
        tmpl = next(t for t in templates[name]["spec"]["templates"] if t["name"] == loop)
        last = {s["name"]: s for s in tmpl["steps"][-1]}
        assert last["next"]["template"] == loop
        assert "{{inputs.parameters.remaining}} > 1" in last["next"]["when"]
        assert "{{inputs.parameters.remaining}} <= 1" in last["continuation"]["when"]
        assert last["next"]["arguments"]["parameters"][0]["value"] == "{{=asInt(inputs.parameters.remaining) - 1}}"
        entries = [t for t in templates[name]["spec"]["templates"] if t["name"] in ("search", "transfer", "continue")]
        assert all(f"{{{{workflow.parameters.{bound}}}}}" in _text(t) for t in entries)
