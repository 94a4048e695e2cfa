"""`nlfs workflow ...` against a local HTTP server standing in for the Kubernetes API and for an
Argo Server (argo_api.FakeApi): the requests nlfs sends, through the kubernetes client or through
Hera's WorkflowsService, are asserted, and the Workflow sent is exactly the one `render` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from argo_api import FakeApi
from workflow_cli import run as cli

from nlfs import argo
from nlfs.argo import settings
from nlfs.argo.client import KubernetesBackend
from nlfs.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
RUN = "s3://bucket/runs/r1"
LABEL = {"app.kubernetes.io/name": "nlfs", argo.RUN_LABEL: argo.run_label(RUN)}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAQQQQTESTONLY0000", "AWS_SECRET_ACCESS_KEY": "wJalr-test-only-9f8e7d6c5b4a",
               "ARGO_TOKEN": "Bearer test-token-5d41402abc4b2a76"}
# An AWS key id, a `aws_secret_access_key = ...` assignment, a private key block.
KEY_PATTERNS = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b|aws_secret_access_key[ \t]*[=:][ \t]*\S|BEGIN [A-Z ]*PRIVATE KEY",
                          re.I)


@pytest.fixture
def api():
    server = FakeApi()
    yield server
    server.close()


@pytest.fixture
def kubeconfig(tmp_path: Path, api: FakeApi) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": api.url}}],
        "users": [{"name": "test", "user": {"token": "kube-test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "ignored"}}],
    }))
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No developer kubeconfig, Argo server or credentials leak into these tests."""
    for name in ("KUBECONFIG", "ARGO_SERVER", "ARGO_TOKEN", "ARGO_SECURE", "ARGO_BASE_HREF", "ARGO_NAMESPACE",
                 "ARGO_INSECURE_SKIP_VERIFY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def argo_env(monkeypatch, api):
    """The environment the argo CLI documents: host:port, no scheme, TLS off, a token."""
    monkeypatch.setenv("ARGO_SERVER", api.host_port)
    monkeypatch.setenv("ARGO_SECURE", "false")
    monkeypatch.setenv("ARGO_TOKEN", "Bearer argo-test-token")
    monkeypatch.setenv("ARGO_NAMESPACE", "research")
    return api


def _chain(api: FakeApi, namespace: str, phases: tuple[list[str], list[str]]) -> None:
    """A run's first Workflow and its continuation (which carries every parameter, described)."""
    params = [{"name": "run", "value": RUN, "description": "run URI"},
              {"name": "parallelism", "value": "8"}, {"name": "gpus", "value": "1"}]
    api.add("nlfs-search-aaaaa", namespace, LABEL, phases=phases[0], created="2026-01-01T00:00:00Z",
            params=params[:2])
    api.add("nlfs-search-0b7c5a4e", namespace, LABEL, phases=phases[1], created="2026-01-02T00:00:00Z",
            params=params, continues="nlfs-search-aaaaa")


def _posts(api: FakeApi) -> list[dict]:
    return [r for r in api.requests if r["method"] == "POST"]


def test_cli_registers_the_workflow_verbs():
    assert "nlfs.cli.workflow_cmds" in cli_main.VERB_MODULES


def test_submit_sends_exactly_the_workflow_render_prints(api, kubeconfig):
    params = ["-p", "parallelism=8", "-p", "gpus=2", "-p", 'node-selector={"gpu": "h100"}']
    code, out, err = cli(["render", RUN, "-n", "research", "-o", "json", *params])
    assert code == 0, err
    rendered = json.loads(out)
    code, out, err = cli(["submit", RUN, "-n", "research", "--kubeconfig", str(kubeconfig), *params])
    assert code == 0, err
    listing, (request,) = api.requests[0], _posts(api)
    assert listing["method"] == "GET" and listing["query"]["labelSelector"] == [f"nlfs.io/run={argo.run_label(RUN)}"]
    assert request["path"] == "/apis/argoproj.io/v1alpha1/namespaces/research/workflows"
    assert request["body"] == rendered
    assert request["headers"]["authorization"] == "Bearer kube-test-token"
    assert "nlfs-search-new01" in out
    assert rendered["spec"] == {"workflowTemplateRef": {"name": "nlfs-search"}, "arguments": {"parameters": [
        {"name": "run", "value": RUN}, {"name": "parallelism", "value": "8"}, {"name": "gpus", "value": "2"},
        {"name": "node-selector", "value": '{"gpu": "h100"}'}]}}
    assert rendered["metadata"]["labels"][argo.RUN_LABEL] == argo.run_label(RUN)


def test_render_yaml_and_json_are_the_same_object():
    _, as_yaml, _ = cli(["render", RUN, "-t", "nlfs-transfer"])
    _, as_json, _ = cli(["render", RUN, "-t", "nlfs-transfer", "-o", "json"])
    assert yaml.safe_load(as_yaml) == json.loads(as_json)
    assert json.loads(as_json)["metadata"]["generateName"] == "nlfs-transfer-"


def test_argo_cli_environment_drives_submit_status_watch_logs_and_stop_through_hera(argo_env):
    """Issue 11, done 3: ARGO_SERVER=host:port and ARGO_SECURE=false, as the argo CLI wants them."""
    api = argo_env
    _, rendered, _ = cli(["render", RUN, "-o", "json"])
    code, out, err = cli(["submit", RUN])
    assert code == 0, err
    (create,) = _posts(api)
    assert create["path"] == "/api/v1/workflows/research"
    assert create["body"] == {"namespace": "research",
                              "workflow": {**json.loads(rendered), "metadata": {
                                  **json.loads(rendered)["metadata"], "namespace": "research"}}}
    assert create["headers"]["authorization"] == "Bearer argo-test-token"
    assert create["headers"]["user-agent"].startswith("python-requests")  # Hera's requests session
    new = "nlfs-search-new01"
    assert f"ui: http://{api.host_port}/workflows/research/{new}?tab=workflow" in out

    api.workflows.clear()
    _chain(api, "research", (["Succeeded"], ["Running", "Running", "Succeeded"]))
    code, out, err = cli(["status", RUN])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "TEMPLATE", "PHASE"]
    assert [line.split()[0] for line in lines[1:3]] == ["nlfs-search-aaaaa", "nlfs-search-0b7c5a4e"]
    assert lines[3] == f"ui: http://{api.host_port}/workflows/research/nlfs-search-0b7c5a4e?tab=workflow"
    listing = api.requests[-1]
    assert listing["path"] == "/api/v1/workflows/research"
    assert listing["query"]["listOptions.labelSelector"] == [f"nlfs.io/run={argo.run_label(RUN)}"]

    code, out, err = cli(["watch", RUN, "--interval", "0.01"])
    assert code == 0, err
    assert "nlfs-search-0b7c5a4e  Running" in out and "nlfs-search-0b7c5a4e  Succeeded" in out
    assert out.splitlines()[-1].endswith("the chain ended, nlfs-search-0b7c5a4e Succeeded")

    api.logs = {"nlfs-search-aaaaa": [("nlfs-search-aaaaa-evaluate-1", "genome=0123 epoch=1 val_accuracy=0.5")],
                "nlfs-search-0b7c5a4e": [("nlfs-search-0b7c5a4e-controller-2", "batch 3"),
                                         ("nlfs-search-0b7c5a4e-evaluate-3", "genome=4567 epoch=2")]}
    code, out, err = cli(["logs", RUN])
    assert code == 0, err
    assert out.splitlines() == ["nlfs-search-aaaaa-evaluate-1: genome=0123 epoch=1 val_accuracy=0.5",
                                "nlfs-search-0b7c5a4e-controller-2: batch 3",
                                "nlfs-search-0b7c5a4e-evaluate-3: genome=4567 epoch=2"]
    log_requests = [r for r in api.requests if r["path"].endswith("/log")]
    assert [r["path"] for r in log_requests] == ["/api/v1/workflows/research/nlfs-search-aaaaa/log",
                                                 "/api/v1/workflows/research/nlfs-search-0b7c5a4e/log"]
    assert all(r["query"]["logOptions.container"] == ["main"] for r in log_requests)

    api.phases["nlfs-search-0b7c5a4e"] = ["Running"]
    code, out, err = cli(["stop", RUN])
    assert code == 0, err
    (stop,) = [r for r in api.requests if r["method"] == "PUT"]
    assert stop["path"] == "/api/v1/workflows/research/nlfs-search-0b7c5a4e/stop"
    assert stop["body"] == {"name": "nlfs-search-0b7c5a4e", "namespace": "research"}
    assert "nlfs-search-0b7c5a4e stopped" in out
    assert all(r["path"].startswith("/api/v1/") for r in api.requests)


def test_logs_follow_the_chain_until_it_ends(argo_env):
    api = argo_env
    _chain(api, "research", (["Succeeded"], ["Running", "Running", "Succeeded"]))
    api.logs = {"nlfs-search-0b7c5a4e": [("pod-1", "epoch=1")]}
    code, out, err = cli(["logs", RUN, "-f"])
    assert code == 0, err and out.splitlines() == ["pod-1: epoch=1"]
    follows = [r["query"].get("logOptions.follow") for r in api.requests if r["path"].endswith("/log")]
    # The finished one read, the running one followed (Hera sends Python's "True", which the Argo
    # Server's gRPC gateway parses with Go's strconv.ParseBool, as it does "true").
    assert follows == [None, ["True"]]


def test_base_href_reaches_a_server_behind_an_ingress(monkeypatch):
    api = FakeApi(base_href="/argo")
    try:
        monkeypatch.setenv("ARGO_SERVER", api.host_port)
        monkeypatch.setenv("ARGO_SECURE", "false")
        monkeypatch.setenv("ARGO_BASE_HREF", "/argo/")
        code, out, err = cli(["status", RUN])
        assert code == 0, err
        assert api.requests[0]["path"] == "/argo/api/v1/workflows/nlfs"
    finally:
        api.close()


def test_settings_read_the_environment_as_the_argo_cli_does():
    read = settings.server_from
    assert read(None, {}) is None and read(None, {"ARGO_SERVER": ""}) is None
    server = read(None, {"ARGO_SERVER": "argo.example.com:2746"})
    assert server.base_url == "https://argo.example.com:2746/"  # TLS unless ARGO_SECURE is "false"
    assert server.token is None and not server.insecure_skip_verify
    assert read(None, {"ARGO_SERVER": "h:1", "ARGO_SECURE": "no"}).secure  # only "false" turns TLS off
    env = {"ARGO_SERVER": "h:1", "ARGO_SECURE": "false", "ARGO_BASE_HREF": "/argo",
           "ARGO_INSECURE_SKIP_VERIFY": "true", "ARGO_TOKEN": ""}
    server = read(None, env)
    assert server.base_url == "http://h:1/argo/" and server.insecure_skip_verify and server.token == ""
    assert read(None, {**env, "ARGO_INSECURE_SKIP_VERIFY": "1"}).insecure_skip_verify is False
    assert read("other:9", env).host_port == "other:9"  # the flag wins over $ARGO_SERVER
    assert read("https://h:443/base", {}).base_url == "https://h:443/base/"
    assert settings.namespace_from(None, {"ARGO_NAMESPACE": "team"}) == "team"
    assert settings.namespace_from("mine", {"ARGO_NAMESPACE": "team"}) == "mine"
    assert settings.namespace_from(None, {}) == "nlfs"


@pytest.mark.parametrize("where", ["flag", "env"])
@pytest.mark.parametrize("address", ["http://user:s3cr3t-pass@argo.example.com",
                                     "https://s3cr3t-pass@argo.example.com:2746",
                                     "user:s3cr3t-pass@argo.example.com:2746"])
def test_an_argo_server_address_with_credentials_is_refused_and_never_printed(monkeypatch, where, address):
    """Issue 12, point 4: never print credentials in a URL."""
    argv = ["submit", RUN] + (["--argo-server", address] if where == "flag" else [])
    if where == "env":
        monkeypatch.setenv("ARGO_SERVER", address)
    code, out, err = cli(argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "s3cr3t" not in err and "credentials" in err and "ARGO_TOKEN" in err


def test_redact_hides_userinfo_and_query_values():
    assert settings.redact("https://u:p@h:1/x?token=abc&x=1") == "https://***@h:1/x?token=***&x=***"
    assert settings.redact("http://h:1/x") == "http://h:1/x"


def test_nothing_in_nlfs_builds_argo_server_urls_by_hand():
    """Hera's WorkflowsService builds every Argo Server path; nlfs gives it a base URL only."""
    for path in (ROOT / "nlfs").rglob("*.py"):
        text = path.read_text()
        assert "api/v1" not in text and "urllib.request" not in text, path


def test_api_refusal_is_one_line_and_exit_2(kubeconfig, api, monkeypatch):
    api.refuse = (403, 'workflows.argoproj.io is forbidden: User "u" cannot create resource\nin namespace "nlfs"')
    code, out, err = cli(["submit", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "403" in err and "forbidden" in err
    monkeypatch.setenv("ARGO_SECURE", "false")
    code, out, err = cli(["submit", RUN, "--argo-server", api.host_port])
    assert code == 2 and err.count("\n") == 1 and "refused" in err and "forbidden" in err


def test_unreachable_api_is_one_line_and_exit_2(tmp_path, api, kubeconfig, monkeypatch):
    api.close()
    code, _, err = cli(["submit", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 2 and err.count("\n") == 1 and "cannot reach" in err
    monkeypatch.setenv("ARGO_SECURE", "false")
    code, _, err = cli(["status", RUN, "--argo-server", api.host_port])
    assert code == 2 and err.count("\n") == 1 and f"cannot reach the Argo Server at http://{api.host_port}" in err


def test_no_kubernetes_configuration_is_one_line_and_exit_2():
    code, _, err = cli(["submit", RUN])
    assert code == 2 and err.count("\n") == 1 and "Kubernetes configuration" in err


def test_in_cluster_configuration_is_used_without_a_kubeconfig(monkeypatch, tmp_path):
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("in-cluster-token")
    (tmp_path / "ca.crt").write_text("not a real certificate")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert KubernetesBackend(None, None).host == "https://10.96.0.1:443"


def test_status_stop_and_logs_through_the_kubernetes_api(api, kubeconfig):
    _chain(api, "nlfs", (["Succeeded"], ["Running"]))
    api.logs = {"nlfs-search-0b7c5a4e": [("nlfs-search-0b7c5a4e-evaluate-1", "epoch=1")]}
    code, out, err = cli(["status", RUN, "--kubeconfig", str(kubeconfig), "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["nlfs-search-aaaaa", "nlfs-search-0b7c5a4e"]
    assert rows[1]["continues"] == "nlfs-search-aaaaa" and "ui" not in rows[1]
    code, out, err = cli(["stop", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 0, err
    (patch,) = [r for r in api.requests if r["method"] == "PATCH"]
    assert patch["path"].endswith("/namespaces/nlfs/workflows/nlfs-search-0b7c5a4e")
    assert patch["body"] == {"spec": {"shutdown": "Stop"}}
    assert patch["headers"]["content-type"] == "application/merge-patch+json"
    code, out, err = cli(["logs", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 0 and out.splitlines() == ["nlfs-search-0b7c5a4e-evaluate-1: epoch=1"], err
    code, _, err = cli(["logs", RUN, "-f", "--kubeconfig", str(kubeconfig)])
    assert code == 2 and "needs an Argo Server" in err


def test_submit_and_resubmit_refuse_a_second_chain_on_a_run(argo_env):
    api = argo_env
    _chain(api, "research", (["Succeeded"], ["Running"]))
    for verb in (["submit", RUN], ["resubmit", RUN]):
        code, out, err = cli(verb)
        assert code == 2 and err.count("\n") == 1 and "nlfs-search-0b7c5a4e (Running)" in err
    assert _posts(api) == []
    # A single evaluation takes no run mutex: it may run beside the search.
    code, _, err = cli(["submit", RUN, "-t", "nlfs-evaluate", "-p", "genome=0123456789abcdef"])
    assert code == 0, err


def test_resubmit_starts_the_run_again_with_the_last_workflows_parameters(argo_env):
    api = argo_env
    _chain(api, "research", (["Succeeded"], ["Failed"]))
    code, out, err = cli(["resubmit", RUN, "-p", "gpus=2"])
    assert code == 0, err
    (create,) = _posts(api)
    sent = create["body"]["workflow"]
    assert sent["spec"]["workflowTemplateRef"] == {"name": "nlfs-search"}
    assert sent["spec"]["arguments"]["parameters"] == [
        {"name": "run", "value": RUN}, {"name": "parallelism", "value": "8"}, {"name": "gpus", "value": "2"}]
    assert sent["metadata"]["labels"][argo.RUN_LABEL] == argo.run_label(RUN)
    assert "nlfs-search-new01 created in namespace research" in out


def test_resubmit_of_an_unknown_run_is_one_line(argo_env):
    code, _, err = cli(["resubmit", RUN])
    assert code == 2 and err.count("\n") == 1 and "no Workflow of" in err


def test_lint_asks_the_argo_server_about_the_workflow_and_the_template_files(argo_env):
    api = argo_env
    files = [str(ROOT / "workflows" / f"{n}.yaml") for n in ("nlfs-evaluate", "nlfs-search")]
    code, out, err = cli(["lint", RUN, "--template-file", files[0], "--template-file", files[1]])
    assert code == 0, err
    posts = _posts(api)
    assert [p["path"] for p in posts] == ["/api/v1/workflows/research/lint",
                                          "/api/v1/workflow-templates/research/lint",
                                          "/api/v1/workflow-templates/research/lint"]
    assert posts[1]["body"]["template"] == yaml.safe_load(Path(files[0]).read_text())
    assert "WorkflowTemplate nlfs-search" in out
    api.lint_refusal = "spec.templates[2].retryStrategy: unknown field \"cap\""
    code, out, err = cli(["lint", RUN])
    assert code == 2 and err.count("\n") == 1 and 'unknown field "cap"' in err


def test_lint_without_an_argo_server_says_it_needs_one(kubeconfig):
    code, _, err = cli(["lint", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 2 and "ARGO_SERVER" in err


@pytest.mark.parametrize("params,message", [
    (["-p", "nope=1"], "has no parameter 'nope'"),
    (["-p", "gpus"], "expected NAME=VALUE"),
    (["-p", "tolerations={}"], "JSON list"),
    (["-p", "memory=lots"], "Kubernetes quantity"),
    (["-p", "cache-size=big"], "Kubernetes quantity"),
    (["-p", "gpu-resource=gpu"], "extended resource name"),
    (["-p", "max-failed-evaluations=-1"], "non-negative integer"),
    (["-p", "run=s3://x"], "RUN argument"),
    (["-t", "nlfs-nope"], "unknown template"),
    (["-p", "data=AKIAABCDEFGHIJKLMNOP"], "credential"),
])
def test_bad_render_input_is_one_line_and_exit_2(params, message):
    code, out, err = cli(["render", RUN, *params])
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_credentials_appear_nowhere_in_parameters_rendered_yaml_or_logs(api, kubeconfig, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    code, rendered, err = cli(["render", RUN, "-p", "s3-secret=team-s3-credentials"])
    assert code == 0, err
    code2, out2, err2 = cli(["submit", RUN, "-p", "s3-secret=team-s3-credentials", "--kubeconfig", str(kubeconfig)])
    assert code2 == 0, err2
    (create,) = _posts(api)
    sent = json.dumps(create["body"])
    for text in (rendered, err, out2, err2, sent):
        assert not KEY_PATTERNS.search(text)
        assert not any(value.split()[-1] in text for value in CREDENTIALS.values())
    assert {"name": "s3-secret", "value": "team-s3-credentials"} in create["body"]["spec"]["arguments"]["parameters"]
    # A credential value passed as a parameter, by mistake, is refused before anything is sent.
    code, _, err = cli(["render", RUN, "-p", f"data={CREDENTIALS['AWS_SECRET_ACCESS_KEY']}"])
    assert code == 2 and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in err


def test_templates_hold_no_credentials_and_read_them_only_by_secret_reference(templates):
    text = yaml.safe_dump(templates)
    assert not KEY_PATTERNS.search(text)
    for doc in templates.values():
        for param in doc["spec"]["arguments"]["parameters"]:
            assert not re.search(r"(password|token|secret.?key|access.?key)", param["name"], re.I)
    env_blocks = re.findall(r"- name: (AWS_[A-Z_]+)\n(\s+)(value|valueFrom):", text)
    assert env_blocks and all(kind == "valueFrom" for _, _, kind in env_blocks)
