"""How drawings are read with the pen's strokes (the drawing app's path) and from their ink
alone (an upload's, ``/predict/number``): single digits read as several digits (share, by
digit) and read right, then whole numbers of 2-6 digits composed from stroke drawings with their strokes moved
onto the number's canvas (`doodle.study.numbers`), read right by spacing band, touching digits apart.

Single digits are MNIST digits traced to skeleton strokes as the dashboard benchmarks draw them
(``--split train`` for development, ``test`` to report) and pen-stroke digits by held-out writers.

    .venv/bin/python benchmarks/stroke_reading.py [--split train|test] [--count 300] [--per-cell 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

from doodle.model.model_io import load_model
from doodle.sources.data import load_split
from doodle.study import numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--split", choices=("train", "test"), default="train", help="where MNIST traces come from"
    )
    parser.add_argument("--count", type=int, default=300, help="single digits per source")
    parser.add_argument(
        "--per-cell", type=int, default=20, help="numbers per spacing band and digit count (0: none)"
    )
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--model", default="models")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    model = load_model(args.model)
    images, labels = load_split(args.split)
    sources = {
        f"MNIST {args.split} traces": numbers.skeleton_source(images, labels),
        "held-out writers": numbers.stroke_source(with_strokes=True),
    }
    started = time.perf_counter()
    result: dict = {"single": {}, "numbers": {}}
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}; model {model.version}")
    print(f"single digits ({args.count} per source): read as several digits, and read right")
    for name, source in sources.items():
        figures = numbers.single_digit_benchmark(source, model, args.seed, count=args.count)
        result["single"][name] = figures
        for path, cell in figures.items():
            by_digit = " ".join(
                f"{d}:{several}/{drawn}" for d, (several, drawn) in cell["several_by_digit"].items()
            )
            print(
                f"  {name:<20} {path:<8} several {100 * cell['several_share']:5.1f}%"
                f"   right {100 * cell['accuracy']:5.1f}%   several by digit {by_digit}"
            )
    if args.per_cell:
        print(f"numbers ({args.per_cell} per band and digit count): number read right / count right")
        for name, source in sources.items():
            for path, with_strokes in numbers.READ_PATHS.items():
                read = partial(_read, model, with_strokes)
                figures = numbers.number_benchmark(
                    source, model, args.seed, numbers_per_cell=args.per_cell, read=read
                )
                result["numbers"][f"{name} / {path}"] = figures
                cells = [
                    f"{band} {_pct(cell['number_accuracy'])} / {_pct(cell['count_accuracy'])}"
                    f" (touching {_pct(figures['touching'][band]['number_accuracy'])}"
                    f" of {figures['touching'][band]['numbers']})"
                    for band, cell in figures["bands"].items()
                ]
                print(f"  {name:<20} {path:<8} " + "   ".join(cells))
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _read(model, with_strokes: bool, number: numbers.ComposedNumber) -> list[int]:
    return numbers.read_drawing(model, number.strokes, number.canvas.shape, with_strokes=with_strokes)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
