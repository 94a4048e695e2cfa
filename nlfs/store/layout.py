"""The keys of a run inside its store (docs/ARCHITECTURE.md, "Run layout").

Pure functions, no I/O: every other module spells run keys through these, never inline.
"""

from __future__ import annotations

import re

from nlfs.errors import NlfsError
from nlfs.store.base import validate_key

__all__ = [
    "BATCH_DIGITS",
    "batch_key",
    "batch_number",
    "baseline_key",
    "batches_prefix",
    "config_key",
    "elimination_key",
    "fec_key",
    "genome_id_from_key",
    "genome_key",
    "genomes_prefix",
    "protocol_key",
    "protocol_state_key",
    "report_key",
    "report_prefix",
    "result_id_from_key",
    "result_key",
    "results_prefix",
    "state_key",
    "transfer_table_key",
    "validate_id",
    "validate_stage",
]

# Fixed width so that lexical order (what list() returns) is numeric order.
BATCH_DIGITS = 8

_ID_RE = re.compile(r"^[0-9a-f]{8,64}$")
_STAGE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_BATCH_RE = re.compile(rf"^batches/(\d{{{BATCH_DIGITS}}})\.json$")


def validate_id(genome_id: str) -> str:
    """A genome id is lowercase hex (8-64 digits; `Genome.id` is 16)."""
    if not isinstance(genome_id, str) or not _ID_RE.match(genome_id):
        raise NlfsError(f"invalid genome id {genome_id!r}: expected 8-64 lowercase hex digits")
    return genome_id


def validate_stage(stage: str) -> str:
    """A stage is a slug: lowercase letters, digits, '-' and '_', at most 64 characters."""
    if not isinstance(stage, str) or not _STAGE_RE.match(stage):
        raise NlfsError(
            f"invalid stage {stage!r}: expected a slug of lowercase letters, digits, '-' or '_'"
        )
    return stage


def config_key() -> str:
    return "config.yaml"


def state_key() -> str:
    return "state.json"


def genomes_prefix() -> str:
    return "genomes/"


def genome_key(genome_id: str) -> str:
    return f"genomes/{validate_id(genome_id)}.json"


def genome_id_from_key(key: str) -> str:
    """Inverse of `genome_key`, for keys returned by `list(genomes_prefix())`."""
    if not (key.startswith("genomes/") and key.endswith(".json")):
        raise NlfsError(f"not a genome key: {key!r}")
    return validate_id(key[len("genomes/"):-len(".json")])


def batches_prefix() -> str:
    return "batches/"


def batch_key(n: int) -> str:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 10**BATCH_DIGITS:
        raise NlfsError(f"invalid batch number {n!r}: expected an integer in [0, {10**BATCH_DIGITS})")
    return f"batches/{n:0{BATCH_DIGITS}d}.json"


def batch_number(key: str) -> int:
    """Inverse of `batch_key`."""
    match = _BATCH_RE.match(key)
    if not match:
        raise NlfsError(f"not a batch key: {key!r}")
    return int(match.group(1))


def results_prefix(stage: str | None = None) -> str:
    return "results/" if stage is None else f"results/{validate_stage(stage)}/"


def result_key(stage: str, genome_id: str) -> str:
    return f"results/{validate_stage(stage)}/{validate_id(genome_id)}.json"


def result_id_from_key(key: str) -> tuple[str, str]:
    """Inverse of `result_key`: (stage, genome id)."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "results" or not parts[2].endswith(".json"):
        raise NlfsError(f"not a result key: {key!r}")
    return validate_stage(parts[1]), validate_id(parts[2][: -len(".json")])


def report_prefix() -> str:
    return "reports/"


def report_key(name: str) -> str:
    """A file under reports/, e.g. `report_key("index.html")` or `report_key("plots/fitness.png")`."""
    return validate_key(f"{report_prefix()}{name}")


def fec_key(fingerprint: str) -> str:
    """The equivalence-cache entry of a phenotype fingerprint: which genome first had it."""
    return f"fec/{validate_id(fingerprint)}.json"


def baseline_key(stage: str, name: str) -> str:
    """A reference loss (e.g. cross_entropy) evaluated on a stage's profile, kept apart from results."""
    return validate_key(f"baselines/{validate_stage(stage)}/{validate_stage(name.replace('_', '-'))}.json")


# ---- elimination and transfer (nlfs/transfer/): the protocol after a search -------------------

def protocol_key() -> str:
    """The elimination/transfer protocol (`nlfs.protocol/v1`, YAML), stored once per run."""
    return "protocol.yaml"


def protocol_state_key() -> str:
    """The protocol's state machine (`nlfs.protocol-state/v1`); compare-and-swap only."""
    return "protocol/state.json"


def elimination_key(phase: int) -> str:
    """The ranking of elimination phase `phase` (1-based), create-only."""
    if isinstance(phase, bool) or not isinstance(phase, int) or not 1 <= phase <= 99:
        raise NlfsError(f"invalid elimination phase {phase!r}: expected an integer in [1, 99]")
    return f"elimination/phase-{phase}.json"


def transfer_table_key() -> str:
    """The aggregated transfer table with surrogate fidelity (`nlfs.transfer-table/v1`), create-only."""
    return "transfer/table.json"
