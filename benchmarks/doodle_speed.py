"""How fast the evaluation benchmarks are generated: doodles (skeleton, tracing, round-pen
drawing, `canvas_to_input`) and typed font digits, in images per second.

    .venv/bin/python benchmarks/doodle_speed.py [--count 1000]
"""

from __future__ import annotations

import argparse
import os
import time

from doodle.canvas import doodles, fonts
from doodle.canvas.preprocess import canvas_to_input
from doodle.sources.data import load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="test digits to redraw")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    images, _ = load_split("test")
    images = images[: args.count].reshape(-1, 28, 28)

    started = time.perf_counter()
    canvases = doodles.sample_canvases(images, args.seed)
    drawing = time.perf_counter() - started
    started = time.perf_counter()
    for canvas in canvases:
        canvas_to_input(canvas)
    preprocessing = time.perf_counter() - started
    started = time.perf_counter()
    typed = fonts.font_digits()
    typing = time.perf_counter() - started

    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"{'step':<34}{'images':>8}{'seconds':>10}{'images/s':>10}")
    for name, count, seconds in (
        ("doodles: skeleton, trace, draw", len(canvases), drawing),
        ("doodles: canvas_to_input", len(canvases), preprocessing),
        ("doodles: total", len(canvases), drawing + preprocessing),
        ("font digits (render + preprocess)", len(typed), typing),
    ):
        print(f"{name:<34}{count:>8}{seconds:>10.2f}{count / seconds:>10.0f}")
    per_image = (drawing + preprocessing) / len(canvases)
    print(f"3,000 doodles (the evaluate stage's default) take about {3000 * per_image:.0f} s")


if __name__ == "__main__":
    main()
