"""Seeds and ablations: train a configuration at a seed and measure it as the evaluate stage does.

One call of `run_one` is one row of the study: `doodle.model.train.TrainConfig.from_params_file` with
the overrides (the same keys as ``dvc exp run -S train.<key>=<value>``), `doodle.model.train.train` and
`doodle.model.evaluate.fit_temperature` as the train stage calls them, the model written and read back
through `doodle.model.model_io`, then the figures `04_evaluate` reports: validation and MNIST test
accuracy, ECE of the calibrated probabilities, the doodle benchmark, the pen-stroke benchmark, a
few robustness points. The test split's mistakes are kept as image indices, so two runs can be
compared image by image (McNemar). No MLflow run and no registry change: a study run is not a
candidate model. `scripts/experiments.py` is the command line.

The results CSV's columns, its rows and everything read from it (`read_study`) live in
`doodle.study.study_results`, which needs none of this module's training.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from doodle.canvas import strokes
from doodle.model import augment, evaluate, model_io
from doodle.model.evaluate import fit_temperature
from doodle.model.inputs import as_float_images
from doodle.model.train import DEFAULT_BLAS_THREADS, TrainConfig, logits_of, train
from doodle.sources import data
from doodle.study.development import development_sets
from doodle.study.study_results import COLUMNS, ROBUSTNESS_COLUMNS

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
assert tuple(ROBUSTNESS) == ROBUSTNESS_COLUMNS, "the results CSV's robustness columns are these points"

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
    doodle_images: (
        np.ndarray
    )  # doodle_count validation digits redrawn (doodle.canvas.doodles), a development set
    doodle_labels: np.ndarray
    stroke: strokes.StrokeDigits  # the held-out writers' pen-stroke benchmark
    robust_images: np.ndarray  # robustness_count validation digits, a development set
    robust_labels: np.ndarray
    calibration_bins: int


def load_benchmarks(
    prepared_dir: str | Path = "data/prepared", params_file: str | Path = "params.yaml"
) -> Benchmarks:
    """The splits and benchmarks with the evaluate stage's settings (``base.seed`` and the
    ``evaluate`` section of ``params_file``), built exactly as `04_evaluate` builds them: the
    doodle and robustness sets by `doodle.study.development.development_sets`."""
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
        stroke=strokes.evaluation_benchmark(
            seed, int(settings["stroke_per_class"]), int(settings["stroke_writers"])
        ),
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
            {
                f"{int(px)}px": round(float(stroke_right[bench.stroke.pen_widths == px].mean()), 6)
                for px in pens
            }
        ),
        "test_wrong": " ".join(str(int(i)) for i in np.flatnonzero(test_pred != bench.test_labels)),
    }
    for name, transform in ROBUSTNESS.items():
        figures[name] = evaluate.accuracy(
            bench.robust_labels, model.predict(transform(bench.robust_images))[0]
        )
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
        model_io.save_model(
            model_dir, result.params, normalization=result.normalization, temperature=temperature
        )
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
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    row["seconds"] = round(time.perf_counter() - started, 2)
    return {column: row[column] for column in COLUMNS}


def remeasured(row: dict[str, str], model: model_io.Model, bench: Benchmarks) -> dict[str, str]:
    """A results row (as `read_rows` gives it) with the columns `measure` fills taken again from
    ``model``, the run's kept model; training's columns (validation accuracy, temperature, epochs,
    times) are left as they are. Values are strings as the CSV writes them, so an unchanged figure
    compares equal to the file's."""
    fresh = measure(model, bench)
    return {**row, **{column: str(value) for column, value in fresh.items()}}


def study_seeds(base_seed: int, count: int) -> list[int]:
    """The study's seeds: the pipeline's ``base.seed`` first, then the next integers."""
    return [int(base_seed) + k for k in range(count)]
