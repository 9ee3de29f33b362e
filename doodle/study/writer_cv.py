"""How the model reads people it has never seen: writer-grouped cross-validation on the real pen
digits (`doodle.sources.pendigits`), and the figures a reader needs from it.

One run holds out one writer fold: it trains as the train stage does (MNIST's training split, the
real writers of the other folds, the generated strokes), fits the temperature on MNIST validation,
and reads every digit of the held-out writers as the pad draws it. The runner
(`scripts/writer_cv.py`, which owns the training so that readers of the results never import it) appends each run's figures to ``runs.csv`` and the held-out digits'
calibrated probabilities to ``predictions.csv``, so every figure below is computed from committed
data without training: overall accuracy with an interval clustered by writer, per digit, per writer
(the worst one named), the confusions, the unsure margin.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doodle.constants import N_CLASSES
from doodle.model.evaluate import choose_unsure_margin
from doodle.sources import pendigits
from doodle.study import stats, study_results

DEFAULT_DIR = Path("reports/experiments/writer_cv")
RUNS = "runs.csv"
PREDICTIONS = "predictions.csv"
PROBABILITY_COLUMNS = [f"p{digit}" for digit in range(N_CLASSES)]
PREDICTION_COLUMNS = ["config", "fold", "sample_id", "writer", "label", "pen_width", *PROBABILITY_COLUMNS]
RUN_COLUMNS = [
    "config",
    "overrides",
    "fold",
    "seed",
    "held_out_writers",
    "real_accuracy",
    "real_accuracy_by_pen",
    "test_accuracy",
    "val_accuracy",
    "temperature",
    "epochs_run",
    "train_seconds",
    "finished_at",
]
# The pen the committed predictions are read at: the pad's own.
PREDICTION_PEN = pendigits.PAD_PEN_WIDTH
NO_FOLD = -1  # a run that trains on no real writer reads all of them: one run, "fold" -1


def append_rows(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Append ``rows`` to one of the runs' CSV files as `study_results.append_rows` does (header
    first when the file is new, a file with another header refused), with the ``\n`` line ends of the
    committed files."""
    study_results.append_rows(path, rows, columns, line_end="\n")


def done(folder: str | Path = DEFAULT_DIR) -> set[tuple[str, int]]:
    """(config, fold) pairs already in the runs file."""
    path = Path(folder) / RUNS
    if not path.exists():
        return set()
    with open(path, newline="") as handle:
        return {(row["config"], int(row["fold"])) for row in csv.DictReader(handle)}


# ---- reading the committed results


@dataclass(frozen=True)
class Predictions:
    """Held-out digits of one configuration, one row each (every fold together): ``labels``,
    ``writers``, ``folds``, ``sample_ids`` ``(N,)`` and calibrated ``probs`` ``(N, 10)``."""

    config: str
    labels: np.ndarray
    writers: np.ndarray
    folds: np.ndarray
    sample_ids: np.ndarray
    probs: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


class NoResults(ValueError):
    """The writer cross-validation has no (complete) results for a configuration."""


def read_predictions(folder: str | Path = DEFAULT_DIR, config: str = "default") -> Predictions:
    """The committed held-out predictions of ``config`` -> `Predictions`, sorted by sample id."""
    path = Path(folder) / PREDICTIONS
    if not path.exists():
        raise NoResults(f"no writer cross-validation results at {path}: run scripts/writer_cv.py")
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["config"] == config]
    if not rows:
        raise NoResults(f"{path} has no rows of configuration {config!r}")
    rows.sort(key=lambda row: int(row["sample_id"]))
    ints = {
        key: np.array([int(row[key]) for row in rows]) for key in ("label", "writer", "fold", "sample_id")
    }
    probs = np.array([[float(row[column]) for column in PROBABILITY_COLUMNS] for row in rows])
    if len(np.unique(ints["sample_id"])) != len(rows):
        raise NoResults(f"{path}: configuration {config!r} reads some digits twice (a fold run twice?)")
    return Predictions(config, ints["label"], ints["writer"], ints["fold"], ints["sample_id"], probs)


def read_runs(folder: str | Path = DEFAULT_DIR) -> list[dict[str, str]]:
    path = Path(folder) / RUNS
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass(frozen=True)
class Summary:
    """The figures of one configuration's held-out predictions."""

    overall: stats.Interval  # clustered by writer
    per_digit: dict[int, stats.Interval]  # clustered by writer
    per_writer: dict[int, stats.Interval]  # Wilson on the writer's digits
    worst_writer: int
    confusions: list[tuple[int, int, int]]  # (true, read as, count), most frequent first
    digits: int
    writers: int

    def to_dict(self) -> dict[str, Any]:
        def interval(value: stats.Interval) -> dict[str, float]:
            return {
                "accuracy": round(value.estimate, 5),
                "low": round(value.low, 5),
                "high": round(value.high, 5),
            }

        return {
            "accuracy": interval(self.overall),
            "digits": self.digits,
            "writers": self.writers,
            "worst_digit": min(self.per_digit, key=lambda digit: self.per_digit[digit].estimate),
            "worst_digit_accuracy": round(min(value.estimate for value in self.per_digit.values()), 5),
            "worst_writer": self.worst_writer,
            "worst_writer_accuracy": interval(self.per_writer[self.worst_writer]),
            "per_digit": {str(digit): interval(value) for digit, value in self.per_digit.items()},
            "per_writer": {str(writer): interval(value) for writer, value in self.per_writer.items()},
            "top_confusions": [{"true": t, "read_as": r, "count": c} for t, r, c in self.confusions],
        }


def summarize(labels: np.ndarray, predicted: np.ndarray, writers: np.ndarray, top: int = 8) -> Summary:
    """Accuracy overall and per digit with intervals clustered by writer, per writer with
    Wilson's interval, the worst writer, and the ``top`` most frequent confusions."""
    labels, predicted, writers = (np.asarray(array) for array in (labels, predicted, writers))
    correct = predicted == labels
    per_digit = {
        int(digit): stats.clustered_accuracy_interval(correct[labels == digit], writers[labels == digit])
        for digit in np.unique(labels)
    }
    per_writer = {
        int(writer): stats.wilson_interval(
            int(correct[writers == writer].sum()), int((writers == writer).sum())
        )
        for writer in np.unique(writers)
    }
    worst = min(per_writer, key=lambda writer: (per_writer[writer].estimate, writer))
    pairs: dict[tuple[int, int], int] = {}
    for true, read in zip(labels[~correct].tolist(), predicted[~correct].tolist()):
        pairs[(true, read)] = pairs.get((true, read), 0) + 1
    confusions = sorted(
        ((t, r, c) for (t, r), c in pairs.items()), key=lambda item: (-item[2], item[0], item[1])
    )[:top]
    return Summary(
        overall=stats.clustered_accuracy_interval(correct, writers),
        per_digit=per_digit,
        per_writer=per_writer,
        worst_writer=worst,
        confusions=confusions,
        digits=len(labels),
        writers=len(per_writer),
    )


def unsure_margin(predictions: Predictions) -> float:
    """The unsure margin chosen on the held-out writers' calibrated probabilities
    (`doodle.model.evaluate.choose_unsure_margin`): people, not MNIST, are who the app asks "9 or 3?"."""
    return choose_unsure_margin(predictions.probs, predictions.labels)
