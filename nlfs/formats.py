"""What every file format of the project shares: reading text files, YAML/JSON into pydantic
models with one-line errors, number types that refuse booleans and non-finite values, a canonical
JSON form and hash, and dotted `--set key=value` overrides.

Everything a user or a store hands us goes through here, so every reader refuses the same
things: files that are not regular files (a FIFO would block), text that is not UTF-8, YAML
with duplicate keys or alias bombs, JSON with NaN/Infinity, and `true` where a number belongs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Callable, TypeVar

import yaml
from pydantic import AllowInfNan, BaseModel, BeforeValidator, Field, ValidationError

from nlfs.errors import NlfsError
from nlfs.files import (  # noqa: F401 - the readers every format uses, re-exported
    MAX_TEXT_BYTES,
    decode_text,
    loads_json,
    printable,
    read_file_bytes,
    read_text_file,
)

M = TypeVar("M", bound=BaseModel)

# YAML nodes visited with aliases expanded: a profile has ~50. Aliases are followed by whatever
# walks the data next (pydantic, our dumps), so nine nested aliases of nine would be 9^9 nodes.
MAX_YAML_NODES = 100_000


# ---- numbers ---------------------------------------------------------------------------------

def _not_bool(value: Any) -> Any:
    # bool is an int in Python, so pydantic takes `tournament: true` as 1 and `lr: true` as 1.0.
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true/false")
    return value


NOT_BOOL = BeforeValidator(_not_bool)
"""Field annotation: refuse true/false where a number belongs (`Annotated[int, NOT_BOOL]`)."""

Int = Annotated[int, NOT_BOOL]
"""An integer that is not a boolean (strings of digits are still read, as pydantic does)."""

Float = Annotated[float, NOT_BOOL, AllowInfNan(False)]
"""A finite float that is not a boolean: NaN, Infinity, `.nan` and `.inf` are refused."""

SEED_MAX = 2**32 - 1
Seed = Annotated[int, NOT_BOOL, Field(ge=0, le=SEED_MAX)]
"""A random seed: 0..2**32-1. numpy's SeedSequence takes any non-negative integer, but
torch.manual_seed stops at 2**64-1 and training seeds `seed + 1` generators, and the legacy
numpy RandomState (sklearn) at 2**32-1, so every seed fits all of them."""


def check_seed(value: int, what: str = "seed") -> int:
    """`value` if it is a valid seed, else NlfsError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise NlfsError(f"{what} must be an integer in 0..{SEED_MAX}, got {value!r}")
    return value


# ---- JSON ------------------------------------------------------------------------------------

def json_problem(data: bytes | str) -> str | None:
    """None if `data` is plain JSON, else what is wrong with it (pydantic's own parser)."""
    from pydantic_core import from_json

    try:
        from_json(data, allow_inf_nan=False)
        return None
    except ValueError as err:
        try:
            from_json(data, allow_inf_nan=True)
        except ValueError:
            return f"not JSON: {err}"
        return "NaN and Infinity are not JSON numbers"


class CanonicalModel(BaseModel):
    """A model with a canonical JSON form (sorted keys), its 16-hex hash, and YAML."""

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def first_error(err: ValidationError, what: str) -> str:
    """`field.path: message` of the first problem pydantic found."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or what
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{where}: {msg}"


def validate(cls: type[M], data: Any, source: str, what: str) -> M:
    """`cls` from plain data, or NlfsError `source: field: message`."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise NlfsError(f"{source}: {first_error(err, what)}") from None


def parse_stored_json(cls: type[M], data: bytes | str, source: str, *, lead: str | None = None,
                      what: str = "object") -> M:
    """A stored JSON object; a corrupt one is NlfsError `<lead>: field: message`, the lead
    `source is corrupt` unless given (`what` names the whole object in the message).

    pydantic's JSON parser reads NaN and Infinity, which are not JSON and which no record of
    ours may hold: they are refused first, whatever the model's fields are.
    """
    lead = lead or f"{source} is corrupt"
    problem = json_problem(data)
    if problem is not None:
        raise NlfsError(f"{lead}: {problem}")
    try:
        return cls.model_validate_json(data)
    except ValidationError as err:
        raise NlfsError(f"{lead}: {first_error(err, what)}") from None


# ---- YAML ------------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges, and may be overridden: that is its point
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: the base class raises its own error for it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(data: Any, limit: int) -> int:
    """Containers and values in `data` with shared (aliased) parts counted at every use, up to `limit`."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml(text: str | bytes | None, source: str) -> Any:
    """The one YAML reader: safe types only, no duplicate keys, bounded size; NlfsError otherwise."""
    if text is None:
        return None
    return _load(lambda t: yaml.load(t, Loader=_StrictLoader), text, source)  # noqa: S506 - a SafeLoader


def load_yaml_documents(text: str | bytes, source: str) -> list:
    """Every document of a multi-document YAML text (Kubernetes manifests), read as `load_yaml`
    reads one; empty documents left out."""
    docs = _load(lambda t: list(yaml.load_all(t, Loader=_StrictLoader)), text, source)  # noqa: S506
    return [d for d in docs if d is not None]


def _load(parse, text: str | bytes, source: str) -> Any:
    text = decode_text(text, source)
    try:
        data = parse(text)
    except yaml.YAMLError as err:
        raise NlfsError(f"{source}: not YAML: {_yaml_problem(err)}") from None
    except RecursionError:
        raise NlfsError(f"{source}: not YAML: nested too deeply") from None
    except (ValueError, OverflowError) as err:  # a date like 2024-13-45, an over-long integer
        raise NlfsError(f"{source}: not YAML: {str(err).splitlines()[0][:200]}") from None
    if _expanded_nodes(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise NlfsError(f"{source}: more than {MAX_YAML_NODES} YAML values with aliases expanded")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """`problem (line L, column C)`: PyYAML's own text spans several lines."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if not problem:
        return " ".join(str(err).split())[:200]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def read_yaml_mapping(text: str | bytes | None, source: str, what: str) -> dict:
    """A YAML document that must be a mapping (empty text is an empty mapping)."""
    data = load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NlfsError(f"{source}: a {what} is a YAML mapping")
    return data


def override_value(raw: str) -> Any:
    """The value of `--set key=raw`: a YAML scalar or list, else the text itself."""
    if not raw.strip():
        return None
    try:
        return load_yaml(raw, "--set")
    except NlfsError:
        return raw


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`["a.b=1", ...]` (the CLI's `--set`) -> `{"a.b": "1"}`."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NlfsError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value
    return out


def set_dotted(data: dict, key: str, raw: str, unknown: Callable[[str], str],
               may_add: Callable[[list[str]], bool] = lambda path: False) -> None:
    """Set dotted `key` (`optimizer.lr`, `floors.0.min`) in a fully populated dump `data`.

    Only existing keys and list indices can be set, so a misspelt key is an error
    (`unknown(detail)` words it), except under mappings for which `may_add(parent path)` is True.
    """
    value = override_value(raw)
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            if part not in node and not (last and may_add(parts[:-1])):
                raise NlfsError(unknown(""))
            if last:
                node[part] = value
            else:
                node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise NlfsError(unknown(f" (no list index {part})"))
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            raise NlfsError(unknown(""))
