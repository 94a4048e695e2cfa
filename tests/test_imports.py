"""No import circle in nlfs/: every import statement of every module, at module level or inside a
function, is an edge of a graph that must have no cycle; and the layers point down only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nlfs"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The nlfs module an import names (`a.b.c` may be a module or a name inside `a.b`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the nlfs modules it imports anywhere in its body (functions included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import mod` is an edge to the submodule when there is one, else to pkg.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                if target == "nlfs" or target.startswith("nlfs."):
                    resolved = _resolve(target, modules)
                    if resolved and resolved != name and resolved != "nlfs":
                        edges.add(resolved)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`, each as the path that closes it (Tarjan's strongly connected
    components, reported as one cycle per component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_nlfs_is_part_of_an_import_circle():
    graph = import_graph()
    assert len(graph) > 50 and graph["nlfs.cli.main"], "the walk found nlfs's modules"
    assert cycles(graph) == [], "import circles: " + "; ".join(" <-> ".join(c) for c in cycles(graph))


def test_the_walk_sees_imports_inside_functions_and_finds_a_planted_circle():
    graph = import_graph()
    # nlfs.cli.main imports its verb modules inside a function, by name: not an edge. A function-
    # level `from nlfs.argo.client import connect` in cli/workflow_cmds.py is one.
    assert "nlfs.argo.client" in graph["nlfs.cli.workflow_cmds"]
    assert "nlfs.errors" in graph["nlfs.cli.workflow_cmds"]  # imported inside a handler only
    planted = {k: set(v) for k, v in graph.items()}
    planted["nlfs.errors"].add("nlfs.cli.workflow_cmds")
    assert any({"nlfs.errors", "nlfs.cli.workflow_cmds"} <= set(c) for c in cycles(planted))


def test_lower_layers_never_import_upper_ones():
    """cli -> local/argo/report/notebook -> evolution/evaluate -> genome/train/store (ARCHITECTURE.md)."""
    graph = import_graph()
    upper = {"nlfs.cli", "nlfs.local", "nlfs.argo", "nlfs.report", "nlfs.notebook"}
    lower = ("nlfs.genome", "nlfs.train", "nlfs.store", "nlfs.evolution", "nlfs.evaluate", "nlfs.runs")
    for module, edges in graph.items():
        if module.startswith(lower):
            bad = sorted(e for e in edges if any(e == u or e.startswith(u + ".") for u in upper))
            assert not bad, f"{module} imports {bad}"
    assert not any(e.startswith("nlfs.cli") for m, edges in graph.items() if not m.startswith("nlfs.cli")
                   for e in edges), "only the CLI imports the CLI"
