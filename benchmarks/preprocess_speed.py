"""CPU time of one drawing -> 28x28 input (`doodle.canvas.preprocess.canvas_to_input`), before and after it
worked only in the ink's box: the whole-canvas recipe (`tests/support/preprocess_reference.py`,
what `canvas_to_input` was) against today's, in the same run, on the same drawings.

    .venv/bin/python benchmarks/preprocess_speed.py [--count 400] [--rounds 5]

Sets: pen-stroke digits on the 280 px pad (the app's pad; pens 4-34 px, drawings 30-90 % of the
pad's height), doodles traced from MNIST digits on 280 px canvases (the evaluate stage's; synthetic
digit-like images when the pipeline has not run), and uploads (PNG, transparent PNG and JPEG,
200-360 px, decoded first). The two versions run in alternating rounds, so a change in the
machine's load reaches both; each figure is the median round's CPU time of this process per
drawing, which other processes barely change. The split says where today's time goes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the reference recipe and the upload generator

from drawing_helpers import synthetic_drawings  # noqa: E402

from doodle.canvas import preprocess, strokes  # noqa: E402
from doodle.canvas.doodles import sample_canvases  # noqa: E402
from doodle.canvas.drawing import render_strokes  # noqa: E402
from doodle.constants import CANVAS_SIZE  # noqa: E402
from support.preprocess_reference import reference_canvas_to_input  # noqa: E402
from support.synthetic import synthetic_mnist  # noqa: E402


def pads(count: int, seed: int) -> list[np.ndarray]:
    drawings = []
    for i in range(count):
        digit = i % 10
        rng = np.random.default_rng([seed, i])
        styles = list(strokes.STYLES[digit])
        pen = float(rng.uniform(4.0, 34.0))
        pad_strokes = strokes.draw_strokes(
            digit,
            styles[i % len(styles)],
            strokes.TRAINING_WRITERS.sample(rng),
            rng,
            pen_width=pen,
            height_fraction=float(rng.uniform(0.3, 0.9)),
        )
        drawings.append(render_strokes(pad_strokes, CANVAS_SIZE, pen))
    return drawings


def doodles(count: int, seed: int) -> tuple[list[np.ndarray], str]:
    try:
        from doodle.sources.data import load_split

        images, _ = load_split("validation", root=str(ROOT / "data" / "prepared"))
        source = "MNIST validation digits"
    except Exception:
        images, _ = synthetic_mnist(count, seed)
        source = "synthetic digit-like images (no prepared data)"
    return list(sample_canvases(images[:count].reshape(-1, 28, 28), seed)), source


def uploads(count: int, seed: int) -> list[np.ndarray]:
    return [preprocess.decode_image(data) for _, data in synthetic_drawings(count, seed)]


def cpu_per_drawing(function, drawings: list[np.ndarray]) -> float:
    """CPU seconds of this process per drawing for one pass (blank canvases count as done)."""
    started = time.process_time()
    for canvas in drawings:
        try:
            function(canvas)
        except ValueError:  # BlankCanvasError and the reference's blank: the same work was done
            pass
    return (time.process_time() - started) / len(drawings)


def compare(drawings: list[np.ndarray], rounds: int) -> tuple[float, float]:
    before, after = [], []
    for _ in range(rounds):
        before.append(cpu_per_drawing(reference_canvas_to_input, drawings))
        after.append(cpu_per_drawing(preprocess.canvas_to_input, drawings))
    return float(np.median(before)), float(np.median(after))


def split(drawings: list[np.ndarray], rounds: int) -> list[tuple[str, float]]:
    """Today's time per drawing by step: the ink map's window (threshold, specks, peak, rim) and
    the window -> 28x28 (box, scale, centre)."""
    windows = [preprocess._ink_window(canvas)[0] for canvas in drawings]
    window = float(np.median([cpu_per_drawing(preprocess._ink_window, drawings) for _ in range(rounds)]))
    to_input = float(np.median([cpu_per_drawing(preprocess.ink_to_input, windows) for _ in range(rounds)]))
    return [
        ("ink window (background, mask, specks, peak, rim)", window),
        ("window -> 28x28 (box, scale, centre)", to_input),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="drawings per set")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per version")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()

    pad_set = pads(args.count, args.seed)
    doodle_set, doodle_source = doodles(args.count, args.seed)
    upload_set = uploads(args.count, args.seed)
    load_before = os.getloadavg()[0]
    rows = [
        ("pen-stroke digits, 280 px pad", compare(pad_set, args.rounds)),
        ("doodles, 280 px canvas", compare(doodle_set, args.rounds)),
        ("uploads, 200-360 px, decoded", compare(upload_set, args.rounds)),
    ]
    steps = split(pad_set, args.rounds)
    print(
        f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"{args.count} drawings per set, {args.rounds} alternating rounds, CPU time of this process"
    )
    print(f"doodles from {doodle_source}")
    print(f"{'drawings':<34}{'before ms':>11}{'after ms':>10}{'speed-up':>10}{'after/s':>10}")
    for name, (before, after) in rows:
        print(f"{name:<34}{before * 1e3:>11.3f}{after * 1e3:>10.3f}{before / after:>9.1f}x{1 / after:>10.0f}")
    print("where today's time goes, pen-stroke digits:")
    for name, seconds in steps:
        print(f"  {name:<52}{seconds * 1e3:>8.3f} ms")


if __name__ == "__main__":
    main()
