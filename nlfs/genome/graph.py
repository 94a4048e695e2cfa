"""The loss genome: a small graph over the leaves y, p, 1, -1, and its `nlfs.genome/v1` JSON form.

A genome is data, never code: parsing is bounded in size and depth, and every problem is an
`NlfsError` naming the field. The content id hashes the canonical active subgraph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Union

from nlfs.errors import NlfsError
from nlfs.genome.ops import LEAVES, OPS

GENOME_FORMAT = "nlfs.genome/v1"
MAX_NODES = 64  # hand-written losses need more than the search's 5; far fewer than would hurt
MAX_FILE_BYTES = 256 * 1024

Input = Union[str, int]  # a leaf name or the index of another node


class GenomeError(NlfsError):
    """A genome that is malformed (bad JSON, unknown operator) or structurally invalid."""


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[Input, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "in": list(self.inputs)}


@dataclass(frozen=True)
class Genome:
    """A loss: t = nodes[output](...) of shape [batch, classes]; loss = sign * mean_b sum_c t.

    Nodes may reference any other node by index (the search space lets hidden nodes feed each
    other in any order); only nodes reachable from `output` are active, and the active part
    must be acyclic and reach both `y` and `p` (`structural_problem()` says what is wrong).
    """

    nodes: tuple[Node, ...]
    output: int
    sign: int = 1
    label_smoothing: float = 0.0
    name: str | None = field(default=None, compare=False)  # for display only, not hashed

    # ---- JSON -------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any], *, source: str = "genome") -> "Genome":
        """Parse and validate the format. Raises GenomeError naming the field at fault."""
        if isinstance(data, (str, bytes)):
            if len(data) > MAX_FILE_BYTES:
                raise GenomeError(f"{source}: {len(data)} bytes is larger than a genome can be "
                                  f"({MAX_FILE_BYTES} bytes at most)")
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as err:
                raise GenomeError(f"{source}: not JSON: {err}") from None
        if not isinstance(data, dict):
            raise GenomeError(f"{source}: a genome is a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"format", "nodes", "output", "sign", "label_smoothing", "name"}
        if unknown:
            raise GenomeError(f"{source}: unknown field {sorted(unknown)[0]!r}")
        if data.get("format") != GENOME_FORMAT:
            raise GenomeError(f"{source}: format must be {GENOME_FORMAT!r}, got {data.get('format')!r}")
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise GenomeError(f"{source}: nodes must be a non-empty list")
        if len(raw_nodes) > MAX_NODES:
            raise GenomeError(f"{source}: nodes has {len(raw_nodes)} entries, at most {MAX_NODES} allowed")
        nodes = tuple(_parse_node(raw, i, len(raw_nodes), source) for i, raw in enumerate(raw_nodes))
        output = data.get("output")
        if type(output) is not int or not 0 <= output < len(nodes):
            raise GenomeError(f"{source}: output must be a node index in 0..{len(nodes) - 1}, got {output!r}")
        sign = data.get("sign", 1)
        if sign not in (1, -1) or isinstance(sign, bool):
            raise GenomeError(f"{source}: sign must be 1 or -1, got {sign!r}")
        ls = data.get("label_smoothing", 0.0)
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0.0 <= ls < 1.0:
            raise GenomeError(f"{source}: label_smoothing must be a number in [0, 1), got {ls!r}")
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise GenomeError(f"{source}: name must be a string")
        return cls(nodes, output, int(sign), float(ls), name)

    @classmethod
    def from_file(cls, path: str) -> "Genome":
        """Read a genome file; a file too large is refused before it is read whole."""
        import os

        try:
            size = os.path.getsize(path)
            if size > MAX_FILE_BYTES:
                raise GenomeError(f"{path}: {size} bytes is larger than a genome can be "
                                  f"({MAX_FILE_BYTES} bytes at most)")
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise GenomeError(f"{path}: cannot read: {err.strerror or err}") from None
        return cls.from_json(data, source=path)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": GENOME_FORMAT, "nodes": [n.to_dict() for n in self.nodes],
                               "output": self.output, "sign": self.sign,
                               "label_smoothing": self.label_smoothing}
        if self.name:
            out["name"] = self.name
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, separators=None if indent else (",", ":"))

    # ---- structure --------------------------------------------------------------------
    def with_sign(self, sign: int) -> "Genome":
        return replace(self, sign=sign)

    @cached_property
    def active(self) -> tuple[int, ...]:
        """Indices of nodes reachable from the output, in index order."""
        seen: set[int] = set()
        stack = [self.output]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(x for x in self.nodes[i].inputs if isinstance(x, int))
        return tuple(sorted(seen))

    @cached_property
    def order(self) -> tuple[int, ...] | None:
        """Active nodes in evaluation order (inputs first), or None if the active part has a cycle."""
        state: dict[int, int] = {}  # 1 visiting, 2 done
        order: list[int] = []
        stack: list[tuple[int, int]] = [(self.output, 0)]
        while stack:
            i, k = stack.pop()
            if k == 0:
                if state.get(i) == 2:
                    continue
                if state.get(i) == 1:
                    return None
                state[i] = 1
            ins = [x for x in self.nodes[i].inputs if isinstance(x, int)]
            if k < len(ins):
                stack.append((i, k + 1))
                j = ins[k]
                if state.get(j) == 1:
                    return None
                if state.get(j) != 2:
                    stack.append((j, 0))
            else:
                state[i] = 2
                order.append(i)
        return tuple(order)

    @cached_property
    def active_leaves(self) -> frozenset[str]:
        return frozenset(x for i in self.active for x in self.nodes[i].inputs if isinstance(x, str))

    def structural_problem(self) -> str | None:
        """None if the active graph is usable, else the integrity reason: 'cycle' or 'missing_leaf'."""
        if self.order is None:
            return "cycle"
        if not {"y", "p"} <= self.active_leaves:
            return "missing_leaf"
        return None

    def validate(self, source: str = "genome") -> "Genome":
        """Raise GenomeError if the active graph has a cycle or does not reach y and p."""
        problem = self.structural_problem()
        if problem == "cycle":
            raise GenomeError(f"{source}: the active graph has a cycle")
        if problem == "missing_leaf":
            missing = sorted({"y", "p"} - self.active_leaves)
            raise GenomeError(f"{source}: {' and '.join(missing)} not reachable from the output")
        return self

    # ---- identity ---------------------------------------------------------------------
    @cached_property
    def canonical(self) -> "Genome":
        """The active subgraph, renumbered in a canonical order, with commutative operands sorted.

        Two genomes that spell the same graph (other node order, unreachable extra nodes,
        swapped operands of add/mul/max/min) have equal canonical forms and so equal ids.
        """
        order = self.order
        if order is None:  # a cyclic graph has no canonical form; hash it as written
            return self
        keys: dict[int, str] = {}
        for i in order:
            node = self.nodes[i]
            args = [x if isinstance(x, str) else keys[x] for x in node.inputs]
            if OPS[node.op].commutative:
                args.sort()
            keys[i] = f"{node.op}({','.join(args)})"
        # Renumber by a deterministic post-order walk that visits operands in canonical order.
        new_index: dict[str, int] = {}
        new_nodes: list[Node] = []

        def visit(i: int) -> int:
            key = keys[i]
            if key in new_index:
                return new_index[key]
            node = self.nodes[i]
            ins = list(node.inputs)
            if OPS[node.op].commutative:
                ins.sort(key=lambda x: x if isinstance(x, str) else keys[x])
            mapped = tuple(x if isinstance(x, str) else visit(x) for x in ins)
            new_index[key] = len(new_nodes)
            new_nodes.append(Node(node.op, mapped))
            return new_index[key]

        out = visit(self.output)
        return Genome(tuple(new_nodes), out, self.sign, self.label_smoothing)

    @cached_property
    def id(self) -> str:
        """16 hex digits of the SHA-256 of the canonical active subgraph's JSON."""
        c = self.canonical
        payload = json.dumps({"nodes": [n.to_dict() for n in c.nodes], "output": c.output,
                              "sign": c.sign, "label_smoothing": c.label_smoothing},
                             separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash((self.nodes, self.output, self.sign, self.label_smoothing))


def _parse_node(raw: Any, i: int, count: int, source: str) -> Node:
    where = f"{source}: nodes[{i}]"
    if not isinstance(raw, dict):
        raise GenomeError(f"{where}: a node is an object with 'op' and 'in'")
    unknown = set(raw) - {"op", "in"}
    if unknown:
        raise GenomeError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise GenomeError(f"{where}.op: unknown operator {op!r}")
    ins = raw.get("in")
    if not isinstance(ins, list):
        raise GenomeError(f"{where}.in: must be a list of inputs")
    arity = OPS[op].arity
    if len(ins) != arity:
        raise GenomeError(f"{where}.in: {op} takes {arity} input{'s' if arity > 1 else ''}, got {len(ins)}")
    for x in ins:
        if isinstance(x, bool) or not isinstance(x, (str, int)):
            raise GenomeError(f"{where}.in: input {x!r} is neither a leaf name nor a node index")
        if isinstance(x, str) and x not in LEAVES:
            raise GenomeError(f"{where}.in: unknown leaf {x!r} (leaves: {', '.join(LEAVES)})")
        if isinstance(x, int) and not 0 <= x < count:
            raise GenomeError(f"{where}.in: node index {x} out of range 0..{count - 1}")
        if x == i and isinstance(x, int):
            raise GenomeError(f"{where}.in: a node cannot take itself as input")
    if arity == 2 and ins[0] == ins[1] and type(ins[0]) is type(ins[1]):
        raise GenomeError(f"{where}.in: a binary node takes two distinct inputs")
    return Node(op, tuple(ins))
