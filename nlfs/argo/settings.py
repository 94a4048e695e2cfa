"""Where the Argo Server is and how to talk to it, read exactly as the argo CLI reads it.

The argo CLI (cmd/argo/commands/client/conn.go and pkg/apiclient/argo-server-opts.go in Argo):
- ARGO_SERVER: `host:port`, no scheme ("e.g. localhost:2746"); unset or empty: no Argo Server,
  the Kubernetes API is used with the kubeconfig (or in-cluster) instead;
- ARGO_SECURE: TLS unless it is exactly "false" (the URL is https://host:port, else http://);
- ARGO_BASE_HREF: a path after host:port, for a server behind an ingress (e.g. /argo/);
- ARGO_INSECURE_SKIP_VERIFY: exactly "true" skips the check of the server's certificate;
- ARGO_TOKEN: the Authorization header, as given (e.g. "Bearer v2:..."); when set, even empty,
  it is used instead of the kubeconfig's credentials;
- ARGO_NAMESPACE: the namespace when no -n is given (nlfs then defaults to `nlfs`, not to the
  kubeconfig's namespace).
A URL is never shown with credentials in it (`redact`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from nlfs.argo.params import DEFAULT_NAMESPACE
from nlfs.errors import NlfsError

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class ArgoServer:
    """An Argo Server endpoint. `base_url` is the root Hera's WorkflowsService joins its API paths to."""

    host_port: str
    secure: bool = True
    base_href: str = ""
    insecure_skip_verify: bool = False
    token: str | None = None

    @property
    def base_url(self) -> str:
        # Hera joins its API paths to its host with urljoin: a base path survives only with a
        # trailing slash, so one is always there (the argo CLI appends ARGO_BASE_HREF as given).
        path = "/" + self.base_href.strip("/") if self.base_href.strip("/") else ""
        return f"{'https' if self.secure else 'http'}://{self.host_port}{path}/"

    @property
    def shown(self) -> str:
        """The server as messages show it (never a token; there is no userinfo to hide)."""
        return self.base_url.rstrip("/")


def redact(url: str) -> str:
    """`url` with any user:password@ replaced by ***@ and query values hidden, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{kv.split('=', 1)[0]}=***" if "=" in kv else kv for kv in parts.query.split("&")) \
        if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def server_from(flag: str | None, environ: dict[str, str] | None = None) -> ArgoServer | None:
    """The Argo Server named by `--argo-server` (or $ARGO_SERVER), or None for the Kubernetes API.

    The flag takes `host:port` as the argo CLI's `-s` does; `http://host:port[/base]` or
    `https://...` is accepted too and then decides TLS and the base path itself. Credentials in
    the value are refused, and never echoed.
    """
    env = os.environ if environ is None else environ
    value = (flag if flag is not None else env.get("ARGO_SERVER", "")).strip()
    if not value:
        return None
    secure = env.get("ARGO_SECURE", "") != "false"
    base_href = env.get("ARGO_BASE_HREF", "")
    if "://" in value:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise NlfsError(f"the Argo Server address {redact(value)} carries credentials: give the "
                            "token in $ARGO_TOKEN, never in the address")
        if parts.scheme not in ("http", "https") or parts.query or parts.fragment:
            raise NlfsError(f"the Argo Server address {redact(value)} must be host:port "
                            "(or http[s]://host:port[/path])")
        secure, host_port = parts.scheme == "https", parts.netloc
        base_href = parts.path or base_href
    else:
        host_port = value
    if "@" in host_port:
        raise NlfsError("the Argo Server address carries credentials (user@host): give the token in "
                        "$ARGO_TOKEN, never in the address")
    if not _HOST_PORT.match(host_port):
        raise NlfsError(f"the Argo Server address must be host:port, e.g. localhost:2746, "
                        f"got {redact(value)!r}")
    return ArgoServer(
        host_port=host_port,
        secure=secure,
        base_href=base_href,
        insecure_skip_verify=env.get("ARGO_INSECURE_SKIP_VERIFY", "") == "true",
        token=env.get("ARGO_TOKEN"),
    )


def namespace_from(flag: str | None, environ: dict[str, str] | None = None) -> str:
    """-n, else $ARGO_NAMESPACE (when set, as the argo CLI), else nlfs's namespace."""
    env = os.environ if environ is None else environ
    if flag:
        return flag
    if "ARGO_NAMESPACE" in env and env["ARGO_NAMESPACE"]:
        return env["ARGO_NAMESPACE"]
    return DEFAULT_NAMESPACE
