"""The Kubernetes manifests of k8s/: valid for Kubernetes (kubernetes-validate --strict, offline
schemas), renderable by `kubectl kustomize`, least privilege, hardened (Pod Security `restricted`
enforced, default-deny network policies, read-only root filesystems), no real credentials."""

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


def test_core_holds_the_pieces_and_no_credentials(core):
    kinds = _kinds(core)
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "ResourceQuota",
            "WorkflowTemplate"} <= set(kinds)
    # Re-applying the core must never overwrite a real Secret with a template: its only Secrets
    # are the executors' token Secrets, which Kubernetes fills in itself.
    for secret in kinds["Secret"]:
        assert secret["type"] == "kubernetes.io/service-account-token"
        assert "data" not in secret and "stringData" not in secret


def test_dev_adds_an_object_store_and_its_secret(dev):
    kinds = _kinds(dev)
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Secret"} <= set(kinds)
    (secret,) = [s for s in kinds["Secret"] if s.get("type") != "kubernetes.io/service-account-token"]
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


def _rules(role: dict) -> dict[tuple[str, str], set[str]]:
    return {(g, r): set(rule["verbs"]) for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"]}


def test_only_the_continuation_may_create_workflows_and_no_account_reads_secrets(core):
    """Issue 11, done 4: one least-privilege account per job; nlfs-workflow (every pod) has none."""
    kinds = _kinds(core)
    roles = {r["metadata"]["name"]: r for r in kinds["Role"]}
    bindings = {b["metadata"]["name"]: b for b in kinds["RoleBinding"]}
    accounts = {a["metadata"]["name"] for a in kinds["ServiceAccount"]}
    assert accounts == {"nlfs-workflow", "nlfs-executor", "nlfs-continuation"}
    assert _rules(roles["nlfs-executor"]) == {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
    assert _rules(roles["nlfs-continuation"]) == {
        ("argoproj.io", "workflowtaskresults"): {"create", "patch"},
        ("argoproj.io", "workflows"): {"get", "create", "patch"},  # kubectl apply of the next Workflow
    }
    bound = {b["subjects"][0]["name"]: b["roleRef"]["name"] for b in bindings.values()}
    assert bound == {"nlfs-executor": "nlfs-executor", "nlfs-continuation": "nlfs-continuation"}
    may_create = [name for name, role in roles.items()
                  if any("create" in v and r == "workflows" for (_, r), v in _rules(role).items())]
    assert may_create == ["nlfs-continuation"]
    text = json.dumps([r["rules"] for r in roles.values()])
    assert "*" not in text and "secrets" not in text and "pods" not in text


def test_templates_use_the_accounts_and_quota_defined_here(core):
    kinds = _kinds(core)
    accounts = {a["metadata"]["name"] for a in kinds["ServiceAccount"]}
    for template in kinds["WorkflowTemplate"]:
        spec = template["spec"]
        assert spec["serviceAccountName"] in accounts and spec["executor"]["serviceAccountName"] in accounts
        for tmpl in spec["templates"]:
            assert tmpl.get("serviceAccountName", spec["serviceAccountName"]) in accounts
            assert (tmpl.get("executor") or spec["executor"])["serviceAccountName"] in accounts
            assert "synchronization" not in tmpl  # a semaphore would be held through retry backoff
    (quota,) = kinds["ResourceQuota"]
    assert all(int(v) > 0 for v in quota["spec"]["hard"].values())
    assert set(quota["spec"]["hard"]) == {"requests.nvidia.com/gpu"}


def test_the_namespace_enforces_the_restricted_pod_security_standard(core):
    """Issue 12, point 5."""
    (namespace,) = _kinds(core)["Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def _containers(holder: dict) -> list[dict]:
    out = []
    for key in ("container", "script"):
        if isinstance(holder.get(key), dict):
            out.append(holder[key])
    return out + list(holder.get("containers") or [])


@pytest.mark.parametrize("variant", ["core", "dev"])
def test_every_pod_satisfies_the_restricted_profile_with_a_read_only_root(variant, core, dev):
    """Issue 12, point 5: Pod Security `restricted` (non-root, RuntimeDefault seccomp, no privilege
    escalation, every capability dropped), and nlfs's containers write only to mounted volumes."""
    docs = dev if variant == "dev" else core
    pods = []
    for template in _kinds(docs)["WorkflowTemplate"]:
        for tmpl in template["spec"]["templates"]:
            if "container" in tmpl or "script" in tmpl:
                pods.append((tmpl.get("securityContext") or template["spec"]["securityContext"],
                             _containers(tmpl), tmpl.get("volumes", [])))
    for deployment in _kinds(docs).get("Deployment", []):
        spec = deployment["spec"]["template"]["spec"]
        pods.append((spec["securityContext"], spec["containers"], spec["volumes"]))
    assert len(pods) == (6 if variant == "dev" else 5)
    for pod_security, containers, volumes in pods:
        assert pod_security["runAsNonRoot"] is True and pod_security.get("runAsUser", 1) != 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
            assert not security.get("privileged") and "add" not in security["capabilities"]
            if str(container.get("image", "")).startswith("chrislusf/seaweedfs"):
                continue  # the dev store writes only to its volume, but its image is not ours
            assert security["readOnlyRootFilesystem"] is True
            assert {"/tmp", "/home/nlfs"} <= {m["mountPath"] for m in container["volumeMounts"]}
        assert all("hostPath" not in v for v in volumes)


def _policies(docs: list[dict]) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in _kinds(docs)["NetworkPolicy"]}


def test_network_policies_deny_by_default_and_allow_only_the_egress_pods_need(core, dev):
    """Issue 12, point 5: default deny; DNS; S3 for nlfs's pods; the API for Argo's executor."""
    policies = _policies(core)
    assert set(policies) == {"nlfs-default-deny", "nlfs-allow-dns", "nlfs-allow-s3", "nlfs-allow-kubernetes-api"}
    deny = policies["nlfs-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    assert not any(p.get("ingress") for p in policies.values()), "nothing may connect to nlfs's pods"
    dns = policies["nlfs-allow-dns"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    s3 = policies["nlfs-allow-s3"]
    assert s3["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "nlfs"}}
    assert [p["port"] for p in s3["egress"][0]["ports"]] == [443]
    api = policies["nlfs-allow-kubernetes-api"]
    assert api["podSelector"] == {"matchExpressions": [{"key": "workflows.argoproj.io/workflow",
                                                        "operator": "Exists"}]}
    assert sorted(p["port"] for p in api["egress"][0]["ports"]) == [443, 6443]
    # The dev store: reachable by nlfs's pods on its S3 port only.
    dev_policies = _policies(dev)
    store = dev_policies["seaweedfs-ingress"]
    assert store["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nlfs"}}}]
    assert store["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8333}]
    assert dev_policies["nlfs-allow-dev-s3"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8333}]


def test_every_pod_template_carries_the_labels_the_policies_select(core):
    for template in _kinds(core)["WorkflowTemplate"]:
        pod_labels = (template["spec"].get("podMetadata") or {}).get("labels") or {}
        for tmpl in template["spec"]["templates"]:
            if {"container", "script", "resource"} & set(tmpl):
                labels = {**pod_labels, **((tmpl.get("metadata") or {}).get("labels") or {})}
                assert labels["app.kubernetes.io/name"] == "nlfs", tmpl["name"]


def test_secrets_hold_no_real_credentials():
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] != "Secret" or doc.get("type") == "kubernetes.io/service-account-token":
                continue
            values = doc.get("stringData", {})
            assert "data" not in doc, f"{path}: placeholders belong in stringData, readable"
            assert not any(re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", v) for v in values.values())
            if path.name == "secret-template.yaml":
                assert values["AWS_ACCESS_KEY_ID"] == values["AWS_SECRET_ACCESS_KEY"] == "REPLACE_ME"
            else:
                assert "dev" in values["AWS_SECRET_ACCESS_KEY"] and "not-a-secret" in values["AWS_SECRET_ACCESS_KEY"]
