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
from nlfs.files import loads_json, read_file_bytes
from nlfs.genome.ops import LEAVES, OPS

GENOME_FORMAT = "nlfs.genome/v1"
MAX_NODES = 64  # hand-written losses need more than the search's 5; far fewer than would hurt
MAX_FILE_BYTES = 256 * 1024

Input = Union[str, int]  # a leaf name or the index of another node


class GenomeError(NlfsError):
    """A genome that is malformed (bad JSON, unknown operator) or structurally invalid."""


@dataclass(frozen=True)
class Node:
    """One operator over its inputs. `dormant` is an operator of the other arity that the node
    keeps for a unary <-> binary toggle (METHOD.md 3, the authors' `Node.un`/`Node.bin`); it does
    not change the function, so the content id ignores it."""

    op: str
    inputs: tuple[Input, ...]
    dormant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "in": list(self.inputs)}
        if self.dormant is not None:
            out["dormant"] = self.dormant
        return out


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
                data = loads_json(data, source)
            except NlfsError as err:
                raise GenomeError(str(err)) from None
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
        """Read a genome file: a regular file (a FIFO or a directory is refused at once, never
        waited on), refused before it is read whole when larger than a genome can be."""
        try:
            data = read_file_bytes(path, str(path), MAX_FILE_BYTES, what="genome")
        except NlfsError as err:
            raise GenomeError(str(err)) from None
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
        other = replace(self, sign=sign)
        for name in ("active", "order", "active_leaves"):  # cached, and independent of the sign
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @cached_property
    def active(self) -> tuple[int, ...]:
        """Indices of nodes reachable from the output, in index order."""
        nodes = self.nodes
        seen = {self.output}
        stack = [self.output]
        while stack:
            for x in nodes[stack.pop()].inputs:
                if type(x) is int and x not in seen:
                    seen.add(x)
                    stack.append(x)
        return tuple(sorted(seen))

    @cached_property
    def order(self) -> tuple[int, ...] | None:
        """Active nodes in evaluation order (inputs first), or None if the active part has a cycle."""
        nodes = self.nodes
        state = [0] * len(nodes)  # 0 unseen, 1 on the current path, 2 done
        order: list[int] = []
        stack = [self.output]
        while stack:
            i = stack[-1]
            if state[i] == 0:
                state[i] = 1
                for x in reversed(nodes[i].inputs):  # reversed: the first input runs first
                    if type(x) is int:
                        if state[x] == 1:
                            return None  # an input on the current path: a cycle
                        if state[x] == 0:
                            stack.append(x)
            else:
                stack.pop()
                if state[i] == 1:  # all inputs done (a repeated entry finds it done already)
                    state[i] = 2
                    order.append(i)
        return tuple(order)

    @cached_property
    def active_leaves(self) -> frozenset[str]:
        nodes = self.nodes
        return frozenset(x for i in self.active for x in nodes[i].inputs if type(x) is str)

    def structural_problem(self) -> str | None:
        """None if the active graph is usable, else the integrity reason: 'cycle' or 'missing_leaf'."""
        order = self.order
        if order is None:
            return "cycle"
        nodes = self.nodes  # acyclic: the order holds exactly the active nodes
        leaves = {x for i in order for x in nodes[i].inputs if type(x) is str}
        if "y" not in leaves or "p" not in leaves:
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
        swapped operands of add/mul/max/min, a subexpression written twice) have equal
        canonical forms and so equal ids.
        """
        order = self.order
        if order is None:  # a cyclic graph has no canonical form; hash it as written
            return self
        nodes = self.nodes
        # A subtree's key digests its operator and its operands' keys: canonical, and of fixed
        # size where the written-out expression could double with every level of sharing.
        keys: dict[int, str] = {}
        operands: dict[int, tuple[Input, ...]] = {}  # inputs in canonical order
        for i in order:
            node = nodes[i]
            ins = node.inputs
            args = [x if type(x) is str else keys[x] for x in ins]
            if OPS[node.op].commutative and args[1] < args[0]:
                args.reverse()
                ins = ins[::-1]
            operands[i] = ins
            keys[i] = hashlib.sha256(f"{node.op}({','.join(args)})".encode()).hexdigest()
        # Renumber by a post-order walk from the output that visits operands in canonical
        # order; equal subtrees get one node.
        new_index: dict[str, int] = {}
        new_nodes: list[Node] = []
        stack = [(self.output, False)]
        while stack:
            i, ready = stack.pop()
            if keys[i] in new_index:
                continue
            if ready:
                new_index[keys[i]] = len(new_nodes)
                mapped = tuple(x if type(x) is str else new_index[keys[x]] for x in operands[i])
                new_nodes.append(Node(nodes[i].op, mapped))
            else:
                stack.append((i, True))
                stack.extend((x, False) for x in reversed(operands[i]) if type(x) is int)
        return Genome(tuple(new_nodes), new_index[keys[self.output]], self.sign, self.label_smoothing)

    @cached_property
    def id(self) -> str:
        """16 hex digits of the SHA-256 of the canonical active subgraph's JSON."""
        c = self.canonical
        # Written out by hand, byte for byte what json.dumps(..., separators=(",", ":"),
        # sort_keys=True) writes for these plain names and numbers, in a third of the time.
        nodes = ",".join([_node_json(n) for n in c.nodes])
        payload = (f'{{"label_smoothing":{c.label_smoothing!r},"nodes":[{nodes}],'
                   f'"output":{c.output},"sign":{c.sign}}}')
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash((self.nodes, self.output, self.sign, self.label_smoothing))


def _node_json(node: Node) -> str:
    ins = ",".join([f'"{x}"' if type(x) is str else str(x) for x in node.inputs])
    return f'{{"in":[{ins}],"op":"{node.op}"}}'


def _parse_node(raw: Any, i: int, count: int, source: str) -> Node:
    where = f"{source}: nodes[{i}]"
    if not isinstance(raw, dict):
        raise GenomeError(f"{where}: a node is an object with 'op' and 'in'")
    unknown = set(raw) - {"op", "in", "dormant"}
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
    dormant = raw.get("dormant")
    if dormant is not None and (not isinstance(dormant, str) or dormant not in OPS or OPS[dormant].arity == arity):
        raise GenomeError(f"{where}.dormant: {dormant!r} is not an operator of the other arity")
    return Node(op, tuple(ins), dormant)
