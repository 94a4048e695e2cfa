"""The two accuracies a final-study run is reported by (METHOD.md 6 and 7), read from its epochs.

- the paper's figure: the maximum test accuracy over epochs. The authors validate on the test set
  (final_loss_testing.py `basemodel_test`, loss_projection.py `progressive_test(test=True)`) and
  report `np.max(hist['val_accuracy'])`, so the epoch is chosen on the very images it is scored
  on, and the figure is biased upwards;
- the held-out figure: the test accuracy at the epoch of best validation accuracy on a held-out
  split that is not the test set (the first such epoch on ties), which is not.

Pure: per-epoch records in, numbers out. Whether a cell validates on the test set is the cell
profile's business (`CellMode`); a run's epochs only carry `val_accuracy` and `test_accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlfs.result import EpochMetrics


@dataclass(frozen=True)
class RunAccuracy:
    """What one run's epochs say about the test set: its best accuracy over epochs, and its
    accuracy at the (first) epoch of best validation accuracy. None where an epoch lacks it."""

    test_max: float | None
    test_at_best_val: float | None


def run_accuracy(epochs: list[EpochMetrics]) -> RunAccuracy:
    """Read the test accuracies of a run's epochs (None, None when the test split was not scored)."""
    tests = [e.test_accuracy for e in epochs if e.test_accuracy is not None]
    if not tests:
        return RunAccuracy(None, None)
    scored = [e for e in epochs if e.val_accuracy is not None]
    best = max(scored, key=lambda e: e.val_accuracy, default=None)  # max() keeps the first of ties
    return RunAccuracy(max(tests), None if best is None else best.test_accuracy)


@dataclass(frozen=True)
class CellMode:
    """How a transfer cell's profile splits its data (`dataset.val`, `dataset.evaluate_test`).

    validates_on_test: the validation split is the test set (the authors' setting): the run's
    fitness is then the paper's figure, and no held-out figure exists.
    scores_test: the test split is scored after every epoch beside a held-out validation split.
    """

    validates_on_test: bool
    scores_test: bool

    @property
    def figure(self) -> str:
        """What the table's main values of this cell are."""
        return "max_test_accuracy" if self.validates_on_test or self.scores_test else "max_val_accuracy"

    @property
    def held_out(self) -> bool:
        """Whether the cell has the held-out figure."""
        return self.scores_test and not self.validates_on_test


def paper_figure(mode: CellMode, fitness: float | None, test_max: float | None) -> float | None:
    """A run's value in the table's main column: the maximum test accuracy over epochs when the
    cell sees the test set (its fitness where validation is the test set), else its fitness."""
    if mode.validates_on_test or not mode.scores_test:
        return fitness
    return test_max


def held_out_figure(mode: CellMode, test_at_best_val: float | None) -> float | None:
    """A run's test accuracy at its best held-out validation epoch; None where the cell has none."""
    return test_at_best_val if mode.held_out else None
