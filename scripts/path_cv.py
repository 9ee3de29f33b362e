"""Writer cross-validation of the path model, and of the path pooled with the pixel model.

For each of the 5 writer folds (the `pendigits` stage's folds.json): the path model is trained on
the four other folds, its temperature is fitted by a twin trained without the next fold round on that
fold (`doodle.model.path_model.train_calibrated`), and it reads the held-out fold's digits. Every digit thus gets calibrated path probabilities from a model that never saw its
writer, written to ``reports/experiments/path_cv_predictions.csv``.

With the pixel model's out-of-fold probabilities (``reports/experiments/writer_cv/predictions.csv``,
config ``default`` by default, at the pad's pen, from scripts/writer_cv.py), the two views are pooled
``log p_pixels + w log p_path``: the weight for a fold is chosen on the other four folds' digits
(`doodle.model.path_model.choose_pool_weight`), so the pooled figures are out of fold too. Per writer, per
digit and overall, pixels alone, path alone and both, with Wilson intervals (clustered by writer
overall), go to ``reports/experiments/path_cv.csv``; the weight chosen on all 30 writers is printed and
written as the ``pool_weight`` row. ``path_cv_confusions.csv``: per writer, the misreadings the pool
fixes and causes beside the pixel model's.

    python scripts/path_cv.py                       # runs under nice 10
    python scripts/path_cv.py --pendigits ../shared/data/pendigits   # the raw file, folds from params.yaml
    python scripts/path_cv.py --reuse --pixel-config no_real_writers   # pool with another pixel configuration
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from doodle.model import path_features, path_model
from doodle.params import PendigitsParams
from doodle.sources import pendigits
from doodle.study import writer_cv
from doodle.study.stats import clustered_accuracy_interval, wilson_interval

ROOT = Path(__file__).resolve().parents[1]


def load_writers(root: Path, params: Path) -> tuple[list[pendigits.PenDigit], dict[int, int]]:
    """The stage's trajectories and folds; or, from a folder holding the raw file, the parsed
    digits and the folds the stage deals from params.yaml's seed."""
    if (root / pendigits.TRAJECTORIES).exists():
        return pendigits.load_trajectories(root), pendigits.load_folds(root)
    config = PendigitsParams.from_params_file(params)
    digits = pendigits.parse(root / pendigits.FILE_NAME)
    return digits, pendigits.writer_folds([digit.writer for digit in digits], config.folds, config.seed)


def path_cv(digits, folds, config: path_model.PathConfig, seed: int) -> np.ndarray:
    """Out-of-fold calibrated path probabilities, ``(N, 10)`` in the order of ``digits``: for each
    fold, the model of the other four (`doodle.model.path_model.train_calibrated`)."""
    drawings = [pendigits.to_pad(digit.strokes) for digit in digits]
    labels = np.array([digit.label for digit in digits])
    fold = np.array([folds[digit.writer] for digit in digits])
    features = path_features.features_of(drawings, config.points)
    proba = np.zeros((len(digits), 10))
    for held_out in range(int(fold.max()) + 1):
        started = time.perf_counter()
        test = np.flatnonzero(fold == held_out)
        model, twin_accuracy = path_model.train_calibrated(
            drawings, labels, fold, held_out, config, seed + 10 * held_out
        )
        proba[test] = path_model.path_proba(model.params, features[test], model.temperature)
        accuracy = (proba[test].argmax(axis=1) == labels[test]).mean()
        print(
            f"fold {held_out}: path {accuracy:.2%} on {len(test)} digits, T {model.temperature:.3f}"
            f" (its twin read its calibration fold {twin_accuracy:.2%}), {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return proba


def figure_rows(group: str, key, correct: dict[str, np.ndarray], writers: np.ndarray) -> list[dict]:
    rows = []
    for view, right in correct.items():
        if group == "overall":
            interval = clustered_accuracy_interval(right, writers)
        else:
            interval = wilson_interval(int(right.sum()), len(right))
        rows.append(
            {
                "group": group,
                "key": key,
                "view": view,
                "digits": len(right),
                "right": int(right.sum()),
                "accuracy": round(interval.estimate, 5),
                "low": round(interval.low, 5),
                "high": round(interval.high, 5),
            }
        )
    return rows


def _pairs(labels: np.ndarray, predicted: np.ndarray) -> str:
    """ "8->1 x3, 9->0" for the misreadings among the given digits, most frequent first."""
    counts: dict[str, int] = {}
    for label, guess in zip(labels.tolist(), predicted.tolist()):
        counts[f"{label}->{guess}"] = counts.get(f"{label}->{guess}", 0) + 1
    return ", ".join(
        f"{pair} x{n}" if n > 1 else pair
        for pair, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def write_confusions(path: Path, labels, writers, pixel, path_view, both) -> None:
    """Per writer (and all): the confusions the pooled reading fixes (pixels wrong, pool right) and
    causes (pixels right, pool wrong), with the pixel model's misreadings and the path model's."""
    out_rows = []
    for writer in [None, *sorted(set(writers.tolist()))]:
        mine = np.ones(len(labels), bool) if writer is None else writers == writer
        fixed = mine & (pixel != labels) & (both == labels)
        caused = mine & (pixel == labels) & (both != labels)
        out_rows.append(
            {
                "writer": "all" if writer is None else writer,
                "digits": int(mine.sum()),
                "pixels_wrong": int((mine & (pixel != labels)).sum()),
                "path_wrong": int((mine & (path_view != labels)).sum()),
                "both_wrong": int((mine & (both != labels)).sum()),
                "fixed": int(fixed.sum()),
                "caused": int(caused.sum()),
                "fixed_confusions": _pairs(labels[fixed], pixel[fixed]),
                "caused_confusions": _pairs(labels[caused], both[caused]),
                "path_confusions": _pairs(
                    labels[mine & (path_view != labels)], path_view[mine & (path_view != labels)]
                ),
            }
        )
    with open(path, "w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=list(out_rows[0]))
        out.writeheader()
        out.writerows(out_rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pendigits", type=Path, default=ROOT / "data" / "pendigits")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument(
        "--pixel",
        type=Path,
        default=ROOT / "reports" / "experiments" / "writer_cv",
        help="the writer cross-validation's folder (its predictions.csv)",
    )
    parser.add_argument("--pixel-config", default="default", help="the pixel model's configuration in it")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "experiments")
    parser.add_argument(
        "--reuse", action="store_true", help="read path_cv_predictions.csv instead of training"
    )
    args = parser.parse_args(argv)
    os.nice(10)

    document = yaml.safe_load(args.params.read_text()) or {}
    config = path_model.PathConfig.from_dict(document.get("train_path") or {})
    seed = int(document["base"]["seed"])
    digits, folds = load_writers(args.pendigits, args.params)
    labels = np.array([digit.label for digit in digits])
    writers = np.array([digit.writer for digit in digits])
    fold = np.array([folds[int(w)] for w in writers])
    sample_ids = np.array([digit.sample_id for digit in digits])
    predictions = args.out / "path_cv_predictions.csv"
    if args.reuse:
        with open(predictions, newline="") as handle:
            by_id = {
                int(row["sample_id"]): [float(row[f"p{k}"]) for k in range(10)]
                for row in csv.DictReader(handle)
            }
        path_proba = np.array([by_id[int(i)] for i in sample_ids])
    else:
        path_proba = path_cv(digits, folds, config, seed)
        args.out.mkdir(parents=True, exist_ok=True)
        with open(predictions, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["fold", "sample_id", "writer", "label", *(f"p{k}" for k in range(10))])
            for i in range(len(digits)):
                out.writerow(
                    [fold[i], sample_ids[i], writers[i], labels[i], *(f"{p:.6g}" for p in path_proba[i])]
                )

    correct = {"path": path_proba.argmax(axis=1) == labels}
    pool_weight = None
    try:
        pixel = writer_cv.read_predictions(args.pixel, args.pixel_config)
    except writer_cv.NoResults as error:
        pixel = None
        print(f"{error}: the path alone", flush=True)
    if pixel is not None:
        pixel_by_id = dict(zip(pixel.sample_ids.tolist(), pixel.probs))
        missing = [int(i) for i in sample_ids if int(i) not in pixel_by_id]
        if missing:
            raise SystemExit(
                f"{args.pixel}: {args.pixel_config} has no row for {len(missing)} digits, e.g. {missing[:3]}"
            )
        pixel_proba = np.array([pixel_by_id[int(i)] for i in sample_ids])
        pooled = np.zeros_like(pixel_proba)
        for held_out in sorted(set(fold.tolist())):
            rest, test = fold != held_out, fold == held_out
            weight = path_model.choose_pool_weight(pixel_proba[rest], path_proba[rest], labels[rest])
            pooled[test] = path_model.pool(pixel_proba[test], path_proba[test], weight)
            print(f"fold {held_out}: pool weight {weight:.1f} (chosen on the other folds)", flush=True)
        pool_weight = path_model.choose_pool_weight(pixel_proba, path_proba, labels)
        correct = {
            "pixels": pixel_proba.argmax(axis=1) == labels,
            **correct,
            "both": pooled.argmax(axis=1) == labels,
        }

    rows = figure_rows("overall", "all", correct, writers)
    for writer in sorted(set(writers.tolist())):
        mine = writers == writer
        rows += figure_rows(
            "writer", writer, {view: right[mine] for view, right in correct.items()}, writers[mine]
        )
    for digit in range(10):
        mine = labels == digit
        rows += figure_rows(
            "digit", digit, {view: right[mine] for view, right in correct.items()}, writers[mine]
        )
    if pool_weight is not None:
        write_confusions(
            args.out / "path_cv_confusions.csv",
            labels,
            writers,
            pixel_proba.argmax(axis=1),
            path_proba.argmax(axis=1),
            pooled.argmax(axis=1),
        )
        rows.append(
            {
                "group": "pool_weight",
                "key": "all",
                "view": "both",
                "digits": len(labels),
                "right": "",
                "accuracy": pool_weight,
                "low": "",
                "high": "",
            }
        )
    for row in rows:
        row["pixel_config"] = args.pixel_config if pixel is not None else ""
    with open(args.out / "path_cv.csv", "w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    for row in rows:
        if row["group"] == "overall":
            print(
                f"{row['view']:>6}: {row['accuracy']:.2%} [{row['low']:.2%}, {row['high']:.2%}] of {row['digits']} digits"
            )
    for view in correct:
        worst_writer = min(
            (r for r in rows if r["group"] == "writer" and r["view"] == view), key=lambda r: r["accuracy"]
        )
        worst_digit = min(
            (r for r in rows if r["group"] == "digit" and r["view"] == view), key=lambda r: r["accuracy"]
        )
        print(
            f"{view:>6}: worst writer {worst_writer['key']} {worst_writer['accuracy']:.2%},"
            f" worst digit {worst_digit['key']} {worst_digit['accuracy']:.2%}"
        )
    if pool_weight is not None:
        print(f"pool weight on all writers: {pool_weight:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
