"""The seed study's results CSV: its columns, writing and reading its rows, and what is decided
from it (read by the train stage's check, 04_evaluate, 05_promote and the long run without any
of the study's training).

`read_study` is the one reader for everything that decides or checks from the committed results:
a configuration's figure over seeds, the noise floor a rerun should reach
(`stats.study_noise_floor`), and the margins of the promotion rule (`SeedStudy.champion_margin`,
`SeedStudy.stroke_margin`). `doodle.study.experiments` runs the study and writes the rows.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doodle.study import stats

DEFAULT_RESULTS = Path("reports/experiments/results.csv")

# Robustness points as 04_evaluate summarises them (`doodle.study.experiments.ROBUSTNESS` measures them).
ROBUSTNESS_COLUMNS = (
    "rotation_minus_30deg",
    "rotation_plus_30deg",
    "shift_3px",
    "scale_0.7",
    "stroke_plus_1px",
)

COLUMNS = [
    "config",
    "overrides",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "ece",
    "doodle_accuracy",
    "stroke_accuracy",
    *ROBUSTNESS_COLUMNS,
    "stroke_pen_accuracy",
    "temperature",
    "best_epoch",
    "epochs_run",
    "train_seconds",
    "seconds",
    "cpu_model",
    "blas_threads",
    "numpy",
    "finished_at",
    "test_wrong",
]

# The numeric figures of a row, read back by `read_study`; those in ACCURACY_COLUMNS are shares in [0, 1].
ACCURACY_COLUMNS = (
    "val_accuracy",
    "test_accuracy",
    "doodle_accuracy",
    "stroke_accuracy",
    *ROBUSTNESS_COLUMNS,
)
FIGURE_COLUMNS = (*ACCURACY_COLUMNS, "ece")


def _check_header(path: Path, header: list[str] | None, columns: list[str], advice: str = "") -> None:
    if header != columns:
        raise ValueError(f"{path}: its columns differ from the table's ({', '.join(columns)}){advice}")


def append_rows(
    path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS, line_end: str = "\r\n"
) -> None:
    """Append rows to a results CSV (header first when the file is new), flushed at once so a
    study cut short keeps every finished run. Refuses a file whose header differs from ``columns``
    (the study's `COLUMNS` unless another table is written). ``line_end`` is the file's own: the
    csv module's ``\r\n`` for the study's tables, ``\n`` for the writer cross-validation's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        _check_header(path, header, list(columns), "; write to a new file")
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator=line_end)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def append_row(path: str | Path, row: dict[str, Any], columns: Sequence[str] = COLUMNS) -> None:
    """Append one row to a results CSV, as `append_rows` does."""
    append_rows(path, [row], columns)


def read_rows(path: str | Path, columns: list[str] = COLUMNS) -> list[dict[str, str]]:
    """Every row of a results CSV as written (strings), in the file's order; refuses a file whose
    header differs from ``columns``."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        _check_header(path, reader.fieldnames, columns)
        return list(reader)


def write_rows(path: str | Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> None:
    """Replace a results CSV by ``rows`` (header first): written to a temporary file beside it and
    renamed over it, so a failure leaves the old file whole."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(
        "w", newline="", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    Path(handle.name).replace(path)


def done(path: str | Path) -> set[tuple[str, int]]:
    """The (config, seed) pairs already in the results CSV (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {(row["config"], int(row["seed"])) for row in csv.DictReader(handle)}


def seed_mistakes(path: str | Path, config: str = "default") -> list[np.ndarray]:
    """The test images each run of ``config`` in the results CSV misread: one sorted ``(K,)`` int64
    array per row (seed), in the file's order; an empty list when the file or the config is absent."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("config") == config]
    try:
        return [
            np.sort(np.array([int(i) for i in (row["test_wrong"] or "").split()], dtype=np.int64))
            for row in rows
        ]
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: unreadable test_wrong column ({error})") from error


# The seed study's margins: two standard deviations of the default configuration's figure over its
# seeds. The champion margin is on validation accuracy (what a challenger must gain), the pen-stroke
# margin on the held-out writers' benchmark (how far any new model may fall below the champion there).
MARGIN_WIDTHS = 2.0
CHAMPION_MARGIN_COLUMN = "val_accuracy"
STROKE_MARGIN_COLUMN = "stroke_accuracy"
NO_STUDY = "{path}: no seed study results (scripts/experiments.py writes them; the file is committed)"
BAD_STUDY = "{path}: {problem}"


class NoStudy(ValueError):
    """The results CSV, or the configuration's rows in it, do not exist."""


@dataclass(frozen=True)
class SeedStudy:
    """One configuration's figures over its seeds in the study's results CSV, read by `read_study`.

    ``values`` maps a column (``val_accuracy``, ``stroke_accuracy``, ...) to its ``(n,)`` float64
    values, one per seed in the file's order."""

    source: str  # the CSV it was read from
    config: str  # the study configuration, "default" for the pipeline's
    values: dict[str, np.ndarray]

    @property
    def seeds(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def figure(self, column: str) -> dict[str, Any]:
        """``{"mean", "sd", "n"}`` of ``column`` (``sd`` None with one seed), the form
        `stats.study_noise_floor` and experiments.json use."""
        found = stats.spread(self._column(column))
        return {"mean": found.mean, "sd": found.sd if found.n > 1 else None, "n": found.n}

    def noise_floor(self, column: str, count: int) -> float:
        """`stats.study_noise_floor` of ``column`` on ``count`` images: the lowest a rerun of this
        configuration should reach."""
        return stats.study_noise_floor(self.figure(column), count)

    def margin(self, column: str) -> float:
        """`MARGIN_WIDTHS` sample standard deviations of ``column`` over the seeds; a `ValueError`
        with fewer than 2 seeds (no spread to speak of)."""
        values = self._column(column)
        if len(values) < 2:
            raise ValueError(
                BAD_STUDY.format(
                    path=self.source,
                    problem=f"{len(values)} seed of {self.config!r}: a margin needs at least 2",
                )
            )
        return MARGIN_WIDTHS * stats.spread(values).sd

    @property
    def champion_margin(self) -> float:
        """The validation gain a challenger must exceed (accuracy fraction)."""
        return self.margin(CHAMPION_MARGIN_COLUMN)

    @property
    def stroke_margin(self) -> float:
        """How far below the champion on the pen-stroke benchmark a new model may fall (accuracy fraction)."""
        return self.margin(STROKE_MARGIN_COLUMN)

    def _column(self, column: str) -> np.ndarray:
        if column not in self.values:
            raise ValueError(BAD_STUDY.format(path=self.source, problem=f"no column {column!r}"))
        return self.values[column]


def read_study(path: str | Path = DEFAULT_RESULTS, config: str = "default") -> SeedStudy:
    """The rows of ``config`` in the study's results CSV (`COLUMNS`) as a `SeedStudy` of every
    numeric figure column. A missing file or a file without ``config``'s rows (`NoStudy`), or a figure that is not
    a finite number in [0, 1] (accuracies) / finite (other figures) is a `ValueError` naming the file
    and the problem."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = [row for row in reader if row.get("config") == config]
    except FileNotFoundError:
        raise NoStudy(NO_STUDY.format(path=path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(BAD_STUDY.format(path=path, problem=f"unreadable ({error})")) from None
    if "config" not in header:
        raise ValueError(BAD_STUDY.format(path=path, problem="no config column: not the study's results CSV"))
    if not rows:
        raise NoStudy(BAD_STUDY.format(path=path, problem=f"no run of the configuration {config!r}"))
    values: dict[str, np.ndarray] = {}
    for column in (CHAMPION_MARGIN_COLUMN, STROKE_MARGIN_COLUMN, *FIGURE_COLUMNS):
        if column not in header or column in values:
            continue
        try:
            array = np.array([float(row[column]) for row in rows], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                BAD_STUDY.format(path=path, problem=f"{column} is not a number in every {config!r} row")
            ) from None
        if not np.isfinite(array).all() or (
            column in ACCURACY_COLUMNS and not ((array >= 0) & (array <= 1)).all()
        ):
            raise ValueError(
                BAD_STUDY.format(path=path, problem=f"{column} holds {array.tolist()}, not accuracies")
            )
        values[column] = array
    return SeedStudy(source=str(path), config=config, values=values)


def study_figure(path: str | Path, column: str, config: str = "default") -> dict[str, Any]:
    """`SeedStudy.figure` of ``config`` in the results CSV, or empty when the file or the config is
    absent: for the train stage's check, which says so instead of failing (`read_study` is the reader)."""
    try:
        return read_study(path, config).figure(column)
    except NoStudy:
        return {}
