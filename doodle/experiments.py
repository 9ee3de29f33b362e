"""Seeds and ablations: train a configuration at a seed and measure it as the evaluate stage does.

One call of `run_one` is one row of the study: `doodle.train.TrainConfig.from_params_file` with
the overrides (the same keys as ``dvc exp run -S train.<key>=<value>``), `doodle.train.train` and
`doodle.train.fit_temperature` as the train stage calls them, the model written and read back
through `doodle.model_io`, then the figures `04_evaluate` reports: validation and MNIST test
accuracy, ECE of the calibrated probabilities, the doodle benchmark, the pen-stroke benchmark, a
few robustness points. The test split's mistakes are kept as image indices, so two runs can be
compared image by image (McNemar). No MLflow run and no registry change: a study run is not a
candidate model. `scripts/experiments.py` is the command line.

`read_study` is the one reader of the study's committed results CSV for everything that decides or
checks from it: a configuration's figure over seeds, the noise floor a rerun should reach
(`stats.study_noise_floor`), and the margins of the promotion rule (`SeedStudy.champion_margin`,
`SeedStudy.stroke_margin`).
"""

from __future__ import annotations

import csv
import json
import platform
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from doodle import augment, data, evaluate, model_io, stats, strokes
from doodle.development import development_sets
from doodle.inputs import as_float_images
from doodle.train import DEFAULT_BLAS_THREADS, TrainConfig, fit_temperature, logits_of, train

DEFAULT_RESULTS = Path("reports/experiments/results.csv")
DEFAULT_SEED_COUNT = 5
ABLATION_SEED_COUNT = 3

# The study, in the order it is run: name -> train-section overrides (params.yaml keys). Each
# ablation changes one thing from the default.
STUDY: dict[str, dict[str, Any]] = {
    "default": {},
    "no-stroke-training": {"stroke_share": 0.0},
    "no-augment": {"augment": False},
    "no-label-smoothing": {"label_smoothing": 0.0},
    "width-256": {"hidden_sizes": [256, 256]},
    "width-1024": {"hidden_sizes": [1024, 1024]},
    "depth-1": {"hidden_sizes": [512]},
    "depth-3": {"hidden_sizes": [512, 512, 512]},
    "sgd-nesterov": {"optimizer": "sgd", "learning_rate": 0.05},
    "lr-x0.3": {"learning_rate": 0.0003},
    "lr-x3": {"learning_rate": 0.003},
    "elastic": {"elastic_alpha": 34.0},
}

# Robustness points as 04_evaluate summarises them: (column, transform of (N, 28, 28) images).
ROBUSTNESS = {
    "rotation_minus_30deg": lambda images: augment.rotate(images, -30.0),
    "rotation_plus_30deg": lambda images: augment.rotate(images, 30.0),
    "shift_3px": lambda images: augment.shift(images, 3.0, 0.0),
    "scale_0.7": lambda images: augment.scale(images, 0.7),
    "stroke_plus_1px": lambda images: augment.stroke_width(images, 1.0),
}

COLUMNS = [
    "config",
    "overrides",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "ece",
    "doodle_accuracy",
    "stroke_accuracy",
    *ROBUSTNESS,
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
ACCURACY_COLUMNS = ("val_accuracy", "test_accuracy", "doodle_accuracy", "stroke_accuracy", *ROBUSTNESS)
FIGURE_COLUMNS = (*ACCURACY_COLUMNS, "ece")

BAD_SETTING = "expected train.<key>=<value> (as dvc exp run -S takes it), got {setting!r}"
SEED_SETTING = "the seed is the study's own axis: use --seeds, not {setting!r}"


def parse_settings(settings: Iterable[str]) -> dict[str, Any]:
    """``["train.augment=false", "train.hidden_sizes=[256,256]"]`` -> ``{"augment": False,
    "hidden_sizes": [256, 256]}``: values parsed as YAML, as DVC parses ``-S`` (a leading ``+``,
    DVC's "add this key", is accepted). Only the train section may change and not its seed (the
    study's own axis); unknown keys fail in `TrainConfig`."""
    overrides: dict[str, Any] = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        section, dot, name = key.strip().removeprefix("+").partition(".")
        if not sep or not dot or section != "train" or not name or "." in name:
            raise ValueError(BAD_SETTING.format(setting=setting))
        if name == "seed":
            raise ValueError(SEED_SETTING.format(setting=setting))
        overrides[name] = yaml.safe_load(value)
    return overrides


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Benchmarks:
    """Everything a run is measured on, built once per process (none of it depends on the model).

    Images are float32 in [0, 1], ``(N, 28, 28)``; labels int64 ``(N,)``."""

    train: tuple[np.ndarray, np.ndarray]  # the prepared training split, uint8
    validation: tuple[np.ndarray, np.ndarray]  # uint8
    test_images: np.ndarray
    test_labels: np.ndarray
    doodle_images: np.ndarray  # doodle_count validation digits redrawn (doodle.doodles), a development set
    doodle_labels: np.ndarray
    stroke: strokes.StrokeDigits  # the held-out writers' pen-stroke benchmark
    robust_images: np.ndarray  # robustness_count validation digits, a development set
    robust_labels: np.ndarray
    calibration_bins: int


def load_benchmarks(prepared_dir: str | Path = "data/prepared", params_file: str | Path = "params.yaml") -> Benchmarks:
    """The splits and benchmarks with the evaluate stage's settings (``base.seed`` and the
    ``evaluate`` section of ``params_file``), built exactly as `04_evaluate` builds them: the
    doodle and robustness sets by `doodle.development.development_sets`."""
    params = yaml.safe_load(Path(params_file).read_text())
    seed = int(params["base"]["seed"])
    settings = params["evaluate"]
    test_uint8, test_labels = data.load_split("test", prepared_dir)
    val_uint8, val_labels = data.load_split("validation", prepared_dir)
    development = development_sets(
        val_uint8, val_labels, int(settings["doodle_count"]), int(settings["robustness_count"]), seed
    )
    return Benchmarks(
        train=data.load_split("train", prepared_dir),
        validation=(val_uint8, val_labels),
        test_images=as_float_images(test_uint8),
        test_labels=test_labels,
        doodle_images=development.doodle_images,
        doodle_labels=development.doodle_labels,
        stroke=strokes.evaluation_benchmark(seed, int(settings["stroke_per_class"]), int(settings["stroke_writers"])),
        robust_images=development.robust_images,
        robust_labels=development.robust_labels,
        calibration_bins=int(settings["calibration_bins"]),
    )


def measure(model: model_io.Model, bench: Benchmarks) -> dict[str, Any]:
    """The evaluate stage's headline figures for a loaded model (calibrated probabilities)."""
    test_pred, test_probs = model.predict(bench.test_images)
    stroke_pred, _ = model.predict(bench.stroke.images)
    stroke_right = stroke_pred == bench.stroke.labels
    pens = np.unique(bench.stroke.pen_widths)
    figures: dict[str, Any] = {
        "test_accuracy": evaluate.accuracy(bench.test_labels, test_pred),
        "ece": evaluate.expected_calibration_error(test_probs, bench.test_labels, bench.calibration_bins),
        "doodle_accuracy": evaluate.accuracy(bench.doodle_labels, model.predict(bench.doodle_images)[0]),
        "stroke_accuracy": float(stroke_right.mean()),
        "stroke_pen_accuracy": json.dumps(
            {f"{int(px)}px": round(float(stroke_right[bench.stroke.pen_widths == px].mean()), 6) for px in pens}
        ),
        "test_wrong": " ".join(str(int(i)) for i in np.flatnonzero(test_pred != bench.test_labels)),
    }
    for name, transform in ROBUSTNESS.items():
        figures[name] = evaluate.accuracy(bench.robust_labels, model.predict(transform(bench.robust_images))[0])
    return figures


def run_one(
    name: str,
    overrides: dict[str, Any],
    seed: int,
    bench: Benchmarks,
    params_file: str | Path = "params.yaml",
    blas_threads: int = DEFAULT_BLAS_THREADS,
    keep_models: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``params_file``'s config with ``overrides`` at ``seed`` and measure it: one row
    (a dict over `COLUMNS`; floats unrounded, ``overrides`` and the per-pen figures as JSON,
    ``test_wrong`` the indices of the misread test images separated by spaces). With
    ``keep_models`` the calibrated model stays in ``<keep_models>/<name>-<seed>/``, so new
    measurements can be taken later without training again."""
    started = time.perf_counter()
    config = TrainConfig.from_params_file(params_file, {**overrides, "seed": int(seed)})
    result = train(config, bench.train, bench.validation, progress=False, blas_threads=blas_threads)
    x_val, y_val = bench.validation
    temperature = fit_temperature(logits_of(result.params, result.normalization, x_val), y_val)
    with tempfile.TemporaryDirectory(prefix="doodle-experiment-") as folder:
        model_dir = Path(keep_models) / f"{name}-{int(seed)}" if keep_models else Path(folder)
        model_io.save_model(model_dir, result.params, normalization=result.normalization, temperature=temperature)
        model = model_io.load_model(model_dir)
    row = {
        "config": name,
        "overrides": json.dumps(overrides, sort_keys=True),
        "seed": int(seed),
        "val_accuracy": result.best.val_accuracy,
        **measure(model, bench),
        "temperature": temperature,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.train_seconds, 2),
        "cpu_model": cpu_model(),
        "blas_threads": blas_threads,
        "numpy": np.__version__,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    row["seconds"] = round(time.perf_counter() - started, 2)
    return {column: row[column] for column in COLUMNS}


def _check_header(path: Path, header: list[str] | None, columns: list[str], advice: str = "") -> None:
    if header != columns:
        raise ValueError(f"{path}: its columns differ from the table's ({', '.join(columns)}){advice}")


def append_row(path: str | Path, row: dict[str, Any], columns: list[str] = COLUMNS) -> None:
    """Append one row to a results CSV (header first when the file is new), flushed at once so a
    study cut short keeps every finished run. Refuses a file whose header differs from ``columns``
    (the study's `COLUMNS` unless another table is written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        _check_header(path, header, columns, "; write to a new file")
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


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
    with tempfile.NamedTemporaryFile("w", newline="", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    Path(handle.name).replace(path)


def remeasured(row: dict[str, str], model: model_io.Model, bench: Benchmarks) -> dict[str, str]:
    """A results row (as `read_rows` gives it) with the columns `measure` fills taken again from
    ``model``, the run's kept model; training's columns (validation accuracy, temperature, epochs,
    times) are left as they are. Values are strings as the CSV writes them, so an unchanged figure
    compares equal to the file's."""
    fresh = measure(model, bench)
    return {**row, **{column: str(value) for column, value in fresh.items()}}


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
        return [np.sort(np.array([int(i) for i in (row["test_wrong"] or "").split()], dtype=np.int64)) for row in rows]
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
            raise ValueError(BAD_STUDY.format(
                path=self.source, problem=f"{len(values)} seed of {self.config!r}: a margin needs at least 2"))
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
            raise ValueError(BAD_STUDY.format(path=path, problem=f"{column} is not a number in every {config!r} row")) from None
        if not np.isfinite(array).all() or (column in ACCURACY_COLUMNS and not ((array >= 0) & (array <= 1)).all()):
            raise ValueError(BAD_STUDY.format(path=path, problem=f"{column} holds {array.tolist()}, not accuracies"))
        values[column] = array
    return SeedStudy(source=str(path), config=config, values=values)


def study_figure(path: str | Path, column: str, config: str = "default") -> dict[str, Any]:
    """`SeedStudy.figure` of ``config`` in the results CSV, or empty when the file or the config is
    absent: for the train stage's check, which says so instead of failing (`read_study` is the reader)."""
    try:
        return read_study(path, config).figure(column)
    except NoStudy:
        return {}


def study_seeds(base_seed: int, count: int) -> list[int]:
    """The study's seeds: the pipeline's ``base.seed`` first, then the next integers."""
    return [int(base_seed) + k for k in range(count)]
