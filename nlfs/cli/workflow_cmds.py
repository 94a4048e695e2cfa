"""`nlfs workflow render|submit|lint|status|watch|logs|stop|resubmit`: run nlfs on Argo Workflows.

Render prints the Workflow object; submit sends the same object to the Kubernetes API or an Argo
Server (found as the argo CLI finds it: $ARGO_SERVER host:port, $ARGO_SECURE, ...); the other verbs
follow a run across its whole chain of continuations. Parsing and printing only: the work is in
nlfs.argo (docs/kubernetes.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "workflow",
        help="render, submit and follow the Argo Workflows of a run",
        description="Run nlfs on Kubernetes with Argo Workflows (WorkflowTemplates from workflows/). "
                    "An Argo Server is used when --argo-server or $ARGO_SERVER (host:port, as the argo "
                    "CLI reads it, with $ARGO_SECURE, $ARGO_BASE_HREF, $ARGO_TOKEN, "
                    "$ARGO_INSECURE_SKIP_VERIFY) names one; otherwise the Kubernetes API.",
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

    lint = actions.add_parser("lint", help="have the Argo Server check the Workflow (and template files)")
    _add_workflow_args(lint)
    lint.add_argument("--template-file", action="append", default=[], metavar="FILE",
                      help="also check the WorkflowTemplates in FILE (repeatable), e.g. workflows/nlfs-search.yaml")
    _add_connection_args(lint)
    lint.set_defaults(func=_lint)

    status = actions.add_parser("status", help="list the Workflows of a run (first and continuations)")
    _add_run_args(status)
    status.add_argument("--json", action="store_true", help="print the summaries as JSON")
    status.set_defaults(func=_status)

    watch = actions.add_parser("watch", help="follow a run's Workflows until its chain ends")
    _add_run_args(watch)
    watch.add_argument("--interval", type=_positive_float, default=15.0, metavar="SECONDS",
                       help="seconds between looks (default 15)")
    watch.set_defaults(func=_watch)

    logs = actions.add_parser("logs", help="print the logs of a run's pods, Workflow by Workflow")
    _add_run_args(logs)
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing until the chain ends (needs an Argo Server)")
    logs.set_defaults(func=_logs)

    stop = actions.add_parser("stop", help="stop a run's running (and queued) Workflows")
    _add_run_args(stop)
    stop.set_defaults(func=_stop)

    resubmit = actions.add_parser("resubmit", help="submit a stopped or failed run again, with its parameters")
    _add_run_args(resubmit)
    resubmit.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                          help="change a parameter of the last Workflow (repeatable)")
    resubmit.set_defaults(func=_resubmit)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_workflow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run URI, e.g. s3://bucket/runs/r1 ('' for a run-less nlfs-evaluate)")
    parser.add_argument("-t", "--template", default="nlfs-search",
                        help="WorkflowTemplate: nlfs-search (default), nlfs-evaluate, nlfs-transfer")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter (repeatable), e.g. -p parallelism=32 -p gpus=1")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default $ARGO_NAMESPACE, else nlfs)")


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run URI, e.g. s3://bucket/runs/r1")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default $ARGO_NAMESPACE, else nlfs)")
    _add_connection_args(parser)


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument("-s", "--argo-server", default=None, metavar="HOST:PORT",
                        help="use this Argo Server instead of the Kubernetes API (default $ARGO_SERVER); "
                             "TLS unless $ARGO_SECURE=false, token from $ARGO_TOKEN")


def _namespace(args) -> str:
    from nlfs.argo.settings import namespace_from

    return namespace_from(args.namespace)


def _backend(args):
    from nlfs.argo.client import connect
    from nlfs.argo.settings import server_from

    return connect(server_from(args.argo_server), kubeconfig=args.kubeconfig, context=args.context)


def _build(args) -> dict:
    from nlfs import argo

    return argo.render(args.template, args.run, argo.parse_params(args.param), namespace=_namespace(args))


def _render(args) -> int:
    obj = _build(args)
    if args.output == "json":
        print(json.dumps(obj, indent=2))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False))
    return 0


def _chain(backend, run: str, namespace: str) -> list[dict]:
    from nlfs.argo import chain

    return chain.ordered(backend.list(namespace, chain.selector(run)))


def _refuse_a_second_chain(backend, run: str, namespace: str, template: str) -> None:
    """One chain per run: the templates' mutex would queue a second one; say so instead."""
    from nlfs.argo import chain
    from nlfs.argo.params import ROUNDS_PARAM
    from nlfs.errors import NlfsError

    if template not in ROUNDS_PARAM:
        return  # a single evaluation takes no run mutex and may run beside a search
    running = chain.active(_chain(backend, run, namespace))
    if running:
        names = ", ".join(f"{wf['metadata'].get('name', '?')} ({chain.phase(wf) or 'Pending'})" for wf in running)
        raise NlfsError(f"{run} already has an active Workflow: {names}; one chain runs per run, "
                        f"stop it first (nlfs workflow stop {run} -n {namespace})")


def _created(backend, created: dict, namespace: str, run: str) -> None:
    name = (created.get("metadata") or {}).get("name", "?")
    print(f"workflow.argoproj.io/{name} created in namespace {namespace}")
    link = backend.link(namespace, name)
    if link:
        print(f"ui: {link}")
    print(f"follow: nlfs workflow watch {run} -n {namespace}   |   nlfs workflow logs {run} -n {namespace} -f",
          file=sys.stderr)


def _submit(args) -> int:
    obj = _build(args)
    namespace = obj["metadata"]["namespace"]
    backend = _backend(args)
    _refuse_a_second_chain(backend, args.run, namespace, args.template)
    _created(backend, backend.create(obj), namespace, args.run)
    return 0


def _lint(args) -> int:
    from nlfs.errors import NlfsError
    from nlfs.formats import load_yaml_documents, read_text_file

    obj = _build(args)
    namespace = obj["metadata"]["namespace"]
    backend = _backend(args)
    backend.lint(namespace, obj)
    print(f"Workflow of {args.template}: accepted by {backend.where}")
    for path in args.template_file:
        docs = load_yaml_documents(read_text_file(path, what="template file"), path)
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "WorkflowTemplate":
                raise NlfsError(f"{path}: holds something other than a WorkflowTemplate")
            backend.lint_template(namespace, doc)
            print(f"WorkflowTemplate {doc.get('metadata', {}).get('name', '?')} ({path}): accepted")
    return 0


def _status(args) -> int:
    from nlfs.argo import chain

    namespace = _namespace(args)
    backend = _backend(args)
    workflows = _chain(backend, args.run, namespace)
    rows = [chain.summarize(wf) for wf in workflows]
    for row in rows:
        link = backend.link(namespace, row["name"]) if row["name"] else None
        if link:
            row["ui"] = link
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no Workflows for {args.run} in namespace {namespace} (label {chain.selector(args.run)})")
        return 0
    _print_table(rows)
    return 0


def _print_table(rows: list[dict]) -> None:
    columns = ("name", "template", "phase", "progress", "started", "finished")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns) + "  MESSAGE")
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns) + "  " + row["message"])
    links = [f"ui: {row['ui']}" for row in rows if row.get("ui")]
    if links:
        print(links[-1])


def _watch(args) -> int:
    from nlfs.argo import chain

    namespace = _namespace(args)
    backend = _backend(args)
    seen: dict[str, tuple[str, str, str]] = {}
    while True:
        workflows = _chain(backend, args.run, namespace)
        for row in map(chain.summarize, workflows):
            state = (row["phase"], row["progress"], row["message"])
            if seen.get(row["name"]) != state:
                seen[row["name"]] = state
                message = f"  {row['message']}" if row["message"] else ""
                print(f"{row['name']}  {row['phase']}  {row['progress']}{message}", flush=True)
        if not workflows:
            print(f"no Workflows for {args.run} in namespace {namespace}")
            return 0
        if chain.finished(workflows):
            last = workflows[-1]
            ok = chain.phase(last) == "Succeeded"
            print(f"{args.run}: the chain ended, {last['metadata'].get('name', '?')} {chain.phase(last)}")
            return 0 if ok else 1
        time.sleep(args.interval)


def _logs(args) -> int:
    from nlfs.argo import chain

    namespace = _namespace(args)
    backend = _backend(args)
    printed: set[str] = set()

    def sink(pod: str, line: str) -> None:
        print(f"{pod}: {line}", flush=True)

    while True:
        workflows = _chain(backend, args.run, namespace)
        if not workflows:
            print(f"no Workflows for {args.run} in namespace {namespace}")
            return 0
        for wf in workflows:
            name = wf["metadata"].get("name", "")
            if name in printed:
                continue
            # Following, a running Workflow's stream ends when it does; its continuation exists
            # by then (created before the last step) and is the next one here.
            backend.logs(namespace, name, sink, follow=args.follow and chain.phase(wf) in chain.ACTIVE_PHASES)
            printed.add(name)
        if not args.follow or chain.finished(workflows):
            return 0
        time.sleep(5)


def _stop(args) -> int:
    from nlfs.argo import chain

    namespace = _namespace(args)
    backend = _backend(args)
    running = chain.active(_chain(backend, args.run, namespace))
    if not running:
        print(f"{args.run}: no running or queued Workflow in namespace {namespace}")
        return 0
    for wf in running:
        name = wf["metadata"]["name"]
        backend.stop(namespace, name)
        print(f"workflow.argoproj.io/{name} stopped")
    return 0


def _resubmit(args) -> int:
    from nlfs import argo
    from nlfs.argo import chain
    from nlfs.errors import NlfsError

    namespace = _namespace(args)
    backend = _backend(args)
    workflows = _chain(backend, args.run, namespace)
    if not workflows:
        raise NlfsError(f"no Workflow of {args.run} in namespace {namespace}: submit it with "
                        f"`nlfs workflow submit {args.run}`")
    template, run, params = chain.arguments(workflows[-1])
    if run != args.run:
        raise NlfsError(f"the last Workflow labelled with {args.run} runs {run!r}; resubmit it by hand")
    _refuse_a_second_chain(backend, run, namespace, template)
    params.update(argo.parse_params(args.param))
    obj = argo.render(template, run, params, namespace=namespace)
    _created(backend, backend.create(obj), namespace, run)
    return 0
