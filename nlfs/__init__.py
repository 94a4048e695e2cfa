"""nlfs: neural loss function search for image-classifier CNNs.

Public API:
    nlfs.load_loss(name_or_path) -> torch.nn.Module   # drop-in for nn.CrossEntropyLoss
    nlfs.open_run(uri) -> nlfs.notebook.RunReading    # read a run: .summary(), .state(), .results()
    nlfs.genome.Genome, nlfs.genome.check, nlfs.genome.random_genome, nlfs.genome.mutate
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_loss", "open_run"]


def load_loss(name_or_path: str):
    """A loss module by registry name (`cross_entropy`, ...) or genome file path.

    The module is called like `nn.CrossEntropyLoss`: `loss(logits, target)` with logits
    [batch, classes] and target [batch] class indices or [batch, classes] probabilities.
    """
    from nlfs.losses import load_loss as _load

    return _load(name_or_path)


def open_run(uri: str):
    """The run at `uri` (a directory, `file://path` or `s3://bucket/prefix`), for reading:
    `.summary(top)`, `.state()`, `.config`, `.genome(id)`, `.results(stage)`, `.elimination()`,
    `.transfer_table()` (docs/results.md)."""
    from nlfs.notebook import open_run as _open

    return _open(uri)
