"""Rewrite the results table in README.md from the pipeline's metrics.

Reads reports/metrics/train.json and reports/metrics/evaluate.json and replaces whatever lies
between the `<!-- results:start -->` and `<!-- results:end -->` markers with a Markdown table.
`--check` changes nothing and exits 1 when the README's table differs from the metrics (the
training-time row is left out of the comparison: it changes with every run and machine).

    python scripts/results_table.py            # rewrite the table
    python scripts/results_table.py --check    # is it up to date?
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- results:start -->"
END = "<!-- results:end -->"
TIMING_ROW = "| Training time"
# Names the train stage may give its wall-clock training time, most specific first.
TRAIN_TIME_KEYS = ("train_seconds", "training_seconds", "train_time_seconds", "seconds")

MISSING_METRICS_MESSAGE = "metrics file not found: {path} (run `dvc repro` first)"
MISSING_MARKERS_MESSAGE = f"{{path}}: no '{START}' ... '{END}' markers to put the results table between"
STALE_MESSAGE = "{path}: the results table is out of date; run `python scripts/results_table.py`"


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(MISSING_METRICS_MESSAGE.format(path=path))
    return json.loads(path.read_text())


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _train_seconds(train: dict) -> float | None:
    for key in TRAIN_TIME_KEYS:
        if isinstance(train.get(key), (int, float)):
            return float(train[key])
    return None


def render_table(train: dict, evaluate: dict) -> str:
    """The Markdown table, one row per headline figure."""
    doodles = evaluate.get("doodle_count")
    typed = evaluate.get("font_count")
    ece = evaluate.get("ece")
    rows = [
        ("MNIST test accuracy", _percent(evaluate.get("test_accuracy"))),
        (f"Doodle benchmark accuracy ({doodles:,} test digits redrawn with a round pen)" if doodles
         else "Doodle benchmark accuracy", _percent(evaluate.get("doodle_accuracy"))),
        (f"Typed-digit accuracy ({typed} digits in matplotlib's fonts)" if typed else "Typed-digit accuracy",
         _percent(evaluate.get("font_accuracy"))),
        ("Expected calibration error (15 bins)", "n/a" if ece is None else f"{ece:.4f}"),
        ("Macro F1 (MNIST test)", "n/a" if evaluate.get("macro_f1") is None else f"{evaluate['macro_f1']:.4f}"),
        ("Training time", _duration(_train_seconds(train))),
    ]
    lines = ["| Result | Value |", "| --- | --- |"] + [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _split(text: str, path: Path) -> tuple[str, str, str]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(MISSING_MARKERS_MESSAGE.format(path=path))
    return text[: start + len(START)], text[start + len(START) : end], text[end:]


def _comparable(block: str) -> list[str]:
    return [line.strip() for line in block.strip().splitlines() if not line.startswith(TIMING_ROW)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's table is stale")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--metrics-dir", type=Path, default=ROOT / "reports" / "metrics")
    args = parser.parse_args(argv)

    table = render_table(_load(args.metrics_dir / "train.json"), _load(args.metrics_dir / "evaluate.json"))
    text = args.readme.read_text()
    before, current, after = _split(text, args.readme)
    if args.check:
        if _comparable(current) != _comparable(table):
            print(STALE_MESSAGE.format(path=args.readme), file=sys.stderr)
            return 1
        return 0
    updated = f"{before}\n{table}\n{after}"
    if updated != text:
        args.readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
