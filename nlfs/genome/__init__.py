"""Loss genomes: the search space, its JSON form, integrity check, mutation, compilation, rendering.

    from nlfs.genome import Genome, check, random_genome, mutate

Names are imported on first use (PEP 562), so that reading a genome file costs neither torch
(compilation) nor sympy (rendering): `nlfs check` on a bad file answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Light (numpy at most), imported now. `mutate` must be: importing the submodule
# nlfs.genome.mutate would otherwise bind the package attribute `mutate` to the module.
from nlfs.genome.graph import GENOME_FORMAT, Genome, GenomeError, Node
from nlfs.genome.mutate import mutate, random_genome

# Heavier, imported on first use: integrity (scipy), compile (torch), render (sympy).
_EXPORTS = {
    "GenomeLoss": "compile", "compile_genome": "compile",
    "REASONS": "integrity", "KnownLosses": "integrity", "Verdict": "integrity",
    "check": "integrity", "probe_curve": "integrity",
    "describe": "render", "infix": "render", "latex": "render", "simplified": "render",
}

__all__ = sorted([*_EXPORTS, "GENOME_FORMAT", "Genome", "GenomeError", "Node", "mutate",
                  "random_genome"])

if TYPE_CHECKING:
    from nlfs.genome.compile import GenomeLoss, compile_genome
    from nlfs.genome.integrity import REASONS, KnownLosses, Verdict, check, probe_curve
    from nlfs.genome.render import describe, infix, latex, simplified


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nlfs.genome' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nlfs.genome.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
