"""A small, strict stand-in for the Argo controller that runs our WorkflowTemplates locally.

It walks steps templates (step groups, `when`, `withParam` fan-out, recursion, `templateRef`,
`continueOn`), substitutes `{{...}}` tags the way Argo does, runs each container or script template
as a local process, reads output parameters from their `valueFrom.path` (trimming one trailing
newline, as Argo's executor does), retries pods by their `retryStrategy` (policy, then
`expression` over lastRetry.*, backoff on a simulated clock), and records what resource templates
create or apply. What it models, from Argo's source (v3.6 to v4.1):
- a container without `command` is refused: Argo's emissary executor would have to read the
  image's entrypoint from its registry, and fails for an image it cannot index
  (workflow/controller/workflowpod.go: "failed to look-up entrypoint/cmd for image");
- node phases (workflow/controller/operator.go, inferFailedReason and podReconciliation): main
  exiting non-zero is Failed, "main: <reason> (exit code N)[: <termination message>]"; a pod with
  a status message (eviction, node shutdown) is Failed with that message; a deleted pod is Error,
  "pod deleted", with no exit code ("-1" to an expression);
- retries (operator.go, processNodeRetries): the policy decides first (OnFailure retries Failed,
  OnError retries Error, Always both; default OnFailure, Always when an expression is given), then
  the limit, then the expression; the wait before retry n is duration * factor^(n-1), capped by
  `cap`; `maxDuration` counts from the first attempt's start, ends retrying once passed or once the
  next wait would pass it, and is every retry's deadline;
- a retry node that gives up takes the message "No more retries left", "retryStrategy.expression
  evaluated to false", "Max duration limit exceeded" or "Backoff would exceed max duration limit",
  and the last pod's own message only when the policy does not retry its phase; a backoff is
  waited out before the policy is consulted (operator.go, processNodeRetries);
- a step group fails when a child fails and its step has no matching `continueOn`; the Workflow's
  message is then "child '<node>' failed" (workflow/controller/steps.go);
- `spec.onExit` runs after the entrypoint, whatever its phase, with `workflow.status` set; a
  failed exit handler fails a Workflow whose steps succeeded, with the handler node's message,
  and leaves a failed Workflow's message as it was (operator.go, operate);
- `workflow.parameters.json` is Go's json.Marshal of the Workflow's merged parameters: every
  declared parameter in template order, with its value and description, compact, with <, > and &
  escaped (workflow/controller/operator.go, setGlobalParameters).
Faults are injected per pod (`inject`). Anything it cannot resolve is an error. It implements only
what our templates use; it is not Argo.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TAG = re.compile(r"\{\{(=?)\s*(.*?)\s*\}\}", re.S)
VAR = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\['[^']*'\])*")
TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


class SimError(AssertionError):
    """The templates cannot run as written."""


@dataclass(frozen=True)
class Fault:
    """What infrastructure does to one pod attempt: its node phase, exit code and message.

    `seconds`: how long the attempt ran before it happened (the simulated clock); `after`: the
    pod did its work first (a lost response), else it never finished (killed mid-training).
    """

    phase: str
    exit_code: str
    message: str
    seconds: float = 0.0
    after: bool = False


OOM_KILLED = Fault("Failed", "137", "main: OOMKilled (exit code 137)", seconds=1800)
EVICTED = Fault("Failed", "137", "The node was low on resource: ephemeral-storage. Threshold quantity: "
                "10Gi, available: 9Gi.", seconds=3600)
NODE_SHUTDOWN = Fault("Failed", "143", "Pod was terminated in response to imminent node shutdown.", seconds=5400)
DELETED = Fault("Error", "-1", "pod deleted", seconds=600)


@dataclass
class Execution:
    """One container/script pod run: what was executed and what it printed."""

    template: str
    argv: list[str]
    env: dict[str, str]
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@dataclass
class Node:
    """A pod attempt's node as Argo records it."""

    name: str
    template: str
    phase: str  # Succeeded | Failed | Error
    message: str = ""
    exit_code: str = "-1"
    attempt: int = 0


@dataclass
class Result:
    phase: str = "Succeeded"  # of the Workflow
    message: str = ""
    executions: list[Execution] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)  # objects of resource templates, once each
    skipped: list[str] = field(default_factory=list)  # steps whose `when` was false
    fan_outs: list[tuple[str, list]] = field(default_factory=list)  # (step, withParam items)
    nodes: list[Node] = field(default_factory=list)  # every pod attempt, in order
    backoffs: list[tuple[str, float]] = field(default_factory=list)  # (node, seconds waited)
    clock: float = 0.0  # simulated seconds

    def ran(self, template: str) -> list[Execution]:
        return [e for e in self.executions if e.template == template]

    def attempts(self, template: str) -> list[Node]:
        return [n for n in self.nodes if n.template == template]

    def workflow(self, name: str = "sim") -> dict:
        """The Workflow object Argo would show for this run: phase, message and pod nodes."""
        nodes = {n.name: {"id": n.name, "name": n.name, "type": "Pod", "templateName": n.template,
                          "phase": n.phase, "message": n.message,
                          "finishedAt": f"2026-01-01T00:00:{i:02d}Z"}
                 for i, n in enumerate(self.nodes)}
        return {"metadata": {"name": name}, "spec": {},
                "status": {"phase": self.phase, "message": self.message, "nodes": nodes}}


class _Failed(Exception):
    """A node failed (phase Failed or Error) and nothing continued on it."""

    def __init__(self, phase: str, message: str):
        super().__init__(message)
        self.phase, self.message = phase, message


class ArgoSim:
    def __init__(self, docs: dict[str, dict], *, path: str, secrets: dict[str, dict[str, str]],
                 workdir: Path, base_env: dict[str, str] | None = None, timeout: float = 300):
        self.docs = docs  # WorkflowTemplates by name
        self.path = path  # PATH for the pods: where `nlfs` and `python` are found
        self.secrets = secrets  # Kubernetes Secrets by name
        self.workdir = workdir
        self.base_env = base_env or {}
        self.timeout = timeout
        self.objects: dict[str, dict] = {}  # what resource templates made, by name (the cluster)
        self._faults: list[tuple[str, Callable[[list[str]], bool], list[Fault]]] = []

    def inject(self, template: str, match: Callable[[list[str]], bool] | str, *faults: Fault) -> None:
        """The next pods of `template` whose argv or env values match get `faults`, one per attempt."""
        test = match if callable(match) else (lambda argv, text=match: any(text in a for a in argv))
        self._faults.append((template, test, list(faults)))

    def _fault_for(self, template: str, argv: list[str]) -> Fault | None:
        for name, test, faults in self._faults:
            if name == template and faults and test(argv):
                return faults.pop(0)
        return None

    # --- entry ---------------------------------------------------------------------------------
    def run(self, template: str, arguments: dict[str, str], entrypoint: str | None = None) -> Result:
        """Run a Workflow made from WorkflowTemplate `template` with the given arguments."""
        spec = self.docs[template]["spec"]
        params: dict[str, str] = {}
        declared = []
        merged = []
        for p in spec.get("arguments", {}).get("parameters", []):
            declared.append(p["name"])
            if p["name"] in arguments:
                params[p["name"]] = arguments[p["name"]]
            elif "value" in p:
                params[p["name"]] = str(p["value"])
            else:
                raise SimError(f"{template}: workflow parameter {p['name']!r} has no value")
            entry = {"name": p["name"], "value": params[p["name"]]}
            if "description" in p:
                entry["description"] = p["description"]
            merged.append(entry)
        unknown = set(arguments) - set(declared)
        if unknown:
            raise SimError(f"{template}: unknown arguments {sorted(unknown)}")
        name = f"{template}-sim{len(self.objects):02d}"
        globals_ = {f"workflow.parameters.{k}": v for k, v in params.items()}
        globals_["workflow.name"] = name
        globals_["workflow.uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{id(self)}"))
        globals_["workflow.parameters.json"] = go_json(merged, sort=False)
        result = Result()
        try:
            self._exec(template, entrypoint or spec["entrypoint"], {}, globals_, result, depth=0, node=name)
        except _Failed as failed:
            result.phase, result.message = failed.phase, failed.message
        if spec.get("onExit"):
            globals_["workflow.status"] = result.phase
            try:
                self._exec(template, spec["onExit"], {}, globals_, result, depth=0, node=f"{name}.onExit")
            except _Failed as failed:
                if result.phase == "Succeeded":  # else the Workflow keeps its steps' message
                    result.phase = "Failed" if failed.phase == "Failed" else "Error"
                    result.message = failed.message
        return result

    # --- templates -----------------------------------------------------------------------------
    def _find(self, wft: str, name: str) -> dict:
        for tmpl in self.docs[wft]["spec"]["templates"]:
            if tmpl["name"] == name:
                return tmpl
        raise SimError(f"template {name!r} not found in {wft}")

    def _exec(self, wft: str, name: str, args: dict[str, str], globals_: dict[str, str],
              result: Result, depth: int, node: str) -> dict[str, str]:
        if depth > 50:
            raise SimError("recursion deeper than 50: the generation bound does not hold")
        tmpl = self._find(wft, name)
        scope = dict(globals_)
        for p in tmpl.get("inputs", {}).get("parameters", []):
            if p["name"] in args:
                value = args[p["name"]]
            elif "value" in p:
                value = str(p["value"])
            else:
                raise SimError(f"{wft}/{name}: input {p['name']!r} not supplied")
            scope[f"inputs.parameters.{p['name']}"] = value
        extra = set(args) - {p["name"] for p in tmpl.get("inputs", {}).get("parameters", [])}
        if extra:
            raise SimError(f"{wft}/{name}: arguments {sorted(extra)} are not inputs of the template")
        if "steps" in tmpl:
            return self._steps(wft, tmpl, scope, globals_, result, depth, node)
        if {"container", "script", "resource"} & set(tmpl):
            return self._retried(tmpl, scope, result, node)
        raise SimError(f"{wft}/{name}: template kind not supported by the simulator")

    def _steps(self, wft, tmpl, scope, globals_, result, depth, node) -> dict[str, str]:
        for g, group in enumerate(tmpl["steps"]):
            produced: dict[str, str] = {}
            failed: list[tuple[str, str]] = []  # (child node, phase)
            for step in group:
                target_wft, target = wft, step.get("template")
                if "templateRef" in step:
                    target_wft, target = step["templateRef"]["name"], step["templateRef"]["template"]
                    if target_wft not in self.docs:
                        raise SimError(f"templateRef to unknown WorkflowTemplate {target_wft!r}")
                items: list[Any] = [None]
                if "withParam" in step:
                    items = json.loads(substitute(step["withParam"], scope))
                    if not isinstance(items, list):
                        raise SimError(f"step {step['name']}: withParam is not a JSON list")
                    result.fan_outs.append((step["name"], items))
                continue_on = step.get("continueOn") or {}
                for i, item in enumerate(items):
                    local = dict(scope)
                    child = f"{node}[{g}].{step['name']}" + (f"({i})" if "withParam" in step else "")
                    if "withParam" in step:
                        local["item"] = go_json(item)
                        if isinstance(item, dict):
                            local.update({f"item.{k}": v for k, v in item.items() if isinstance(v, (str, int, float))})
                    if "when" in step and not evaluate(substitute(step["when"], local)):
                        result.skipped.append(step["name"])
                        continue
                    args = {p["name"]: substitute(str(p.get("value", "")), local)
                            for p in step.get("arguments", {}).get("parameters", [])}
                    try:
                        outputs = self._exec(target_wft, target, args, globals_, result, depth + 1, child)
                    except _Failed as err:
                        if not continue_on.get("failed" if err.phase == "Failed" else "error"):
                            failed.append((child, err.phase))
                        continue
                    for key, value in outputs.items():
                        produced[f"steps.{step['name']}.{key}"] = value
            if failed:
                raise _Failed("Failed", f"child '{failed[0][0]}' failed")
            scope.update(produced)
        return {}  # our steps templates declare no outputs

    def _retried(self, tmpl, scope, result, node) -> dict[str, str]:
        """A pod (or resource) template, with its retryStrategy as Argo's controller applies it.

        A failure ends with the message Argo gives the retry node (the node an exit handler or a
        parent sees): the pod's own only when the retry policy does not cover its phase."""
        retry = tmpl.get("retryStrategy")
        first_start = result.clock
        attempt = 0
        while True:
            deadline = None
            backoff = (retry or {}).get("backoff") or {}
            if backoff.get("maxDuration"):
                deadline = first_start + duration_seconds(backoff["maxDuration"])
            attempt_node = Node(f"{node}({attempt})", tmpl["name"], "Succeeded", attempt=attempt)
            outputs = self._attempt(tmpl, scope, result, attempt_node, deadline)
            result.nodes.append(attempt_node)
            if attempt_node.phase == "Succeeded":
                return outputs
            if retry is None:
                raise _Failed(attempt_node.phase, attempt_node.message)
            stop = self._why_not_retry(retry, attempt_node, attempt, first_start, result)
            if stop is not None:
                raise _Failed(attempt_node.phase, stop)
            attempt += 1

    def _why_not_retry(self, retry: dict, last: Node, attempt: int, first_start: float,
                       result: Result) -> str | None:
        """None to retry, else the retry node's message, in the order of operator.go's
        processNodeRetries: max duration, backoff (waited out even before a failure the policy
        will not retry), policy, limit, expression."""
        backoff = retry.get("backoff") or {}
        limit = int(retry["limit"]) if retry.get("limit") is not None else None
        if backoff:
            max_deadline = None
            if backoff.get("maxDuration"):
                max_deadline = first_start + duration_seconds(backoff["maxDuration"])
                if result.clock > max_deadline:
                    return "Max duration limit exceeded"
            wait = duration_seconds(backoff["duration"])
            factor = int(backoff.get("factor") or 0)
            if factor > 0:
                wait *= factor ** attempt  # attempt = retries so far (children - 1)
            if backoff.get("cap"):
                wait = min(wait, duration_seconds(backoff["cap"]))
            if max_deadline is not None and result.clock + wait > max_deadline:
                return "Backoff would exceed max duration limit"
            if limit is not None and attempt + 1 <= limit:
                result.backoffs.append((last.name, wait))
                result.clock += wait
        policy = retry.get("retryPolicy") or ("Always" if retry.get("expression") else "OnFailure")
        if last.phase == "Failed" and policy not in ("Always", "OnFailure"):
            return last.message
        if last.phase == "Error" and policy not in ("Always", "OnError"):
            return last.message
        if limit is not None and attempt + 1 > limit:
            return "No more retries left"
        if retry.get("expression"):
            scope = {"lastRetry.exitCode": last.exit_code, "lastRetry.status": last.phase,
                     "lastRetry.message": last.message, "retries": str(attempt)}
            if evaluate(retry["expression"], scope) is not True:
                return "retryStrategy.expression evaluated to false"
        return None

    def _attempt(self, tmpl, scope, result, node: Node, deadline: float | None) -> dict[str, str]:
        if "resource" in tmpl:
            return self._resource(tmpl, scope, result, node)
        body = tmpl.get("container") or tmpl["script"]
        if not body.get("command"):
            # The controller needs the image's entrypoint to wrap it with the emissary executor.
            raise SimError(f"{tmpl['name']}: failed to look-up entrypoint/cmd for image "
                           f"{body.get('image')!r}, you must either explicitly specify the command, or "
                           "list the image's command in the index")
        mounts = {m["mountPath"]: Path(tempfile.mkdtemp(prefix="mnt-", dir=self.workdir))
                  for m in body.get("volumeMounts", []) if m["mountPath"] != "/dev/shm"}
        termination_log = Path(tempfile.mkdtemp(prefix="pod-", dir=self.workdir)) / "termination-log"

        def local_path(text: str) -> str:
            """A path the template spells out, in the pod's filesystem -> where it is here.
            Substituted values (a run's directory) are host paths already and stay as they are."""
            if "{{" in text:
                return substitute(text, scope)
            if text == TERMINATION_LOG:
                return str(termination_log)
            for mount in sorted(mounts, key=len, reverse=True):
                if text == mount or text.startswith(mount + "/"):
                    return str(mounts[mount]) + text[len(mount):]
            return text

        env = {"PATH": self.path, "HOME": local_path("/home/nlfs") if "/home/nlfs" in mounts
               else str(self.workdir / "home"), **self.base_env}
        for var in body.get("env", []):
            if "value" in var:
                env[var["name"]] = local_path(str(var["value"]))
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                secret = self.secrets.get(substitute(ref["name"], scope))
                if secret is None or ref["key"] not in secret:
                    if ref.get("optional"):
                        continue
                    raise SimError(f"secret {ref['name']}/{ref['key']} missing for {tmpl['name']}")
                env[var["name"]] = secret[ref["key"]]
        if "script" in tmpl:
            source = self.workdir / f"script-{len(result.nodes)}.py"
            source.write_text(substitute(body["source"], scope))
            argv = [*body["command"], str(source)]
        else:
            argv = [*body["command"], *(local_path(str(a)) for a in body.get("args", []))]
        for text in (argv, env.values()):
            for value in text:
                if "{{" in value:
                    raise SimError(f"unsubstituted tag in {tmpl['name']}: {value}")
        fault = self._fault_for(tmpl["name"], argv + sorted(env.values()))  # argv, or a script's env
        if fault is not None and not fault.after:
            return self._faulted(node, fault, result, deadline)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=self.timeout,
                              cwd=self.workdir)
        outputs: dict[str, str] = {}
        if proc.returncode == 0:
            for p in tmpl.get("outputs", {}).get("parameters", []):
                path = Path(local_path(p["valueFrom"]["path"]))
                if path.exists():
                    text = path.read_text()
                elif "default" in p["valueFrom"]:
                    text = str(p["valueFrom"]["default"])
                else:
                    raise SimError(f"{tmpl['name']}: output {p['name']} not written at {p['valueFrom']['path']}")
                # workflow/executor/executor.go, SaveParameters: "Trims off a single newline".
                outputs[f"outputs.parameters.{p['name']}"] = text[:-1] if text.endswith("\n") else text
        result.executions.append(Execution(tmpl["name"], argv, env, proc.returncode, proc.stdout,
                                           proc.stderr, outputs))
        if fault is not None:
            return self._faulted(node, fault, result, deadline)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        node.exit_code = str(code)
        if code != 0:
            message = termination_log.read_text().strip() if termination_log.exists() else ""
            node.phase = "Failed"
            node.message = f"main: Error (exit code {code})" + (f": {message}" if message else "")
            return {}
        return outputs

    @staticmethod
    def _faulted(node: Node, fault: Fault, result: Result, deadline: float | None) -> dict[str, str]:
        result.clock += fault.seconds
        if deadline is not None and result.clock > deadline:
            # maxDuration is every retry's active deadline (opts.executionDeadline in Argo).
            node.phase, node.exit_code = "Failed", "137"
            node.message = "Pod was active on the node longer than the specified deadline"
            return {}
        node.phase, node.exit_code, node.message = fault.phase, fault.exit_code, fault.message
        return {}

    def _resource(self, tmpl, scope, result, node: Node) -> dict[str, str]:
        resource = tmpl["resource"]
        manifest = substitute(resource["manifest"], scope)
        obj = json.loads(manifest) if manifest.lstrip().startswith("{") else __import__("yaml").safe_load(manifest)
        fault = self._fault_for(tmpl["name"], [json.dumps(obj)])
        if fault is not None and not fault.after:
            return self._faulted(node, fault, result, None)
        name = obj["metadata"].get("name") or obj["metadata"]["generateName"] + uuid.uuid4().hex[:5]
        action = resource["action"]
        if name in self.objects and action == "create":
            node.phase, node.exit_code = "Failed", "1"
            node.message = f"workflows.argoproj.io \"{name}\" already exists"
            return {}
        if name not in self.objects:
            obj["metadata"]["name"] = name
            self.objects[name] = obj
            result.created.append(obj)
        # apply of an unchanged object: kubectl reports "unchanged", nothing else happens
        if fault is not None:
            return self._faulted(node, fault, result, None)
        return {}


def duration_seconds(text: str) -> float:
    """Argo's duration strings: a number of seconds or a Go duration (30s, 2m, 1h30m)."""
    if re.fullmatch(r"[0-9]+", text):
        return float(text)
    total, pos = 0.0, 0
    for number, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", text):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        pos += len(number) + len(unit)
    if pos != len(text):
        raise SimError(f"bad duration {text!r}")
    return total


def go_json(value: Any, sort: bool = True) -> str:
    """What Go's json.Marshal writes: compact, map keys sorted, <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=sort, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def substitute(text: str, scope: dict[str, str]) -> str:
    """Replace simple `{{name}}` and expression `{{=expr}}` tags; unknown names are errors."""

    def replace(match: re.Match) -> str:
        is_expr, inner = match.group(1), match.group(2)
        if is_expr:
            return str(evaluate(inner, scope))
        if inner not in scope:
            raise SimError(f"unresolvable tag {{{{{inner}}}}}")
        return scope[inner]

    return TAG.sub(replace, text)


class _S(str):
    """A string of the expression language: `a matches b` is a regular-expression search."""

    def __matmul__(self, pattern: str) -> bool:
        return re.search(pattern, self) is not None


_TOKEN = re.compile(r"""\s+|'[^']*'|"(?:[^"\\]|\\.)*"|&&|\|\||==|!=|<=|>=|[<>!()\[\],+\-*/]|[0-9]+(?:\.[0-9]+)?|"""
                    + VAR.pattern)
_FUNCS = {"asInt": "int", "sprig.trunc": "_trunc", "sprig.sha256sum": "_sha256"}


def evaluate(expression: str, scope: dict[str, str] | None = None) -> Any:
    """The subset of Argo's expression language (expr, with sprig) our templates use: literals,
    variables, asInt, sprig.trunc, sprig.sha256sum, comparisons, `in` lists, `matches`, && || !."""
    scope = scope or {}
    out: list[str] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if not match or match.end() == pos:
            raise SimError(f"cannot tokenize {expression!r} at {pos}")
        token, pos = match.group(0), match.end()
        if token.isspace():
            out.append(" ")
        elif token[0] in "'\"":
            literal = json.loads(token) if token.startswith('"') else token[1:-1]
            out.append(f"_S({literal!r})")
        elif token == "&&":
            out.append(" and ")
        elif token == "||":
            out.append(" or ")
        elif token == "!":
            out.append(" not ")
        elif token in _FUNCS:
            out.append(_FUNCS[token])
        elif token in ("true", "false"):
            out.append(token.capitalize())
        elif token in ("in", "not", "and", "or"):
            out.append(f" {token} ")
        elif token == "matches":
            out.append(" @ ")
        elif VAR.fullmatch(token) and not token[0].isdigit():
            key = re.sub(r"\['([^']*)'\]", r".\1", token)
            if key not in scope:
                raise SimError(f"unresolvable variable {token} in expression {expression!r}")
            out.append(f"_S({scope[key]!r})")
        else:
            out.append(token)
    code = "".join(out)
    names = {"int": int, "_S": _S, "_trunc": lambda n, s: _S(s[:n]),
             "_sha256": lambda s: _S(hashlib.sha256(s.encode()).hexdigest())}
    try:
        return eval(code, {"__builtins__": {}}, names)  # noqa: S307 - test-only, our own templates
    except Exception as err:  # noqa: BLE001
        raise SimError(f"cannot evaluate {expression!r} (as {code!r}): {err}") from None


def pod_path(nlfs_dir: Path) -> str:
    """PATH for simulated pods: `nlfs` from nlfs_dir, `python` from this interpreter's venv."""
    return os.pathsep.join([str(nlfs_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"])


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)
