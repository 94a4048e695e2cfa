"""A small, strict stand-in for the Argo controller that runs our WorkflowTemplates locally.

It walks steps templates (step groups, `when`, `withParam` fan-out, recursion, `templateRef`),
substitutes `{{...}}` tags the way Argo does, runs each container or script template as a local
process (no `command` = the image's ENTRYPOINT, `nlfs`), reads output parameters from their
`valueFrom.path`, and records what resource templates would create. Anything it cannot resolve is
an error, so a template referring to an undeclared parameter or an output nobody produces fails.
It implements only what our templates use; it is not Argo.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAG = re.compile(r"\{\{(=?)\s*(.*?)\s*\}\}", re.S)
VAR = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\['[^']*'\])*")


class SimError(AssertionError):
    """The templates cannot run as written (or a step failed)."""


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
class Result:
    executions: list[Execution] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)  # objects of resource templates (action create)
    skipped: list[str] = field(default_factory=list)  # steps whose `when` was false
    fan_outs: list[tuple[str, list]] = field(default_factory=list)  # (step, withParam items)

    def ran(self, template: str) -> list[Execution]:
        return [e for e in self.executions if e.template == template]


class ArgoSim:
    def __init__(self, docs: dict[str, dict], *, path: str, secrets: dict[str, dict[str, str]],
                 workdir: Path, base_env: dict[str, str] | None = None, timeout: float = 300):
        self.docs = docs  # WorkflowTemplates by name
        self.path = path  # PATH for the pods: where `nlfs` and `python` are found
        self.secrets = secrets  # Kubernetes Secrets by name
        self.workdir = workdir
        self.base_env = base_env or {}
        self.timeout = timeout

    # --- entry ---------------------------------------------------------------------------------
    def run(self, template: str, arguments: dict[str, str], entrypoint: str | None = None) -> Result:
        """Run a Workflow made from WorkflowTemplate `template` with the given arguments."""
        spec = self.docs[template]["spec"]
        params: dict[str, str] = {}
        declared = []
        for p in spec.get("arguments", {}).get("parameters", []):
            declared.append(p["name"])
            if p["name"] in arguments:
                params[p["name"]] = arguments[p["name"]]
            elif "value" in p:
                params[p["name"]] = str(p["value"])
            else:
                raise SimError(f"{template}: workflow parameter {p['name']!r} has no value")
        unknown = set(arguments) - set(declared)
        if unknown:
            raise SimError(f"{template}: unknown arguments {sorted(unknown)}")
        globals_ = {f"workflow.parameters.{k}": v for k, v in params.items()}
        globals_["workflow.name"] = f"{template}-sim01"
        globals_["workflow.parameters.json"] = json.dumps(
            [{"name": k, "value": v} for k, v in params.items()], separators=(",", ":"))
        result = Result()
        self._exec(template, entrypoint or spec["entrypoint"], {}, globals_, result, depth=0)
        return result

    # --- templates -----------------------------------------------------------------------------
    def _find(self, wft: str, name: str) -> dict:
        for tmpl in self.docs[wft]["spec"]["templates"]:
            if tmpl["name"] == name:
                return tmpl
        raise SimError(f"template {name!r} not found in {wft}")

    def _exec(self, wft: str, name: str, args: dict[str, str], globals_: dict[str, str],
              result: Result, depth: int) -> dict[str, str]:
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
            return self._steps(wft, tmpl, scope, globals_, result, depth)
        if "container" in tmpl or "script" in tmpl:
            return self._pod(wft, tmpl, scope, result)
        if "resource" in tmpl:
            manifest = substitute(tmpl["resource"]["manifest"], scope)
            result.created.append(json.loads(manifest) if manifest.lstrip().startswith("{")
                                  else __import__("yaml").safe_load(manifest))
            return {}
        raise SimError(f"{wft}/{name}: template kind not supported by the simulator")

    def _steps(self, wft, tmpl, scope, globals_, result, depth) -> dict[str, str]:
        for group in tmpl["steps"]:
            produced: dict[str, str] = {}
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
                for item in items:
                    local = dict(scope)
                    if "withParam" in step:
                        local["item"] = go_json(item)
                        if isinstance(item, dict):
                            local.update({f"item.{k}": v for k, v in item.items() if isinstance(v, (str, int, float))})
                    if "when" in step and not evaluate(substitute(step["when"], local)):
                        result.skipped.append(step["name"])
                        continue
                    args = {p["name"]: substitute(str(p.get("value", "")), local)
                            for p in step.get("arguments", {}).get("parameters", [])}
                    outputs = self._exec(target_wft, target, args, globals_, result, depth + 1)
                    for key, value in outputs.items():
                        produced[f"steps.{step['name']}.{key}"] = value
            scope.update(produced)
        return {}  # our steps templates declare no outputs

    def _pod(self, wft, tmpl, scope, result) -> dict[str, str]:
        body = tmpl.get("container") or tmpl["script"]
        mounts = {m["mountPath"]: Path(tempfile.mkdtemp(prefix="mnt-", dir=self.workdir))
                  for m in body.get("volumeMounts", []) if m["mountPath"] != "/dev/shm"}

        def local_path(text: str) -> str:
            for mount in sorted(mounts, key=len, reverse=True):
                if text == mount or text.startswith(mount + "/"):
                    return str(mounts[mount]) + text[len(mount):]
            return text

        env = {"PATH": self.path, "HOME": str(self.workdir / "home"), **self.base_env}
        for var in body.get("env", []):
            if "value" in var:
                env[var["name"]] = local_path(substitute(str(var["value"]), scope))
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                secret = self.secrets.get(substitute(ref["name"], scope))
                if secret is None or ref["key"] not in secret:
                    if ref.get("optional"):
                        continue
                    raise SimError(f"secret {ref['name']}/{ref['key']} missing for {tmpl['name']}")
                env[var["name"]] = secret[ref["key"]]
        if "script" in tmpl:
            source = self.workdir / f"script-{len(result.executions)}.py"
            source.write_text(substitute(body["source"], scope))
            argv = [*body["command"], str(source)]
        else:
            argv = [*(body.get("command") or ["nlfs"]),  # no command: the image's ENTRYPOINT
                    *(local_path(substitute(str(a), scope)) for a in body.get("args", []))]
        for text in (argv, env.values()):
            for value in text:
                if "{{" in value:
                    raise SimError(f"unsubstituted tag in {tmpl['name']}: {value}")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=self.timeout,
                              cwd=self.workdir)
        outputs: dict[str, str] = {}
        if proc.returncode == 0:
            for p in tmpl.get("outputs", {}).get("parameters", []):
                path = Path(local_path(p["valueFrom"]["path"]))
                if not path.exists():
                    raise SimError(f"{tmpl['name']}: output {p['name']} not written at {p['valueFrom']['path']}")
                outputs[f"outputs.parameters.{p['name']}"] = path.read_text()  # Argo does not trim
        result.executions.append(Execution(tmpl["name"], argv, env, proc.returncode, proc.stdout,
                                           proc.stderr, outputs))
        if proc.returncode != 0:
            raise SimError(f"{tmpl['name']} exited {proc.returncode}: {' '.join(argv)}\n{proc.stderr[-3000:]}")
        return outputs


def go_json(value: Any) -> str:
    """What Go's json.Marshal writes for an item: compact, map keys sorted."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


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


def evaluate(expression: str, scope: dict[str, str] | None = None) -> Any:
    """The subset of Argo's expression language our templates use: literals, variables,
    asInt, comparisons, arithmetic, && || !."""
    scope = scope or {}

    def var(match: re.Match) -> str:
        name = match.group(0)
        if name in ("true", "false", "asInt", "and", "or", "not"):
            return {"true": "True", "false": "False", "asInt": "int"}.get(name, name)
        key = re.sub(r"\['([^']*)'\]", r".\1", name)
        if key not in scope:
            raise SimError(f"unresolvable variable {name} in expression {expression!r}")
        return repr(scope[key])

    out: list[str] = []
    for piece in re.split(r"('[^']*')", expression):  # leave string literals alone
        if piece.startswith("'") and piece.endswith("'") and len(piece) >= 2:
            out.append(repr(piece[1:-1]))
            continue
        piece = piece.replace("&&", " and ").replace("||", " or ")
        piece = re.sub(r"!(?!=)", " not ", piece)
        out.append(VAR.sub(var, piece))
    code = "".join(out)
    try:
        return eval(code, {"__builtins__": {}}, {"int": int})  # noqa: S307 - test-only, our own templates
    except Exception as err:  # noqa: BLE001
        raise SimError(f"cannot evaluate {expression!r} (as {code!r}): {err}") from None


def pod_path(nlfs_dir: Path) -> str:
    """PATH for simulated pods: `nlfs` from nlfs_dir, `python` from this interpreter's venv."""
    return os.pathsep.join([str(nlfs_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"])


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)
