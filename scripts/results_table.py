"""Rewrite the results table in README.md from the pipeline's metrics.

Reads reports/metrics/train.json, reports/metrics/evaluate.json (and the breakdowns beside them,
train_details.json and evaluate_details.json, when present) and, when the experiments stage
has written it, reports/metrics/experiments.json (the default's mean ± sd over seeds), and replaces whatever lies
between the `<!-- results:start -->` and `<!-- results:end -->` markers with a Markdown table.
`--check` changes nothing and exits 1 when the README's table disagrees with the metrics: a row
missing or extra, or a figure further off than its row's tolerance (the seed-and-CPU noise, see
`ROWS`). The training-time row is never compared: it changes with every run and machine.

    python scripts/results_table.py            # rewrite the table
    python scripts/results_table.py --check    # is it up to date?
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- results:start -->"
END = "<!-- results:end -->"
# Names the train stage may give its wall-clock training time, most specific first.
TRAIN_TIME_KEYS = ("train_seconds", "training_seconds", "train_time_seconds", "seconds")

MISSING_METRICS_MESSAGE = "metrics file not found: {path} (run `dvc repro` first)"
MISSING_MARKERS_MESSAGE = f"{{path}}: no '{START}' ... '{END}' markers to put the results table between"
STALE_MESSAGE = "{path}: the results table is out of date; run `python scripts/results_table.py`"


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(MISSING_METRICS_MESSAGE.format(path=path))
    return json.loads(path.read_text())


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure from a metrics file, how it is shown, and how far the
    README may drift from a fresh run before `--check` calls the table stale."""

    label: str  # may name other keys of the same file in braces, e.g. "{doodle_count:,}"
    source: str  # "train", "evaluate" or "experiments": reports/metrics/<source>.json
    keys: tuple[str, ...]  # the first key present is used; "a.b" reads key b of object a
    # "percent", "percent3" (three decimals), "points" (a difference of fractions, in percentage points), "decimal", "duration",
    # or "percent ± sd" / "decimal ± sd" (an object {"mean", "sd"} over seeds, from the experiments stage)
    kind: str
    tolerance: float | None  # in displayed units (points for percent); None: never compared


# Tolerances: about three times the largest difference measured between two runs of the same
# config and seed on different CPUs (MNIST test 99.09 vs 99.12 %, doodles 96.5 vs 97.0 %, ECE
# 0.0012 vs 0.0025), so a run on another machine passes and a table from another model fails.
ROWS = (
    # Real people's handwriting (reports/metrics/real_writers.json, read as evaluate's "real"): the
    # writer cross-validation's committed runs (no noise), then this run's held-out writers.
    Row(
        "Real handwriting: 30 writers, each read by a model that never saw them (writer-grouped 5-fold"
        " cross-validation, the pad's pen; 95 % interval clustered by writer)",
        "evaluate",
        ("real.cv",),
        "percent interval",
        0.01,
    ),
    Row(
        "Real handwriting, the pixels and the pen's path pooled (the pad and /predict/strokes; the same folds)",
        "evaluate",
        ("real.pooled_cv",),
        "percent interval",
        0.01,
    ),
    Row(
        "Real handwriting, pixels and path pooled: worst of the 30 writers (cross-validation)",
        "evaluate",
        ("real.pooled_cv_worst_writer",),
        "percent3",
        0.01,
    ),
    Row(
        "Real handwriting, pixels and path pooled: worst digit (cross-validation)",
        "evaluate",
        ("real.pooled_cv_worst_digit",),
        "percent3",
        0.01,
    ),
    Row(
        "Real handwriting, worst of the 30 writers (cross-validation)",
        "evaluate",
        ("real.cv_worst_writer",),
        "percent3",
        0.01,
    ),
    Row(
        "Real handwriting, worst digit (cross-validation)",
        "evaluate",
        ("real.cv_worst_digit",),
        "percent3",
        0.01,
    ),
    Row(
        "Real handwriting, this run's {held_out_writers_count} held-out writers (95 % interval clustered by writer)",
        "evaluate",
        ("real.held_out",),
        "percent interval",
        2.0,
    ),
    Row("MNIST test accuracy", "evaluate", ("test_accuracy",), "percent", 0.25),
    # doodle_split: where the digits come from ("validation": the development sample of doodle.study.development).
    Row(
        "Doodle benchmark accuracy ({doodle_count:,} {doodle_split} digits redrawn with a round pen)",
        "evaluate",
        ("doodle_accuracy",),
        "percent",
        1.5,
    ),
    Row(
        "Synthetic strokes ({stroke_count:,} digits from the training generator's styles, by writers it holds out,"
        " pens 6-30 px; not people)",
        "evaluate",
        ("stroke_accuracy",),
        "percent",
        1.5,
    ),
    Row(
        "Synthetic strokes, lowest per-digit accuracy",
        "evaluate",
        ("stroke_min_class_accuracy",),
        "percent",
        3.0,
    ),
    Row(
        "Synthetic strokes, thickest pen (30 px) below the best pen width, points",
        "evaluate",
        ("stroke_thickest_pen_gap",),
        "points",
        2.0,
    ),
    Row(
        "Typed-digit accuracy ({font_count} digits in matplotlib's fonts)",
        "evaluate",
        ("font_accuracy",),
        "percent",
        1.5,
    ),
    Row("Expected calibration error (15 bins)", "evaluate", ("ece",), "decimal", 0.005),
    Row("Macro F1 (MNIST test)", "evaluate", ("macro_f1",), "decimal", 0.0025),
    Row("Training time", "train", TRAIN_TIME_KEYS, "duration", None),
    # The seed study (06_experiments, from the committed reports/experiments/results.csv); the rows
    # appear when reports/metrics/experiments.json exists. Rebuilt from committed data: no noise.
    Row(
        "MNIST test accuracy, default configuration over {seeds} seeds (mean ± sd)",
        "experiments",
        ("default.test_accuracy",),
        "percent ± sd",
        0.01,
    ),
    Row(
        "Doodle benchmark accuracy over {seeds} seeds (mean ± sd)",
        "experiments",
        ("default.doodle_accuracy",),
        "percent ± sd",
        0.01,
    ),
    Row(
        "Synthetic strokes accuracy over {seeds} seeds (mean ± sd)",
        "experiments",
        ("default.stroke_accuracy",),
        "percent ± sd",
        0.01,
    ),
    Row(
        "Expected calibration error over {seeds} seeds (mean ± sd)",
        "experiments",
        ("default.ece",),
        "decimal ± sd",
        0.0001,
    ),
)


def _value(row: Row, metrics: dict) -> float | dict | None:
    for key in row.keys:
        if row.kind == "percent interval":  # "a.prefix": keys prefix_accuracy, prefix_low, prefix_high of a
            parent, _, prefix = key.rpartition(".")
            node = metrics.get(parent) if parent else metrics
            ends = [
                node.get(f"{prefix}_{end}") if isinstance(node, dict) else None
                for end in ("accuracy", "low", "high")
            ]
            if all(isinstance(end, (int, float)) for end in ends):
                return {"estimate": ends[0], "low": ends[1], "high": ends[2]}
            continue
        node = metrics
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if (
            row.kind.endswith("± sd")
            and isinstance(node, dict)
            and isinstance(node.get("mean"), (int, float))
        ):
            return node
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return float(node)
    return None


def _shown(row: Row, value: float | dict | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict) and row.kind == "percent interval":
        return f"{100 * value['estimate']:.2f} % ({100 * value['low']:.2f}-{100 * value['high']:.2f})"
    if isinstance(value, dict):
        mean, sd = value["mean"], value.get("sd")
        scale, digits, unit = (100, 2, " %") if row.kind.startswith("percent") else (1, 4, "")
        spread = "n/a" if sd is None else f"{scale * sd:.{digits}f}"
        return f"{scale * mean:.{digits}f} ± {spread}{unit}"
    if row.kind == "percent":
        return f"{100 * value:.2f} %"
    if row.kind == "percent3":  # a worst digit or writer, read against a bar: not rounded onto it
        return f"{100 * value:.3f} %"
    if row.kind == "points":
        return f"{100 * value:.2f}"
    if row.kind == "decimal":
        return f"{value:.4f}"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _label(row: Row, metrics: dict) -> str:
    try:
        return row.label.format(**metrics)
    except (KeyError, ValueError, TypeError):  # a count the metrics do not hold: drop the brackets
        return row.label.split(" (")[0] if "{" in row.label else row.label


def rendered_rows(train: dict, evaluate: dict, experiments: dict | None = None) -> list[tuple[Row, str, str]]:
    """(row, label, shown value) for every row of the table (the experiments rows only when
    ``experiments`` is given)."""
    sources = {"train": train, "evaluate": evaluate, "experiments": experiments}
    return [
        (row, _label(row, sources[row.source]), _shown(row, _value(row, sources[row.source])))
        for row in ROWS
        if sources[row.source] is not None
    ]


def render_table(train: dict, evaluate: dict, experiments: dict | None = None) -> str:
    """The Markdown table, one row per headline figure."""
    lines = ["| Result | Value |", "| --- | --- |"]
    lines += [f"| {label} | {shown} |" for _, label, shown in rendered_rows(train, evaluate, experiments)]
    return "\n".join(lines)


def _number(shown: str) -> float | None:
    try:
        return float(shown.split("±")[0].split("(")[0].replace("%", "").strip())
    except ValueError:
        return None


def stale_rows(current: str, train: dict, evaluate: dict, experiments: dict | None = None) -> list[str]:
    """What in the README's table block `current` disagrees with the metrics beyond each row's
    tolerance: a missing or extra row, another label, or a figure too far off."""
    written = {}
    for line in current.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            written[cells[0]] = cells[1]
    problems = []
    expected = rendered_rows(train, evaluate, experiments)
    for row, label, shown in expected:
        if label not in written:
            problems.append(f"row '{label}' missing")
        elif row.tolerance is not None and written[label] != shown:
            old, new = _number(written[label]), _number(shown)
            if old is None or new is None or abs(old - new) > row.tolerance + 1e-9:
                problems.append(
                    f"'{label}': README {written[label]}, metrics {shown} (tolerance {row.tolerance})"
                )
    extra = set(written) - {label for _, label, _ in expected}
    problems += [f"row '{label}' not in the metrics" for label in sorted(extra)]
    return problems


def _split(text: str, path: Path) -> tuple[str, str, str]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(MISSING_MARKERS_MESSAGE.format(path=path))
    return text[: start + len(START)], text[start + len(START) : end], text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's table is stale")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--metrics-dir", type=Path, default=ROOT / "reports" / "metrics")
    args = parser.parse_args(argv)

    train, evaluate = _load(args.metrics_dir / "train.json"), _load(args.metrics_dir / "evaluate.json")
    # The breakdowns (counts, lowest class, pen widths) live beside the headline figures, not in them.
    for name, figures in (("train_details.json", train), ("evaluate_details.json", evaluate)):
        details = args.metrics_dir / name
        if details.is_file():
            figures.update({key: value for key, value in _load(details).items() if key not in figures})
    real = args.metrics_dir / "real_writers.json"
    if real.is_file():  # the real-handwriting rows read it as evaluate's "real"
        real_metrics = _load(real)
        real_details = args.metrics_dir / "real_writers_details.json"  # intervals, worst writer and digit
        if real_details.is_file():
            real_metrics = {**_load(real_details), **real_metrics}
        evaluate = {
            **evaluate,
            "real": real_metrics,
            "held_out_writers_count": real_metrics.get("held_out_writers"),
        }
    study = args.metrics_dir / "experiments.json"
    experiments = _load(study) if study.is_file() else None
    table = render_table(train, evaluate, experiments)
    text = args.readme.read_text()
    before, current, after = _split(text, args.readme)
    if args.check:
        problems = stale_rows(current, train, evaluate, experiments)
        if problems:
            print(STALE_MESSAGE.format(path=args.readme), *problems, sep="\n  ", file=sys.stderr)
            return 1
        return 0
    updated = f"{before}\n{table}\n{after}"
    if updated != text:
        args.readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
