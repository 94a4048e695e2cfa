"""What every file format of the project shares: YAML/JSON into pydantic models with one-line
errors, a canonical JSON form and hash, and dotted `--set key=value` overrides."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from nlfs.errors import NlfsError

M = TypeVar("M", bound=BaseModel)


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


def parse_stored_json(cls: type[M], data: bytes | str, source: str) -> M:
    """A stored JSON object; a corrupt one is NlfsError `source is corrupt: field: message`."""
    try:
        return cls.model_validate_json(data)
    except ValidationError as err:
        raise NlfsError(f"{source} is corrupt: {first_error(err, 'object')}") from None


def read_yaml_mapping(text: str | bytes | None, source: str, what: str) -> dict:
    """A YAML document that must be a mapping (empty text is an empty mapping)."""
    try:
        data = yaml.safe_load(text) if text is not None else {}
    except yaml.YAMLError as err:
        raise NlfsError(f"{source}: not YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NlfsError(f"{source}: a {what} is a YAML mapping")
    return data


def override_value(raw: str) -> Any:
    """The value of `--set key=raw`: a YAML scalar or list, else the text itself."""
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
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
