"""Writer-grouped cross-validation on the real pen digits: each configuration trained five times,
each time holding out one fold of six writers, and read on those writers at the pad's pen.

Appends one row per (configuration, fold) to reports/experiments/writer_cv/runs.csv and the held-out
digits' calibrated probabilities to predictions.csv (doodle.writer_cv); a pair already there is
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
import time
from pathlib import Path

import yaml

from doodle import writer_cv

# name -> train overrides; each choice of the training mix measured on the same writer folds.
GRID: dict[str, dict] = {
    "no_real_writers": {"real_weight": 0},  # the model before real handwriting: MNIST + generated strokes
    "default": {},  # params.yaml's train section
    "no_generated_strokes": {"stroke_share": 0.0},  # does the generator still earn its place?
    "real_weight_2": {"real_weight": 2},
    "pad_pen_only": {"real_pen_widths": [20]},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        folds = [writer_cv.NO_FOLD] if overrides.get("real_weight") == 0 else (args.folds or range(folds_total))
        for fold in folds:
            if (name, fold) in writer_cv.done(args.out):  # read again: another runner may have done it
                continue
            started = time.perf_counter()
            run, predictions = writer_cv.run_fold(name, overrides, fold, params_file=args.params)
            writer_cv.append_rows(args.out / writer_cv.PREDICTIONS, predictions, writer_cv.PREDICTION_COLUMNS)
            writer_cv.append_rows(args.out / writer_cv.RUNS, [run], writer_cv.RUN_COLUMNS)
            print(f"{name} fold {fold}: real writers {run['real_accuracy']:.4f}, MNIST test {run['test_accuracy']:.4f}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
