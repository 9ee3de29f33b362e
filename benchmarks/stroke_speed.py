"""How fast pen-stroke digits are generated (`doodle.canvas.strokes`), in images per second, step by step:
trajectories (style + writer + tremor + pointer sampling), rendering on the 280 px pad, and the
model input through `canvas_to_input` (the benchmark's path) or `ink_to_input` (training's path
for these noise-free pads; the same result).

    .venv/bin/python benchmarks/stroke_speed.py [--count 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doodle.canvas import strokes  # noqa: E402
from doodle.canvas.drawing import render_strokes  # noqa: E402
from doodle.canvas.preprocess import canvas_to_input, ink_to_input  # noqa: E402

clock = time.perf_counter


def main() -> None:
    global clock
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="digits to generate")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time, which other processes barely change",
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    labels = np.arange(args.count) % 10
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()

    started = clock()
    drawings = []
    for i, digit in enumerate(labels):
        rng = np.random.default_rng([args.seed, i])
        names = list(strokes.STYLES[int(digit)])
        writer = strokes.TRAINING_WRITERS.sample(rng)
        pen = float(rng.uniform(4.0, 34.0))
        pad_strokes = strokes.draw_strokes(
            int(digit),
            names[i % len(names)],
            writer,
            rng,
            pen_width=pen,
            height_fraction=float(rng.uniform(0.3, 0.9)),
        )
        drawings.append((pad_strokes, pen))
    trajectories = clock() - started

    started = clock()
    pads = [render_strokes(pad_strokes, strokes.CANVAS_SIZE, pen) for pad_strokes, pen in drawings]
    rendering = clock() - started

    started = clock()
    for pad in pads:
        canvas_to_input(pad)
    full = clock() - started

    started = clock()
    for pad in pads:
        ink_to_input(pad * np.float32(1 / 255))
    clean = clock() - started
    cpu = time.process_time() - cpu_started

    print(
        f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"CPU time of this process {cpu:.1f} s"
    )
    print(f"{args.clock} clock")
    print(f"{'step':<46}{'images':>8}{'seconds':>10}{'images/s':>10}")
    rows = (
        ("trajectories (style, writer, tremor, sampling)", trajectories),
        ("render on the 280 px pad (Pillow)", rendering),
        ("canvas_to_input (benchmark path)", full),
        ("ink_to_input (training path, clean pads)", clean),
        ("total, training path", trajectories + rendering + clean),
        ("total, benchmark path", trajectories + rendering + full),
    )
    for name, seconds in rows:
        print(f"{name:<46}{args.count:>8}{seconds:>10.2f}{args.count / seconds:>10.0f}")


if __name__ == "__main__":
    main()
