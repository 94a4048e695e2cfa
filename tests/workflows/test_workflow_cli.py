"""`nlfs workflow render|submit|status` against a local HTTP server standing in for the Kubernetes
API server (and for an Argo Server): the request is exactly the Workflow `render` prints."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from workflow_cli import run as cli

from nlfs import workflow
from nlfs.cli import main as cli_main

RUN = "s3://bucket/runs/r1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAQQQQTESTONLY0000", "AWS_SECRET_ACCESS_KEY": "wJalr-test-only-9f8e7d6c5b4a",
               "ARGO_TOKEN": "Bearer test-token-5d41402abc4b2a76"}
# An AWS key id, a `aws_secret_access_key = ...` assignment, a private key block.
KEY_PATTERNS = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b|aws_secret_access_key[ \t]*[=:][ \t]*\S|BEGIN [A-Z ]*PRIVATE KEY",
                          re.I)


class FakeApi:
    """Records requests; answers like the Kubernetes API (or an Argo Server) would."""

    def __init__(self, status: int = 201):
        self.requests: list[dict] = []
        self.status = status
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                api.requests.append({"method": "POST", "path": self.path, "body": body,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                if api.status >= 400:
                    return self._answer(api.status, {"kind": "Status", "message": "workflows.argoproj.io is forbidden: "
                                                     "User \"u\" cannot create resource\nin namespace \"nlfs\""})
                created = json.loads(json.dumps(body.get("workflow", body)))
                created["metadata"]["name"] = created["metadata"]["generateName"] + "abcde"
                return self._answer(201, created)

            def do_GET(self):  # noqa: N802
                api.requests.append({"method": "GET", "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                items = [{"metadata": {"name": f"nlfs-search-{s}", "creationTimestamp": f"2026-01-0{i}T00:00:00Z",
                                       "annotations": {"nlfs.io/continues": "nlfs-search-aaaaa" if i > 1 else ""}},
                          "spec": {"workflowTemplateRef": {"name": "nlfs-search"}},
                          "status": {"phase": phase, "progress": "9/9", "startedAt": "2026-01-01T00:00:00Z"}}
                         for i, s, phase in ((2, "bbbbb", "Running"), (1, "aaaaa", "Succeeded"))]
                return self._answer(200, {"kind": "WorkflowList", "items": items})

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    for name in ("KUBECONFIG", "ARGO_SERVER", "ARGO_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_cli_registers_the_workflow_verbs():
    assert "nlfs.cli.workflow_cmds" in cli_main.VERB_MODULES


def test_submit_sends_exactly_the_workflow_render_prints(api, kubeconfig):
    params = ["-p", "parallelism=8", "-p", "gpus=2", "-p", 'node-selector={"gpu": "h100"}']
    code, out, err = cli(["render", RUN, "-n", "research", "-o", "json", *params])
    assert code == 0, err
    rendered = json.loads(out)
    code, out, err = cli(["submit", RUN, "-n", "research", "--kubeconfig", str(kubeconfig), *params])
    assert code == 0, err
    (request,) = api.requests
    assert request["method"] == "POST"
    assert request["path"] == "/apis/argoproj.io/v1alpha1/namespaces/research/workflows"
    assert request["body"] == rendered
    assert request["headers"]["authorization"] == "Bearer kube-test-token"
    assert "nlfs-search-abcde" in out
    assert rendered["spec"] == {"workflowTemplateRef": {"name": "nlfs-search"}, "arguments": {"parameters": [
        {"name": "run", "value": RUN}, {"name": "parallelism", "value": "8"}, {"name": "gpus", "value": "2"},
        {"name": "node-selector", "value": '{"gpu": "h100"}'}]}}
    assert rendered["metadata"]["labels"][workflow.RUN_LABEL] == workflow.run_label(RUN)


def test_render_yaml_and_json_are_the_same_object():
    _, as_yaml, _ = cli(["render", RUN, "-t", "nlfs-transfer"])
    _, as_json, _ = cli(["render", RUN, "-t", "nlfs-transfer", "-o", "json"])
    assert yaml.safe_load(as_yaml) == json.loads(as_json)
    assert json.loads(as_json)["metadata"]["generateName"] == "nlfs-transfer-"


def test_submit_through_an_argo_server_sends_the_same_workflow(api, monkeypatch):
    monkeypatch.setenv("ARGO_TOKEN", "Bearer argo-test-token")
    _, out, _ = cli(["render", RUN, "-o", "json"])
    code, _, err = cli(["submit", RUN, "--argo-server", api.url])
    assert code == 0, err
    (request,) = api.requests
    assert request["path"] == "/api/v1/workflows/nlfs"
    assert request["body"] == {"namespace": "nlfs", "workflow": json.loads(out)}
    assert request["headers"]["authorization"] == "Bearer argo-test-token"


def test_status_lists_the_run_workflows_by_label(api, kubeconfig):
    code, out, err = cli(["status", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 0, err
    (request,) = api.requests
    url = urlparse(request["path"])
    assert url.path == "/apis/argoproj.io/v1alpha1/namespaces/nlfs/workflows"
    assert parse_qs(url.query)["labelSelector"] == [f"nlfs.io/run={workflow.run_label(RUN)}"]
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "TEMPLATE", "PHASE"]
    assert [line.split()[0] for line in lines[1:]] == ["nlfs-search-aaaaa", "nlfs-search-bbbbb"]  # oldest first
    code, out, _ = cli(["status", RUN, "--argo-server", api.url, "--json"])
    assert code == 0 and json.loads(out)[1]["continues"] == "nlfs-search-aaaaa"
    assert "listOptions.labelSelector=nlfs.io%2Frun%3D" in api.requests[-1]["path"]


def test_api_refusal_is_one_line_and_exit_2(kubeconfig, api):
    api.status = 403
    code, out, err = cli(["submit", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "403" in err and "forbidden" in err


def test_unreachable_api_is_one_line_and_exit_2(tmp_path, api, kubeconfig):
    api.close()
    code, _, err = cli(["submit", RUN, "--kubeconfig", str(kubeconfig)])
    assert code == 2 and err.count("\n") == 1 and "cannot reach" in err
    code, _, err = cli(["submit", RUN, "--argo-server", api.url])
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Argo Server" in err


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
    api = workflow._custom_objects_api(None, None)
    assert api.api_client.configuration.host == "https://10.96.0.1:443"


@pytest.mark.parametrize("params,message", [
    (["-p", "nope=1"], "has no parameter 'nope'"),
    (["-p", "gpus"], "expected NAME=VALUE"),
    (["-p", "tolerations={}"], "JSON list"),
    (["-p", "memory=lots"], "Kubernetes quantity"),
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
    sent = json.dumps(api.requests[0]["body"])
    for text in (rendered, err, out2, err2, sent):
        assert not KEY_PATTERNS.search(text)
        assert not any(value.split()[-1] in text for value in CREDENTIALS.values())
    assert {"name": "s3-secret", "value": "team-s3-credentials"} in api.requests[0]["body"]["spec"]["arguments"]["parameters"]
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
