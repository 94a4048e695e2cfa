"""Talk to the cluster: the Kubernetes API (kubeconfig or in-cluster, the `kubernetes` client) or
an Argo Server (Hera's `WorkflowsService`, which builds every Argo Server URL and request).

Both backends take and return plain Workflow dicts, so `render`'s object is exactly what is sent.
Every failure to reach or use the API is one line (`NlfsError`) naming where, never a credential.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Protocol

from nlfs.argo.render import GROUP, PLURAL, VERSION
from nlfs.argo.settings import ArgoServer, redact
from nlfs.errors import NlfsError

# (pod name, one log line) for each line a Workflow's pods wrote.
LogSink = Callable[[str, str], None]
_TIMEOUT_S = 30  # connect and read: a frozen server gives a one-line error, not a hang


class Backend(Protocol):
    """What the `nlfs workflow` verbs need from a cluster."""

    where: str  # for messages: the API or server in use, never with credentials

    def create(self, workflow: dict[str, Any]) -> dict[str, Any]: ...
    def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    def stop(self, namespace: str, name: str) -> None: ...
    def logs(self, namespace: str, name: str, sink: LogSink, *, follow: bool = False) -> None: ...
    def lint(self, namespace: str, workflow: dict[str, Any]) -> None: ...
    def link(self, namespace: str, name: str) -> str | None: ...


def connect(server: ArgoServer | None, *, kubeconfig: str | None = None,
            context: str | None = None) -> Backend:
    """The Argo Server's backend when one is named, else the Kubernetes API's."""
    if server is not None:
        return ArgoServerBackend(server)
    return KubernetesBackend(kubeconfig, context)


# --- Argo Server, through Hera -------------------------------------------------------------------


def _hera_service_class():
    try:
        from hera.workflows import WorkflowsService
    except ImportError:
        raise NlfsError("talking to an Argo Server needs Hera: pip install 'nlfs[argo]'") from None

    class _Service(WorkflowsService):
        """Hera's generated client with one seam: `_request`, the single place it sends from.

        It adds a timeout, and reads the log endpoint's stream: the Argo Server answers
        GET .../log with one JSON object per line ({"result": {"podName", "content"}}), which
        Hera's generated `workflow_logs` parses as a single object (Hera issue #90: streaming is not
        supported). With `log_sink` set, each line goes to the sink and Hera receives `{}`.
        """

        log_sink: LogSink | None = None
        follow = False

        def _request(self, method, **kwargs):
            import requests

            if self.log_sink is None:
                kwargs.setdefault("timeout", _TIMEOUT_S)
                return super()._request(method, **kwargs)
            kwargs["timeout"] = (_TIMEOUT_S, None if self.follow else _TIMEOUT_S)
            response = self.session.request(method, stream=True, **kwargs)
            if not response.ok:
                return response  # Hera raises its exception for the status
            with response:
                for raw in response.iter_lines():
                    if not raw.strip():
                        continue
                    entry = json.loads(raw)
                    if "error" in entry:
                        raise NlfsError(f"log stream: {_one_line(entry['error'].get('message', entry['error']))}")
                    result = entry.get("result") or {}
                    self.log_sink(result.get("podName", ""), result.get("content", ""))
            done = requests.Response()
            done.status_code, done._content = 200, b"{}"
            return done

    return _Service


class ArgoServerBackend:
    """The Argo Server's HTTP API through `hera.workflows.WorkflowsService`."""

    def __init__(self, server: ArgoServer):
        self.server = server
        self.where = f"the Argo Server at {server.shown}"
        self._service_class = _hera_service_class()

    def _service(self, namespace: str):
        return self._service_class(host=self.server.base_url, token=self.server.token or None,
                                   verify_ssl=not self.server.insecure_skip_verify, namespace=namespace)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        import warnings

        import requests
        from hera.exceptions import HeraException

        try:
            with warnings.catch_warnings():
                # Hera 7 serialises requests with pydantic's deprecated `.json()`: not ours to fix.
                warnings.simplefilter("ignore", DeprecationWarning)
                return call()
        except HeraException as err:
            raise NlfsError(f"{self.where} refused to {what}: {_one_line(err)}") from None
        except requests.exceptions.SSLError:
            raise NlfsError(f"cannot reach {self.where}: its TLS certificate did not verify "
                            "(ARGO_INSECURE_SKIP_VERIFY=true skips the check)") from None
        except requests.exceptions.RequestException as err:
            raise NlfsError(f"cannot reach {self.where}: {type(err).__name__}") from None
        except (ValueError, KeyError) as err:  # a body that is not the Argo Server's JSON
            raise NlfsError(f"{self.where} answered what is not the Argo Server API: {_one_line(err)}") from None

    def create(self, workflow: dict[str, Any]) -> dict[str, Any]:
        from hera.workflows.models import Workflow, WorkflowCreateRequest

        namespace = workflow["metadata"]["namespace"]
        request = WorkflowCreateRequest(namespace=namespace, workflow=Workflow.model_validate(workflow))
        with self._service(namespace) as service:
            created = self._call("create the Workflow", lambda: service.create_workflow(request))
        return _plain(created)

    def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        with self._service(namespace) as service:
            answer = self._call("list Workflows", lambda: service.list_workflows(label_selector=label_selector))
        return [_plain(item) for item in (answer.items or [])]

    def stop(self, namespace: str, name: str) -> None:
        from hera.workflows.models import WorkflowStopRequest

        with self._service(namespace) as service:
            self._call(f"stop {name}", lambda: service.stop_workflow(
                name, WorkflowStopRequest(name=name, namespace=namespace)))

    def logs(self, namespace: str, name: str, sink: LogSink, *, follow: bool = False) -> None:
        with self._service(namespace) as service:
            service.log_sink, service.follow = sink, follow
            self._call(f"stream the logs of {name}", lambda: service.workflow_logs(
                name, container="main", follow=follow or None))

    def lint(self, namespace: str, workflow: dict[str, Any]) -> None:
        from hera.workflows.models import Workflow, WorkflowLintRequest

        request = WorkflowLintRequest(namespace=namespace, workflow=Workflow.model_validate(workflow))
        with self._service(namespace) as service:
            self._call("accept the Workflow", lambda: service.lint_workflow(request))

    def lint_template(self, namespace: str, template: dict[str, Any]) -> None:
        from hera.workflows.models import WorkflowTemplate, WorkflowTemplateLintRequest

        request = WorkflowTemplateLintRequest(namespace=namespace,
                                              template=WorkflowTemplate.model_validate(template))
        name = template.get("metadata", {}).get("name", "?")
        with self._service(namespace) as service:
            self._call(f"accept WorkflowTemplate {name}", lambda: service.lint_workflow_template(request))

    def link(self, namespace: str, name: str) -> str | None:
        with self._service(namespace) as service:
            return service.get_workflow_link(name)


def _plain(model: Any) -> dict[str, Any]:
    """A Hera model as the JSON the server sent (aliases, no unset fields)."""
    return json.loads(model.model_dump_json(by_alias=True, exclude_none=True))


# --- Kubernetes API ------------------------------------------------------------------------------


class KubernetesBackend:
    """The Kubernetes API with the kubeconfig ($KUBECONFIG, ~/.kube/config) or in-cluster account."""

    def __init__(self, kubeconfig: str | None, context: str | None):
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
        self.api_client = client.ApiClient(configuration)
        self.host = configuration.host
        self.where = f"the Kubernetes API at {redact(configuration.host)}"

    def _call(self, call: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as err:
            raise NlfsError(f"{self.where}: {err.status} {err.reason}: {_api_message(err.body)}") from None
        except HTTPError as err:
            raise NlfsError(f"cannot reach {self.where}: {type(err).__name__}") from None

    def _objects(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def create(self, workflow: dict[str, Any]) -> dict[str, Any]:
        namespace = workflow["metadata"]["namespace"]
        return self._call(lambda: self._objects().create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, workflow, _request_timeout=_TIMEOUT_S))

    def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        answer = self._call(lambda: self._objects().list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=label_selector, _request_timeout=_TIMEOUT_S))
        return list(answer.get("items") or [])

    def stop(self, namespace: str, name: str) -> None:
        # What `argo stop` does without a server: spec.shutdown=Stop (Argo runs no new step,
        # stops running pods, runs exit handlers).
        self._call(lambda: self._objects().patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"shutdown": "Stop"}},
            _request_timeout=_TIMEOUT_S))

    def logs(self, namespace: str, name: str, sink: LogSink, *, follow: bool = False) -> None:
        if follow:
            raise NlfsError("following logs needs an Argo Server (ARGO_SERVER=host:port); without one, "
                            "`nlfs workflow logs` prints what the pods have written so far")
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        pods = self._call(lambda: core.list_namespaced_pod(
            namespace, label_selector=f"workflows.argoproj.io/workflow={name}", _request_timeout=_TIMEOUT_S))
        for pod in sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or ""):
            text = self._call(lambda: core.read_namespaced_pod_log(
                pod.metadata.name, namespace, container="main", _request_timeout=_TIMEOUT_S))
            for line in (text or "").splitlines():
                sink(pod.metadata.name, line)

    def lint(self, namespace: str, workflow: dict[str, Any]) -> None:
        raise NlfsError("lint asks an Argo Server: set ARGO_SERVER=host:port (or --argo-server)")

    def lint_template(self, namespace: str, template: dict[str, Any]) -> None:
        self.lint(namespace, template)

    def link(self, namespace: str, name: str) -> str | None:
        return None  # the UI's address is not known without an Argo Server


def _api_message(body: Any) -> str:
    try:
        parsed = json.loads(body)
        message = parsed.get("message") or parsed
    except (TypeError, ValueError, AttributeError):
        message = body.decode(errors="replace") if isinstance(body, bytes) else body
    return _one_line(message)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())[:300]
