"""`nlfs workflow render|submit|status`: run nlfs on Argo Workflows (docs/kubernetes.md).

Render prints the Workflow object; submit sends the same object to the Kubernetes API or an Argo
Server; status lists the Workflows of a run. Parsing and printing only: the work is in nlfs.workflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "workflow",
        help="render, submit or list the Argo Workflows of a run",
        description="Run nlfs on Kubernetes with Argo Workflows (WorkflowTemplates from workflows/).",
    )
    actions = parser.add_subparsers(dest="workflow_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    render = actions.add_parser("render", help="print the Workflow object that `submit` would send")
    _add_workflow_args(render)
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="format (default yaml)")
    render.set_defaults(func=_render)

    submit = actions.add_parser("submit", help="create the Workflow in the cluster")
    _add_workflow_args(submit)
    _add_connection_args(submit)
    submit.set_defaults(func=_submit)

    status = actions.add_parser("status", help="list the Workflows of a run (first and continuations)")
    status.add_argument("run", metavar="RUN", help="run URI, e.g. s3://bucket/runs/r1")
    status.add_argument("-n", "--namespace", default=None, help="namespace (default nlfs)")
    status.add_argument("--json", action="store_true", help="print the summaries as JSON")
    _add_connection_args(status)
    status.set_defaults(func=_status)


def _add_workflow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run URI, e.g. s3://bucket/runs/r1 ('' for a run-less nlfs-evaluate)")
    parser.add_argument("-t", "--template", default="nlfs-search",
                        help="WorkflowTemplate: nlfs-search (default), nlfs-evaluate, nlfs-transfer")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter (repeatable), e.g. -p parallelism=32 -p gpus=1")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default nlfs)")


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument("--argo-server", default=os.environ.get("ARGO_SERVER") or None, metavar="URL",
                        help="submit through an Argo Server instead (default $ARGO_SERVER); token from $ARGO_TOKEN")


def _build(args) -> dict:
    from nlfs import workflow

    params = workflow.parse_params(args.param)
    return workflow.render(args.template, args.run, params,
                           namespace=args.namespace or workflow.DEFAULT_NAMESPACE)


def _render(args) -> int:
    obj = _build(args)
    if args.output == "json":
        print(json.dumps(obj, indent=2))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False))
    return 0


def _submit(args) -> int:
    from nlfs import workflow

    obj = _build(args)
    created = workflow.submit(obj, kubeconfig=args.kubeconfig, context=args.context,
                              argo_server=args.argo_server)
    name = (created.get("metadata") or {}).get("name", "?")
    namespace = obj["metadata"]["namespace"]
    print(f"workflow.argoproj.io/{name} created in namespace {namespace}")
    print(f"watch: argo watch -n {namespace} {name}   |   nlfs workflow status {args.run} -n {namespace}",
          file=sys.stderr)
    return 0


def _status(args) -> int:
    from nlfs import workflow

    namespace = args.namespace or workflow.DEFAULT_NAMESPACE
    rows = [workflow.summarize(wf) for wf in workflow.list_run_workflows(
        args.run, namespace=namespace, kubeconfig=args.kubeconfig, context=args.context,
        argo_server=args.argo_server)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no Workflows for {args.run} in namespace {namespace} "
              f"(label {workflow.RUN_LABEL}={workflow.run_label(args.run)})")
        return 0
    columns = ("name", "template", "phase", "progress", "started", "finished", "message")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns[:-1]}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns[:-1]) + "  MESSAGE")
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns[:-1]) + "  " + row["message"])
    return 0
