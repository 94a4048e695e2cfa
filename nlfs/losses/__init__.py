"""The registry of reference losses by name: genome files in this folder, and module factories.

A name resolves to a genome file here or on `NLFS_LOSS_PATH`, or to a factory registered with
`register_loss`. `load_loss` also takes a path to a genome file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from nlfs.errors import NlfsError
from nlfs.genome.graph import Genome

if TYPE_CHECKING:  # torch is imported when a loss is loaded, not to look one up
    from torch import nn

_HERE = Path(__file__).parent
_FACTORIES: dict[str, Callable[[], nn.Module]] = {}


def register_loss(name: str):
    """Decorator: register a factory for a loss the genome space cannot express."""

    def wrap(factory: Callable[[], nn.Module]):
        if name in _FACTORIES or name in _genome_files():
            raise ValueError(f"loss {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return wrap


def _search_dirs() -> list[Path]:
    extra = [Path(d) for d in os.environ.get("NLFS_LOSS_PATH", "").split(os.pathsep) if d]
    return [*extra, _HERE]


def _genome_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(_search_dirs()):  # earlier NLFS_LOSS_PATH entries win
        if d.is_dir():
            found.update({f.stem: f for f in sorted(d.glob("*.json"))})
    return found


def names() -> list[str]:
    """Every registered loss name, sorted."""
    return sorted({*_genome_files(), *_FACTORIES})


def is_file_reference(name_or_path: str) -> bool:
    return name_or_path.endswith(".json") or os.sep in name_or_path or Path(name_or_path).is_file()


def get_genome(name_or_path: str) -> Genome:
    """The genome of a registry name or a genome file; NlfsError if it is neither."""
    if is_file_reference(name_or_path):
        genome = Genome.from_file(name_or_path)
        return genome.validate(source=name_or_path)
    path = _genome_files().get(name_or_path)
    if path is None:
        if name_or_path in _FACTORIES:
            raise NlfsError(f"loss {name_or_path!r} is a module, not a genome")
        raise NlfsError(f"unknown loss {name_or_path!r}; known: {', '.join(names())}")
    genome = Genome.from_file(str(path))
    return genome.validate(source=str(path))


def load_loss(name_or_path: str) -> nn.Module:
    """A loss module by registry name or genome file path (see `nlfs.load_loss`)."""
    from nlfs.genome.compile import compile_genome

    if not is_file_reference(name_or_path) and name_or_path in _FACTORIES:
        return _FACTORIES[name_or_path]()
    return compile_genome(get_genome(name_or_path))
