"""How well whole numbers are read: numbers of 2-6 digits composed from single-digit drawings
(`doodle.study.numbers`), read as /predict/number reads an upload; whole-number and per-digit accuracy
by spacing band and digit count, touching digits apart, against the same digits read alone.
Digits are pen strokes by held-out writers (`doodle.canvas.strokes`), or MNIST doodles with
``--source doodles``.

    .venv/bin/python benchmarks/number_reading.py [--source strokes|doodles] [--per-cell 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from doodle.model.model_io import load_model
from doodle.sources.data import load_split
from doodle.study import numbers

# The evaluate stage redraws the first 3,000 test digits; the numbers take theirs from the rest.
FIRST_DIGIT = 3000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=60, help="numbers per spacing band and digit count")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--model", default="models")
    parser.add_argument(
        "--source", choices=("strokes", "doodles"), default="strokes", help="where digits come from"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    model = load_model(args.model)
    if args.source == "doodles":
        images, labels = load_split("test")
        source = numbers.doodle_source(images[FIRST_DIGIT:], labels[FIRST_DIGIT:])
    else:
        source = numbers.stroke_source()
    started = time.perf_counter()
    result = numbers.number_benchmark(source, model, args.seed, numbers_per_cell=args.per_cell)
    seconds = time.perf_counter() - started

    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"{args.source}: {args.per_cell} numbers per band and digit count, {seconds:.0f} s")
    print(
        f"{'band':<12}{'gap/height':>12}{'digits':>8}{'numbers':>9}{'number acc':>12}"
        f"{'count acc':>11}{'digit acc':>11}{'alone':>8}"
    )
    for name, band in result["bands"].items():
        gap = f"{band['spacing'][0]:+.2f}..{band['spacing'][1]:+.2f}"
        for count, cell in band["by_count"].items():
            print(_row(name, gap, count, cell))
        print(_row(name, gap, "all", band))
        print(_row(name + " touching", gap, "all", result["touching"][name]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _row(name: str, gap: str, count: str, cell: dict) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    return (
        f"{name:<12}{gap:>12}{count:>8}{cell['numbers']:>9}{pct(cell['number_accuracy']):>12}"
        f"{pct(cell['count_accuracy']):>11}{pct(cell['digit_accuracy']):>11}"
        f"{pct(cell['single_digit_accuracy']):>8}"
    )


if __name__ == "__main__":
    main()
