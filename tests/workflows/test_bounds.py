"""The arithmetic of the bound: the largest Workflow the defaults allow stays far below the size
at which Argo Workflow objects fail.

Sources of the limits:
- Argo: "Argo stores workflows as Kubernetes resources (that is, in etcd). This creates a limit to
  their size as resources must be under 1MB. Each resource includes the status of each node in its
  /status/nodes field." Past that Argo compresses the node status, then needs an SQL database to
  offload it (argo-workflows docs/offloading-large-workflows.md). Without offloading, a too-large
  Workflow fails ("etcdserver: request is too large", argoproj/argo-workflows#1186).
- etcd: "By default, the maximum size of any request is 1.5 MiB" (etcd.io/docs/latest/dev-guide/limit).
- Per node: argoproj/argo-workflows#1186 reports 1.3 MB of `kubectl get wf -o yaml` for ~2,000
  nodes with non-trivial parameters, ~650 bytes a node. We do not take a number on faith: our model
  builds a representative NodeStatus entry for each node our templates create (with our real
  parameter values, which every evaluate node stores as its inputs) and measures its JSON.
Budget: a quarter of Argo's 1 MB, uncompressed, so compression and offloading are never needed.
"""

from __future__ import annotations

import json
import math

from nlfs import argo
from nlfs.argo import bounds
from nlfs.argo import params as argo_params
from nlfs.errors import NlfsError

RUN = "s3://a-bucket-with-a-longish-name/runs/loss-search-2026-01-01"


def _show(template: str, values: dict[str, str]) -> int:
    rounds = int(values[argo_params.ROUNDS_PARAM[template]])
    pods = math.ceil(int(values["parallelism"]) / int(values["genomes-per-pod"]))
    print(f"\n{template}: {values['parallelism']} evaluations / {values['genomes-per-pod']} per pod "
          f"= {pods} evaluate pods per generation, x {rounds} generations per Workflow")
    total = bounds.FIXED_BYTES
    print(f"  stored template specs (fixed)      {bounds.FIXED_BYTES:>9,} B")
    for depth in range(rounds):
        terms = bounds.generation_bytes(template, values, depth)
        total += sum(terms.values())
        print(f"  generation {depth + 1}: " + ", ".join(f"{k} {v:,} B" for k, v in terms.items()))
    print(f"  total {total:,} B = {total / bounds.ARGO_OBJECT_LIMIT_BYTES:.1%} of Argo's 1 MB, "
          f"{total / (1.5 * 2**20):.1%} of etcd's 1.5 MiB; budget {bounds.WORKFLOW_BUDGET_BYTES:,} B")
    return total


def test_default_search_workflow_stays_far_below_argo_object_limit():
    values = argo_params.effective_params("nlfs-search", RUN)
    total = _show("nlfs-search", values)
    assert total == bounds.estimate_workflow_bytes("nlfs-search", values)
    assert total <= bounds.WORKFLOW_BUDGET_BYTES  # <= 25% of 1 MB: a 4x margin before compression
    # Per evaluate pod: a Retry node and a Pod node, each storing every input (~1.7 kB with ours).
    per_pod = bounds.generation_bytes("nlfs-search", values, 0)["evaluate"] / 8 / 2
    assert 600 < per_pod < 4000  # the order of #1186's ~650 B/node, plus our inputs


def test_default_transfer_workflow_stays_far_below_argo_object_limit():
    values = argo_params.effective_params("nlfs-transfer", RUN)
    assert _show("nlfs-transfer", values) <= bounds.WORKFLOW_BUDGET_BYTES


def test_fixed_part_covers_the_stored_template_specs(templates):
    """status.storedWorkflowTemplateSpec + status.storedTemplates: each spec once, the evaluate pod
    template once; the Workflow's own spec is a few hundred bytes."""
    evaluate = next(t for t in templates["nlfs-evaluate"]["spec"]["templates"] if t["name"] == "evaluate-item")
    for name in ("nlfs-search", "nlfs-transfer"):
        stored = len(json.dumps(templates[name]["spec"])) + len(json.dumps(evaluate)) + 2000
        print(f"{name}: stored specs {stored:,} B")
        assert stored <= bounds.FIXED_BYTES


def test_size_grows_linearly_with_generations_and_render_refuses_past_the_budget():
    small = argo_params.effective_params("nlfs-search", RUN, {"generations-per-workflow": "1"})
    big = argo_params.effective_params("nlfs-search", RUN, {"generations-per-workflow": "2"})
    one = bounds.estimate_workflow_bytes("nlfs-search", small) - bounds.FIXED_BYTES
    two = bounds.estimate_workflow_bytes("nlfs-search", big) - bounds.FIXED_BYTES
    assert 1.9 * one < two < 2.2 * one  # recursion nests names a little: slightly more than linear
    cap = bounds.max_rounds("nlfs-search", argo_params.effective_params("nlfs-search", RUN))
    assert cap >= int(argo_params.TEMPLATES["nlfs-search"]["generations-per-workflow"])
    try:
        argo.render("nlfs-search", RUN, {"generations-per-workflow": str(cap + 1)})
    except NlfsError as err:
        assert f"at most {cap}" in str(err)
    else:
        raise AssertionError("render accepted a Workflow over the size budget")


def test_a_big_cluster_setting_is_caught_before_submission():
    """64 GPUs, one genome per pod, 10 generations would be ~2.3 MB: refused with the fix."""
    params = {"parallelism": "64", "genomes-per-pod": "1", "generations-per-workflow": "10"}
    values = argo_params.effective_params("nlfs-search", RUN, params)
    assert bounds.estimate_workflow_bytes("nlfs-search", values) > bounds.ARGO_OBJECT_LIMIT_BYTES
    ok = dict(params, **{"genomes-per-pod": "4", "generations-per-workflow": "2"})
    assert argo.render("nlfs-search", RUN, ok)


def test_even_with_every_retry_used_the_default_workflow_stays_under_argo_limit(templates):
    """Each retry adds a pod node: with retryStrategy.limit retries for every pod, a retried step has
    1 Retry node + (limit + 1) Pod nodes instead of 1 + 1."""
    limit = int(next(t for t in templates["nlfs-evaluate"]["spec"]["templates"]
                     if t["name"] == "evaluate-item")["retryStrategy"]["limit"])
    factor = (1 + (limit + 1)) / 2
    values = argo_params.effective_params("nlfs-search", RUN)
    rounds = int(values["generations-per-workflow"])
    worst = bounds.FIXED_BYTES + sum(
        t["steps, groups, skipped"] + factor * (t["controller"] + t["evaluate"])
        for t in (bounds.generation_bytes("nlfs-search", values, d) for d in range(rounds)))
    print(f"\nworst case, {limit} retries of every pod: {worst:,.0f} B "
          f"= {worst / bounds.ARGO_OBJECT_LIMIT_BYTES:.1%} of Argo's 1 MB")
    assert worst < 0.6 * bounds.ARGO_OBJECT_LIMIT_BYTES
