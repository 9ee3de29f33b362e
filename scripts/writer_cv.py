"""Writer-grouped cross-validation on the real pen digits: each configuration trained five times,
each time holding out one fold of six writers, and read on those writers at the pad's pen.

Appends one row per (configuration, fold) to reports/experiments/writer_cv/runs.csv and the held-out
digits' calibrated probabilities to predictions.csv (doodle.study.writer_cv); a pair already there is
skipped, so the grid can be stopped and resumed. Long: run it under `nice`, commit the CSVs as data.
Needs the pipeline's data/prepared and data/pendigits.

    nice -n 10 python scripts/writer_cv.py                       # the grid below
    nice -n 10 python scripts/writer_cv.py --only default
    nice -n 10 python scripts/writer_cv.py --config weight3 -S train.real_weight=3

A configuration with train.real_weight=0 trains on no writer: one run (fold -1) reads all 30.
Why not `dvc exp run --queue`: every queued experiment reruns the pipeline's train, evaluate and
promote stages for one held-out fold; the grid needs five trainings per configuration and none of the
rest, so it runs here and its results are committed like the seed study's.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from doodle.model.evaluate import fit_temperature
from doodle.model.train import TrainConfig, logits_of, train
from doodle.sources import data, pendigits
from doodle.study import writer_cv
from doodle.study.writer_cv import NO_FOLD, PREDICTION_PEN, PROBABILITY_COLUMNS

# name -> train overrides; each choice of the training mix measured on the same writer folds.
GRID: dict[str, dict] = {
    "no_real_writers": {"real_weight": 0},  # the model before real handwriting: MNIST + generated strokes
    "default": {},  # params.yaml's train section
    "no_generated_strokes": {"stroke_share": 0.0},  # does the generator still earn its place?
    "real_weight_2": {"real_weight": 2},
    "pad_pen_only": {"real_pen_widths": [20]},
}


def run_fold(
    name: str,
    overrides: dict[str, Any],
    fold: int,
    params_file: str | Path = "params.yaml",
    prepared_dir: str | Path = "data/prepared",
    pendigits_dir: str | Path = "data/pendigits",
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train ``params_file``'s config with ``overrides`` holding out writer ``fold`` and read
    the held-out writers -> (run row over `RUN_COLUMNS`, prediction rows at `PREDICTION_PEN`).
    People's corrections stay out: the study must not depend on what a store holds today. With
    ``real_weight`` 0 in the overrides no writer trains, and ``fold`` -1 reads all 30."""
    config = TrainConfig.from_params_file(params_file, {**overrides, "real_holdout_fold": fold})
    x_train, y_train = data.load_split("train", prepared_dir)
    x_val, y_val = data.load_split("validation", prepared_dir)
    x_test, y_test = data.load_split("test", prepared_dir)
    inputs = pendigits.load_inputs(pendigits_dir)
    folds = pendigits.load_folds(pendigits_dir)
    held_out = set(folds) if fold == NO_FOLD else pendigits.writers_of_fold(folds, fold)
    if fold == NO_FOLD and config.real_weight:
        raise ValueError("fold -1 reads every writer, so none may train: set real_weight 0")
    x_real, y_real = pendigits.training_rows(inputs, held_out, config.real_pen_widths, config.real_weight)
    started = time.perf_counter()
    result = train(
        config,
        (np.concatenate([x_train, x_real]), np.concatenate([y_train, y_real])),
        (x_val, y_val),
        progress=progress,
    )
    temperature = fit_temperature(logits_of(result.params, result.normalization, x_val), y_val)
    test_accuracy = float(
        (logits_of(result.params, result.normalization, x_test).argmax(axis=1) == y_test).mean()
    )

    reading = inputs.where(np.isin(inputs.writers, list(held_out)))
    logits = logits_of(result.params, result.normalization, reading.images)
    probs = np.exp(logits / temperature - (logits / temperature).max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    right = probs.argmax(axis=1) == reading.labels
    by_pen = {
        int(pen): round(float(right[reading.pen_widths == pen].mean()), 6)
        for pen in np.unique(reading.pen_widths)
    }
    at_pad = reading.pen_widths == PREDICTION_PEN
    run = {
        "config": name,
        "overrides": json.dumps(overrides, sort_keys=True),
        "fold": fold,
        "seed": config.seed,
        "held_out_writers": " ".join(str(writer) for writer in sorted(held_out)),
        "real_accuracy": round(float(right[at_pad].mean()), 6),
        "real_accuracy_by_pen": json.dumps(by_pen, sort_keys=True),
        "test_accuracy": round(test_accuracy, 6),
        "val_accuracy": round(result.best.val_accuracy, 6),
        "temperature": round(temperature, 5),
        "epochs_run": result.epochs_run,
        "train_seconds": round(time.perf_counter() - started, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    predictions = [
        {
            "config": name,
            "fold": fold,
            "sample_id": int(reading.sample_ids[row]),
            "writer": int(reading.writers[row]),
            "label": int(reading.labels[row]),
            "pen_width": PREDICTION_PEN,
            **{column: f"{probs[row, digit]:.5f}" for digit, column in enumerate(PROBABILITY_COLUMNS)},
        }
        for row in np.flatnonzero(at_pad)
    ]
    return run, predictions


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="configurations of the grid to run")
    parser.add_argument("--config", help="a configuration of your own (with -S)")
    parser.add_argument("-S", "--set", action="append", default=[], help="train.key=value (YAML value)")
    parser.add_argument("--folds", nargs="*", type=int, help="folds to run (default: all)")
    parser.add_argument("--out", type=Path, default=writer_cv.DEFAULT_DIR)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    grid = dict(GRID)
    if args.config:
        overrides = {}
        for setting in args.set:
            key, _, value = setting.partition("=")
            overrides[key.removeprefix("train.")] = yaml.safe_load(value)
        grid = {args.config: overrides}
    elif args.only:
        grid = {name: GRID[name] for name in args.only}
    folds_total = yaml.safe_load(Path(args.params).read_text())["pendigits"]["folds"]
    for name, overrides in grid.items():
        folds = (
            [writer_cv.NO_FOLD] if overrides.get("real_weight") == 0 else (args.folds or range(folds_total))
        )
        for fold in folds:
            if (name, fold) in writer_cv.done(args.out):  # read again: another runner may have done it
                continue
            started = time.perf_counter()
            run, predictions = run_fold(name, overrides, fold, params_file=args.params)
            writer_cv.append_rows(args.out / writer_cv.PREDICTIONS, predictions, writer_cv.PREDICTION_COLUMNS)
            writer_cv.append_rows(args.out / writer_cv.RUNS, [run], writer_cv.RUN_COLUMNS)
            print(
                f"{name} fold {fold}: real writers {run['real_accuracy']:.4f}, MNIST test {run['test_accuracy']:.4f}"
                f" ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
