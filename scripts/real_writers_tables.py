"""Rewrite the README's real-handwriting tables from the committed writer cross-validation results.

Two blocks, each between its markers, computed from data (never typed by hand):

- ``writer-cv``: the training-mix grid of `scripts/writer_cv.py` (``reports/experiments/writer_cv/``):
  per configuration, all 30 writers read by models that never saw them (95 % interval clustered by
  writer), the worst digit, the worst writer, the writers below 90 %, MNIST test; then per digit and the
  confusions before and after the real writers joined the training.
- ``path-cv``: pixels alone, the pen's path alone and both pooled (`scripts/path_cv.py`,
  ``reports/experiments/path_cv*.csv``), and what the pool fixes and causes.

`--check` changes nothing and exits 1 when a block disagrees with the results. The results are
committed data, so the check is exact: no noise to allow for.

    python scripts/real_writers_tables.py            # rewrite both blocks
    python scripts/real_writers_tables.py --check    # are they up to date?
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from doodle.study import writer_cv

ROOT = Path(__file__).resolve().parent.parent
WRITER_CV = "writer-cv"
PATH_CV = "path-cv"
STALE_MESSAGE = "{path}: the {block} block is out of date; run `python scripts/real_writers_tables.py`"
MISSING_MARKERS_MESSAGE = "{path}: no '{start}' ... '{end}' markers for the {block} block"
BEFORE, AFTER = "no_real_writers", "default"
# The grid's configurations as a reader knows them, in the order the table shows them.
CONFIG_LABELS = {
    "no_real_writers": "MNIST + generated strokes, no real writer (before)",
    "default": "**+ the real writers of four folds, pens 10/18/26 (the default)**",
    "no_generated_strokes": "the default without the generated strokes",
    "real_weight_2": "the default with every real digit twice",
}
VIEW_LABELS = {"pixels": "pixels alone", "path": "path alone", "both": "**both**"}
LOW_WRITER = 0.90  # "writers below 90 %"


def markers(block: str) -> tuple[str, str]:
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"


def percent(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f} %"


def interval(value) -> str:
    return f"{percent(value.estimate)} ({100 * value.low:.2f}-{100 * value.high:.2f})"


def counted(right: int, total: int) -> str:
    """A share with its counts, so a figure at a bar's edge is not rounded onto it."""
    return f"{percent(right / total, 3)} ({right}/{total})"


def _mean_test_accuracy(runs: list[dict[str, str]], config: str) -> float:
    return float(np.mean([float(run["test_accuracy"]) for run in runs if run["config"] == config]))


def writer_cv_block(folder: Path) -> str:
    runs = writer_cv.read_runs(folder)
    configs = [config for config in CONFIG_LABELS if any(run["config"] == config for run in runs)]
    lines = [
        "| training mix | all 30 writers | worst digit | worst writer | writers below 90 % | MNIST test (mean of runs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    summaries = {}
    for config in configs:
        predictions = writer_cv.read_predictions(folder, config)
        summary = writer_cv.summarize(predictions.labels, predictions.predicted, predictions.writers)
        summaries[config] = summary
        worst_digit = min(summary.per_digit, key=lambda digit: summary.per_digit[digit].estimate)
        digit_right = predictions.correct[predictions.labels == worst_digit]
        worst_writer = summary.per_writer[summary.worst_writer]
        below = sum(value.estimate < LOW_WRITER for value in summary.per_writer.values())
        lines.append(
            f"| {CONFIG_LABELS[config]} | {interval(summary.overall)} "
            f"| {worst_digit}: {counted(int(digit_right.sum()), len(digit_right))} "
            f"| {percent(worst_writer.estimate, 1)} (writer {summary.worst_writer}) | {below} "
            f"| {percent(_mean_test_accuracy(runs, config))} |"
        )
    if BEFORE in summaries and AFTER in summaries:
        before, after = summaries[BEFORE], summaries[AFTER]
        per_digit = ", ".join(
            f"{digit} {100 * before.per_digit[digit].estimate:.1f} -> {100 * after.per_digit[digit].estimate:.1f}"
            for digit in sorted(after.per_digit)
        )
        after_counts = {(true, read): count for true, read, count in after.confusions}
        went = ", ".join(
            f"{true} read as {read} ({count} -> {after_counts.get((true, read), _count(folder, true, read))})"
            for true, read, count in before.confusions[:5]
        )
        lines += [
            "",
            f"- Per digit, before -> after (%): {per_digit}.",
            f"- The confusions that went, before -> after: {went}.",
        ]
    return "\n".join(lines)


def _count(folder: Path, true: int, read: int) -> int:
    predictions = writer_cv.read_predictions(folder, AFTER)
    return int(((predictions.labels == true) & (predictions.predicted == read)).sum())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def path_cv_block(folder: Path) -> str:
    rows = _read_csv(folder / "path_cv.csv")
    lines = [
        "| view | accuracy (95 % interval, clustered by writer) | worst digit | worst writer |",
        "|---|---|---|---|",
    ]
    for view, label in VIEW_LABELS.items():
        overall = next(row for row in rows if row["group"] == "overall" and row["view"] == view)
        digit = min(
            (row for row in rows if row["group"] == "digit" and row["view"] == view),
            key=lambda row: (float(row["accuracy"]), int(row["key"])),
        )
        writer = min(
            (row for row in rows if row["group"] == "writer" and row["view"] == view),
            key=lambda row: (float(row["accuracy"]), int(row["key"])),
        )
        lines.append(
            f"| {label} | {percent(float(overall['accuracy']))} "
            f"({100 * float(overall['low']):.2f}-{100 * float(overall['high']):.2f}) "
            f"| {digit['key']}: {counted(int(digit['right']), int(digit['digits']))} "
            f"| {percent(float(writer['accuracy']), 1)} (writer {writer['key']}) |"
        )
    everyone = next(row for row in _read_csv(folder / "path_cv_confusions.csv") if row["writer"] == "all")
    fixed = ", ".join(everyone["fixed_confusions"].split(", ")[:5])
    caused = ", ".join(everyone["caused_confusions"].split(", ")[:5])
    lines += [
        "",
        f"- Of the pixel model's {everyone['pixels_wrong']} misreadings the pool fixes {everyone['fixed']} "
        f"(most: {fixed}) and causes {everyone['caused']} (most: {caused}).",
    ]
    return "\n".join(lines)


def blocks(root: Path) -> dict[str, str]:
    experiments = root / "reports" / "experiments"
    return {WRITER_CV: writer_cv_block(experiments / "writer_cv"), PATH_CV: path_cv_block(experiments)}


def replace_block(text: str, block: str, body: str, path: Path) -> str:
    start, end = markers(block)
    if start not in text or end not in text:
        raise SystemExit(MISSING_MARKERS_MESSAGE.format(path=path, start=start, end=end, block=block))
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (its reports/experiments)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = text
    for block, body in blocks(args.root).items():
        new = replace_block(new, block, body, args.readme)
        if args.check and new != text:
            print(STALE_MESSAGE.format(path=args.readme, block=block), file=sys.stderr)
            return 1
    if not args.check and new != text:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
