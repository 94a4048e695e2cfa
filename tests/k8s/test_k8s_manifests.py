"""The Kubernetes manifests of k8s/: valid for Kubernetes (kubernetes-validate --strict, offline
schemas), renderable by `kubectl kustomize`, least privilege, non-root, no real credentials."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BIN = Path(sys.executable).parent
# A Kubernetes release kubernetes-validate ships schemas for (it needs no network); every API
# used here (v1, apps/v1, rbac/v1) is stable across the releases it knows.
K8S_VERSION = "1.33.0"
# WorkflowTemplate is an Argo CRD: kubernetes-validate has no schema for it. Those documents are
# validated against Argo's own schema, strict, in tests/workflows (test_templates.py and below).
CRD_KINDS = {"WorkflowTemplate", "Workflow"}
sys.path.insert(0, str(ROOT / "tests" / "workflows"))


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make test` installs it (pip install -e '.[dev]')")
    return found


def _kustomize(directory: Path) -> list[dict]:
    proc = subprocess.run([_tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def core() -> list[dict]:
    return _kustomize(K8S)


@pytest.fixture(scope="module")
def dev() -> list[dict]:
    return _kustomize(K8S / "dev")


def _kinds(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_every_manifest_passes_kubernetes_validate_strict():
    files = _manifest_files()
    for path in files:
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert not kinds & CRD_KINDS, f"{path}: CRDs belong in workflows/"
    proc = subprocess.run([_tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, "--no-warn",
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("INFO") == sum(1 for p in files for d in yaml.safe_load_all(p.read_text()) if d)


@pytest.mark.parametrize("variant", ["core", "dev"])
def test_kustomize_renders_and_every_rendered_object_is_valid(variant, core, dev):
    import kubernetes_validate
    from argo_docs import schema_errors

    docs = core if variant == "core" else dev
    kinds = _kinds(docs)
    assert len(kinds["WorkflowTemplate"]) == 3
    for doc in docs:
        assert doc["metadata"].get("namespace", "nlfs") == "nlfs" or doc["kind"] == "Namespace"
        if doc["kind"] in CRD_KINDS:
            assert schema_errors(doc) == []
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_core_holds_the_pieces_and_no_secret(core):
    kinds = _kinds(core)
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "WorkflowTemplate"} <= set(kinds)
    # Re-applying the core must never overwrite a real Secret with a template.
    assert "Secret" not in kinds


def test_dev_adds_an_object_store_and_its_secret(dev):
    kinds = _kinds(dev)
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Secret"} <= set(kinds)
    (secret,) = kinds["Secret"]
    (deployment,) = kinds["Deployment"]
    (service,) = kinds["Service"]
    endpoint = secret["stringData"]["AWS_ENDPOINT_URL"]
    port = service["spec"]["ports"][0]["port"]
    assert endpoint == f"http://{service['metadata']['name']}.nlfs.svc:{port}"
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in deployment["spec"]["template"]["spec"]["containers"]
            for e in c["env"]}
    assert refs == {secret["metadata"]["name"]}
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), "pin the store image to a release"


def test_role_is_least_privilege_for_workflow_pods(core):
    (role,) = _kinds(core)["Role"]
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == {
        ("argoproj.io", "workflowtaskresults"): {"create", "patch"},  # the emissary executor
        ("argoproj.io", "workflows"): {"create", "get", "list", "watch"},  # the continuation
    }
    assert "*" not in json.dumps(role["rules"])
    (binding,) = _kinds(core)["RoleBinding"]
    (account,) = _kinds(core)["ServiceAccount"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "nlfs"}]


def test_templates_use_the_service_account_and_semaphore_defined_here(core):
    kinds = _kinds(core)
    account = kinds["ServiceAccount"][0]["metadata"]["name"]
    (configmap,) = kinds["ConfigMap"]
    for template in kinds["WorkflowTemplate"]:
        assert template["spec"]["serviceAccountName"] == account
    semaphores = [s for t in kinds["WorkflowTemplate"] for tmpl in t["spec"]["templates"]
                  for s in tmpl.get("synchronization", {}).get("semaphores", [])]
    assert semaphores and all(s["configMapKeyRef"]["name"] == configmap["metadata"]["name"]
                              and s["configMapKeyRef"]["key"] in configmap["data"] for s in semaphores)
    assert all(int(v) > 0 for v in configmap["data"].values())


def test_pods_run_as_non_root_without_privilege_escalation(dev):
    for deployment in _kinds(dev)["Deployment"]:
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_secrets_hold_no_real_credentials():
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] != "Secret":
                continue
            values = doc.get("stringData", {})
            assert "data" not in doc, f"{path}: placeholders belong in stringData, readable"
            assert not any(re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", v) for v in values.values())
            if path.name == "secret-template.yaml":
                assert values["AWS_ACCESS_KEY_ID"] == values["AWS_SECRET_ACCESS_KEY"] == "REPLACE_ME"
            else:
                assert "dev" in values["AWS_SECRET_ACCESS_KEY"] and "not-a-secret" in values["AWS_SECRET_ACCESS_KEY"]
