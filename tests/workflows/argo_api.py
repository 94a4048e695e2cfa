"""A local HTTP server that speaks the parts of the Kubernetes API and of the Argo Server API that
`nlfs workflow` uses, keeps Workflows in memory, and records every request it receives.

A test double: the tests assert the requests (method, path, query, headers, body) that nlfs, through
Hera's WorkflowsService or the kubernetes client, sends.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KUBE = "/apis/argoproj.io/v1alpha1/namespaces/"
ARGO = "/api/v1/workflows/"


class FakeApi:
    """Kubernetes API (`/apis/...`, `/api/v1/namespaces/...`) and Argo Server (`/api/v1/workflows/...`)."""

    def __init__(self, base_href: str = ""):
        self.requests: list[dict] = []
        self.workflows: dict[str, dict] = {}  # by name, with metadata.namespace
        self.phases: dict[str, list[str]] = {}  # name -> phases to report on successive lists
        self.logs: dict[str, list[tuple[str, str]]] = {}  # workflow -> (pod, line)
        self.refuse: tuple[int, str] | None = None  # answer every request with this status
        self.lint_refusal: str | None = None
        self.base_href = base_href.rstrip("/")
        self._created = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, code: int, body, *, ndjson: bool = False) -> None:
                data = ("".join(json.dumps(x) + "\n" for x in body) if ndjson else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                record = {"method": method, "path": url.path, "query": parse_qs(url.query),
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": json.loads(raw) if raw else None}
                api.requests.append(record)
                if api.refuse:
                    code, message = api.refuse
                    return self._answer(code, {"kind": "Status", "code": code, "message": message})
                path = url.path
                if api.base_href:
                    if not path.startswith(api.base_href + "/"):
                        return self._answer(404, {"message": f"not under {api.base_href}"})
                    path = path[len(api.base_href):]
                code, body, ndjson = api.route(method, path, record)
                return self._answer(code, body, ndjson=ndjson)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_PUT(self):  # noqa: N802
                self._handle("PUT")

            def do_PATCH(self):  # noqa: N802
                self._handle("PATCH")

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host_port = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.host_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- state -----------------------------------------------------------------------------------
    def add(self, name: str, namespace: str, labels: dict, *, phases: list[str], created: str,
            params: list[dict] | None = None, template: str = "nlfs-search", continues: str = "",
            nodes: dict | None = None) -> None:
        self.workflows[name] = {
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "creationTimestamp": created,
                         "annotations": {"nlfs.io/continues": continues} if continues else {}},
            "spec": {"workflowTemplateRef": {"name": template}, "arguments": {"parameters": params or []}},
            "status": {"phase": phases[0], "progress": "1/2", "startedAt": created, "nodes": nodes or {}},
        }
        self.phases[name] = list(phases)

    def _listed(self, namespace: str, selector: str) -> list[dict]:
        key, _, value = selector.partition("=")
        out = []
        for name, wf in self.workflows.items():
            if wf["metadata"]["namespace"] != namespace or wf["metadata"]["labels"].get(key) != value:
                continue
            wf["status"]["phase"] = self.phases[name][0]
            if len(self.phases[name]) > 1:  # the next look sees the next phase
                self.phases[name].pop(0)
            out.append(json.loads(json.dumps(wf)))
        return out

    def _create(self, namespace: str, workflow: dict) -> dict:
        self._created += 1
        created = json.loads(json.dumps(workflow))
        created["metadata"]["name"] = created["metadata"]["generateName"] + f"new{self._created:02d}"
        created["metadata"]["creationTimestamp"] = f"2026-02-0{self._created}T00:00:00Z"
        created["status"] = {"phase": "Pending"}
        self.workflows[created["metadata"]["name"]] = created
        self.phases[created["metadata"]["name"]] = ["Pending"]
        return created

    # --- routes ----------------------------------------------------------------------------------
    def route(self, method: str, path: str, record: dict) -> tuple[int, object, bool]:
        query = record["query"]
        if path.startswith(KUBE):  # /apis/argoproj.io/v1alpha1/namespaces/NS/workflows[/NAME]
            parts = path[len(KUBE):].split("/")
            namespace = parts[0]
            if method == "POST" and len(parts) == 2:
                return 201, self._create(namespace, record["body"]), False
            if method == "GET" and len(parts) == 2:
                return 200, {"kind": "WorkflowList", "items": self._listed(namespace, query["labelSelector"][0])}, False
            if method == "PATCH" and len(parts) == 3:
                wf = self.workflows[parts[2]]
                wf["spec"].update(record["body"]["spec"])
                return 200, wf, False
        if path.startswith("/api/v1/namespaces/"):  # core API: pods and their logs
            parts = path[len("/api/v1/namespaces/"):].split("/")
            if parts[1:] == ["pods"]:
                workflow = query["labelSelector"][0].partition("=")[2]
                pods = sorted({pod for pod, _ in self.logs.get(workflow, [])})
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                             "items": [{"metadata": {"name": p, "creationTimestamp": "2026-01-01T00:00:00Z"}}
                                       for p in pods]}, False
            if len(parts) == 4 and parts[3] == "log":
                text = "".join(line + "\n" for logs in self.logs.values() for pod, line in logs if pod == parts[2])
                return 200, text, False
        if path == "/api/v1/workflow-templates/" + path.split("/")[-2] + "/lint" and method == "POST":
            if self.lint_refusal:
                return 400, {"code": 3, "message": self.lint_refusal}, False
            return 200, record["body"]["template"], False
        if path.startswith(ARGO):  # /api/v1/workflows/NS[/NAME[/ACTION]]
            parts = path[len(ARGO):].split("/")
            namespace = parts[0]
            if method == "POST" and len(parts) == 1:
                return 200, self._create(namespace, record["body"]["workflow"]), False
            if method == "GET" and len(parts) == 1:
                selector = query["listOptions.labelSelector"][0]
                return 200, {"metadata": {}, "items": self._listed(namespace, selector)}, False
            if method == "POST" and parts[1:] == ["lint"]:
                if self.lint_refusal:
                    return 400, {"code": 3, "message": self.lint_refusal}, False
                return 200, record["body"]["workflow"], False
            if method == "PUT" and len(parts) == 3 and parts[2] == "stop":
                self.phases[parts[1]] = ["Failed"]
                return 200, self.workflows[parts[1]], False
            if method == "GET" and len(parts) == 3 and parts[2] == "log":
                entries = [{"result": {"podName": pod, "content": line}} for pod, line in self.logs.get(parts[1], [])]
                return 200, entries, True
        return 404, {"code": 5, "message": f"no route for {method} {path}"}, False
