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
from argo_sim import substitute

from nlfs import workflow

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


def _base_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted((ROOT / "k8s" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                docs[doc["kind"]] = doc
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
    """nlfs.workflow.TEMPLATES (render's validation) is the YAML's parameter list, with defaults."""
    for name, doc in templates.items():
        declared = {p["name"]: p.get("value") for p in doc["spec"]["arguments"]["parameters"]}
        assert workflow.TEMPLATES[name] == declared


@pytest.mark.parametrize("name", NAMES)
def test_template_defaults_are_valid_parameter_values(name):
    values = workflow.effective_params(name, "s3://bucket/runs/r1")
    assert workflow.render(name, "s3://bucket/runs/r1")["spec"]["workflowTemplateRef"] == {"name": name}
    assert json.loads(values["tolerations"]) and isinstance(json.loads(values["node-selector"]), dict)


# --- Argo's sharp edges ------------------------------------------------------------------------------


def _evaluate_item(templates) -> dict:
    return next(t for t in templates["nlfs-evaluate"]["spec"]["templates"] if t["name"] == "evaluate-item")


def test_pod_spec_patch_renders_a_valid_gpu_pod(templates):
    import kubernetes_validate

    tmpl = _evaluate_item(templates)
    defaults = workflow.effective_params("nlfs-search", "s3://b/r")
    scope = {f"inputs.parameters.{k}": v for k, v in defaults.items()}
    patch = json.loads(substitute(tmpl["podSpecPatch"], scope))
    (main,) = patch["containers"]
    resources = main["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evaluate"},
           "spec": {"containers": [{"name": "main", "image": "nlfs:0.1.0", "resources": resources}],
                    "nodeSelector": patch["nodeSelector"], "tolerations": patch["tolerations"]}}
    kubernetes_validate.validate(pod, "1.33.0", strict=True)


def test_evaluate_pods_retry_on_infrastructure_errors_only_with_backoff(templates):
    retry = _evaluate_item(templates)["retryStrategy"]
    assert retry["retryPolicy"] == "OnError" and "expression" not in retry
    assert int(retry["limit"]) >= 1 and retry["backoff"]["duration"] and retry["backoff"]["maxDuration"]


def test_evaluate_pods_hold_the_gpu_semaphore_and_have_a_deadline(templates):
    tmpl = _evaluate_item(templates)
    (semaphore,) = tmpl["synchronization"]["semaphores"]
    configmap = _base_docs()["ConfigMap"]
    assert semaphore["configMapKeyRef"]["name"] == configmap["metadata"]["name"]
    assert semaphore["configMapKeyRef"]["key"] in configmap["data"]
    assert tmpl["activeDeadlineSeconds"] == "{{inputs.parameters.deadline-seconds}}"


def test_evaluate_pods_cache_datasets_in_an_empty_dir(templates):
    tmpl = _evaluate_item(templates)
    volumes = {v["name"]: v for v in tmpl["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in tmpl["script"]["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in tmpl["script"]["env"]}
    assert "emptyDir" in volumes[mounts[env["NLFS_CACHE"]]]


def test_every_pod_template_carries_its_own_volumes_and_security_context(templates):
    """Spec-level volumes and pod settings do not travel with templateRef: each template has its own."""
    sa = _base_docs()["ServiceAccount"]["metadata"]["name"]
    for wft_name, tmpl in _each_template():
        body = tmpl.get("container") or tmpl.get("script")
        if body is None:
            continue
        own = {v["name"] for v in tmpl.get("volumes", [])}
        assert {m["name"] for m in body.get("volumeMounts", [])} <= own, f"{wft_name}/{tmpl['name']}"
        security = body["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        pod_security = tmpl.get("securityContext") or templates[wft_name]["spec"]["securityContext"]
        if wft_name != "nlfs-evaluate" or tmpl["name"] == "evaluate-item":
            assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
            assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert (tmpl.get("serviceAccountName") or templates[wft_name]["spec"]["serviceAccountName"]) == sa


def test_workflows_are_garbage_collected_bounded_and_labelled_by_run(templates):
    for name, doc in templates.items():
        spec = doc["spec"]
        assert spec["podGC"]["strategy"] in ("OnPodSuccess", "OnPodCompletion")
        assert spec["podGC"]["deleteDelayDuration"]
        assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0 and spec["ttlStrategy"]["secondsAfterFailure"] > 0
        assert int(spec["activeDeadlineSeconds"]) > 0
        expression = spec["workflowMetadata"]["labelsFrom"][workflow.RUN_LABEL]["expression"]
        assert expression == "sprig.trunc(16, sprig.sha256sum(workflow.parameters.run))"
    assert workflow.run_label("s3://b/r") == __import__("hashlib").sha256(b"s3://b/r").hexdigest()[:16]


@pytest.mark.parametrize("name", ["nlfs-search", "nlfs-transfer"])
def test_continuation_is_a_new_workflow_of_the_same_template_not_owned_by_this_one(templates, name):
    doc = templates[name]
    tmpl = next(t for t in doc["spec"]["templates"] if t["name"] == "submit-continuation")
    assert tmpl["resource"]["action"] == "create" and tmpl["resource"]["setOwnerReference"] is False
    params = [{"name": p["name"], "value": p.get("value", "x")} for p in doc["spec"]["arguments"]["parameters"]]
    manifest = json.loads(substitute(tmpl["resource"]["manifest"], {
        "workflow.name": f"{name}-abcde", "workflow.parameters.json": json.dumps(params)}))
    assert schema_errors(manifest) == []
    assert manifest["metadata"]["generateName"] == f"{name}-" and "name" not in manifest["metadata"]
    assert manifest["spec"]["workflowTemplateRef"] == {"name": name}
    assert manifest["spec"]["entrypoint"] in {t["name"] for t in doc["spec"]["templates"]}
    assert manifest["spec"]["arguments"]["parameters"] == params
    # Nothing else: Argo refuses pod-level overrides of a WorkflowTemplate from a Workflow.
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
