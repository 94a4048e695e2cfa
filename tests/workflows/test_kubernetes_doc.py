"""docs/kubernetes.md against the templates: the Argo version table, the retry promises, the
parameters and the executor setting the namespace's Pod Security needs (issue 11, done 5)."""

from __future__ import annotations

import re

import pytest
import yaml
from argo_docs import ROOT, load_templates

from nlfs import argo

DOC = (ROOT / "docs" / "kubernetes.md").read_text()
VERSIONS = ("v3.6", "v3.7", "v4.0", "v4.1")


def _walk(obj, key: str):
    """Every value under `key` anywhere in obj (dicts and lists)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def _has(path: str) -> bool:
    """Whether the templates use the dotted setting `path` (a.b.c: some a holding b holding c)."""
    first, *rest = path.split(".")
    values = list(_walk(load_templates(), first))
    for part in rest:
        values = [v[part] for v in values if isinstance(v, dict) and part in v]
    return bool(values)


def _text_anywhere(word: str) -> bool:
    files = list((ROOT / "workflows").glob("*.yaml")) + list((ROOT / "k8s").rglob("*.yaml"))
    return any(word in path.read_text() for path in files)


# How each row of the table is looked up in the templates.
USES = {
    "retryStrategy.expression": lambda: _has("retryStrategy.expression"),
    "retryStrategy.backoff.cap": lambda: _has("retryStrategy.backoff.cap"),
    "retryStrategy.backoff.maxDuration": lambda: _has("retryStrategy.backoff.maxDuration"),
    "synchronization.mutexes": lambda: _has("synchronization.mutexes") or _has("synchronization.semaphores"),
    "synchronization.mutex": lambda: _has("synchronization.mutex") or _has("synchronization.semaphore"),
    "continueOn": lambda: _has("continueOn"),
    "onExit": lambda: _has("onExit"),
    "automountServiceAccountToken": lambda: _has("automountServiceAccountToken") and _has("executor.serviceAccountName"),
    "podGC.deleteDelayDuration": lambda: _has("podGC.deleteDelayDuration"),
    "workflowMetadata.labelsFrom": lambda: _has("workflowMetadata.labelsFrom"),
    "failedPodRestart": lambda: _text_anywhere("failedPodRestart"),
    "templateReferencing": lambda: _text_anywhere("templateReferencing"),
}


def _version_table() -> list[dict[str, str]]:
    section = DOC[DOC.index("## Argo versions"):DOC.index("## Troubleshooting")]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return rows


def test_the_version_table_covers_v3_6_to_v4_1_and_every_setting_it_names():
    rows = _version_table()
    assert all(v in rows[0] for v in VERSIONS)
    keys = [re.search(r"`([^`]+)`", row["setting"]).group(1).split(":")[0] for row in rows]
    assert sorted(keys) == sorted(USES), "every row has a lookup, every lookup a row"


@pytest.mark.parametrize("row", _version_table(), ids=lambda r: re.search(r"`([^`]+)`", r["setting"]).group(1))
def test_the_version_table_and_the_templates_agree(row):
    key = re.search(r"`([^`]+)`", row["setting"]).group(1).split(":")[0]
    used = USES[key]()
    assert row["in nlfs's templates"] == ("yes" if used else "no"), f"{key}: the table says otherwise"
    if used:  # what the templates use must work on every supported version
        assert [row[v] for v in VERSIONS] == ["yes"] * 4, f"{key} is used but not on every version"


def _evaluate_item() -> dict:
    return next(t for t in load_templates()["nlfs-evaluate"]["spec"]["templates"] if t["name"] == "evaluate-item")


def _waits(retry: dict) -> list[float]:
    from argo_sim import duration_seconds

    base, factor = duration_seconds(retry["backoff"]["duration"]), int(retry["backoff"]["factor"])
    return [base * factor ** n for n in range(int(retry["limit"]))]


def test_the_retry_promises_are_the_templates_retry_strategies():
    retry = _evaluate_item()["retryStrategy"]
    minutes = [w / 60 for w in _waits(retry)]
    promise = re.search(r"`retryStrategy: \{limit: (\d+), retryPolicy: (\w+), expression: \.\.\.\}` "
                        r"with a backoff of (\d+), (\d+) and (\d+) minutes\s+\((\d+) s, (\d+), (\d+) minutes", DOC)
    assert promise, "docs/kubernetes.md states the retry strategy"
    assert int(promise.group(1)) == int(retry["limit"]) and promise.group(2) == retry["retryPolicy"]
    assert [float(promise.group(i)) for i in (3, 4, 5)] == minutes
    step = next(t for t in load_templates()["nlfs-search"]["spec"]["templates"] if t["name"] == "controller-step")
    assert _waits(step["retryStrategy"]) == [float(promise.group(6)), 60 * float(promise.group(7)),
                                             60 * float(promise.group(8))]
    # "anything but" exit 1 and 2 and the pod's own deadline: the expression, as written.
    expression = retry["expression"]
    assert '"1", "2"' in expression and "longer than the specified deadline" in expression
    assert "exit 2" in DOC and "exit 1" in DOC and "OOM kill" in DOC and "pod deleted" in DOC


def test_the_parameter_table_gives_the_templates_defaults():
    section = DOC[DOC.index("### Parameters of `nlfs-search`"):DOC.index("## 6. Follow it")]
    for name in ("gpu-resource", "cache-size", "max-failed-evaluations", "generations-per-workflow"):
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}`"))
        assert f"`{argo.TEMPLATES['nlfs-search'][name]}`" in row, name
    declared = set(argo.TEMPLATES["nlfs-search"])
    first_columns = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    named = {name for column in first_columns for name in re.findall(r"`([\w-]+)`", column)}
    assert declared <= named, f"undocumented parameters: {declared - named}"


def test_the_executor_setting_the_doc_gives_meets_the_restricted_profile():
    block = re.search(r"```yaml\n\s*# workflow-controller-configmap, data:\n(.*?)```", DOC, re.S).group(1)
    config = yaml.safe_load("\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines()))
    security = yaml.safe_load(config["executor"])["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_doc_names_no_file_or_module_that_is_gone():
    for path in re.findall(r"`((?:k8s|workflows|tests|nlfs)/[\w./-]+)`", DOC):
        assert (ROOT / path).exists(), path
    assert "nlfs.workflow" not in DOC and "semaphore-configmap" not in DOC
