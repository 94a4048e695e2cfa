"""Name -> factory registries (timm style) for the parts a profile names: models, datasets,
augmentations. Adding a part touches one file: decorate its factory with `@register_*("name")`.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from nlfs.errors import NlfsError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named table of factories; lookups of unknown names are user errors (NlfsError)."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind  # "model", "dataset", ... used in error messages
        self._builtin_modules = builtin_modules  # imported on first lookup: their decorators fill the table
        self._loaded = False
        self._table: dict[str, F] = {}

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self._table and self._table[name] is not fn:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._table[name] = fn
            return fn

        return deco

    def get(self, name: str) -> F:
        self._load_builtins()
        try:
            return self._table[name]
        except KeyError:
            known = ", ".join(sorted(self._table))
            raise NlfsError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._table


MODELS: Registry = Registry("model", ("nlfs.train.models", "nlfs.train.models_large"))
DATASETS: Registry = Registry("dataset", ("nlfs.train.data", "nlfs.train.data_vision"))
AUGMENTATIONS: Registry = Registry("augmentation", ("nlfs.train.augment",))

register_model = MODELS.register
register_dataset = DATASETS.register
register_augmentation = AUGMENTATIONS.register
