"""The path model's cost per request beside the pixel model's, as `/predict/strokes` and the pad
spend it: for each of a few hundred real digits (the pen-digits writers' strokes on the pad),

- pixel view: the strokes drawn with the pad's pen (`render_strokes`), `canvas_to_input`, the pixel
  MLP's forward pass;
- path view: `path_features` (join, resample, normalise, directions) and the path MLP's forward pass;
- the pool of the two.

One request at a time (batch of 1), as a drawing is read; median and 90th percentile per step, and the
path view's share of the whole. Models: a folder with both (``--model models``), else seeded untrained
MLPs of the pipeline's sizes (the cost does not depend on the weights).

    .venv/bin/python benchmarks/path_model.py [--model models] [--count 500] [--clock cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doodle.canvas.drawing import PEN_WIDTH, render_strokes  # noqa: E402
from doodle.canvas.preprocess import canvas_to_input  # noqa: E402
from doodle.model import mlp, path_features, path_io, path_model  # noqa: E402
from doodle.model.model_io import Model, load_model  # noqa: E402
from doodle.sources import pendigits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def models(folder: Path | None) -> Model:
    if folder is not None:
        model = load_model(folder)
        if model.path is None:
            raise SystemExit(f"{folder} holds no path model (path.npz + path.json)")
        return model
    pixel = Model(
        params=mlp.init_params([784, 512, 512, 10], seed=0),
        metadata={"normalization": {"mean": 0.13, "std": 0.31}, "sha256": "0" * 64, "version": "untrained"},
    )
    config = path_model.PathConfig()  # the pipeline's sizes: its ensemble stacked into one MLP
    members = [
        mlp.init_params(
            [path_features.feature_size(config.points), *config.hidden_sizes, 10], seed=1 + member
        )
        for member in range(config.ensemble)
    ]
    path = path_io.PathModel(
        params=path_model.stack_ensemble(members),
        metadata={
            "points": config.points,
            "temperature": 1.0,
            "pool_weight": 1.0,
            "sha256": "1" * 64,
            "version": "untrained",
        },
    )
    return Model(params=pixel.params, metadata=pixel.metadata, path=path)


def drawings_from(source: Path, count: int, seed: int) -> list[list[np.ndarray]]:
    if (source / pendigits.TRAJECTORIES).exists():
        digits = pendigits.load_trajectories(source)
    else:
        digits = pendigits.parse(source / pendigits.FILE_NAME)
    chosen = np.random.default_rng(seed).choice(len(digits), size=min(count, len(digits)), replace=False)
    return [pendigits.to_pad(digits[i].strokes) for i in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a model folder with both models")
    parser.add_argument(
        "--pendigits",
        type=Path,
        default=ROOT / "data" / "pendigits",
        help="the pendigits stage's folder, or one holding pendigits-orig.tra",
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time, which other processes barely change",
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    model = models(args.model)
    drawings = drawings_from(args.pendigits, args.count, args.seed)
    load_before = os.getloadavg()[0]
    steps = {
        name: []
        for name in ("render", "canvas_to_input", "pixel forward", "path features", "path forward", "pool")
    }
    for strokes in drawings:
        t0 = clock()
        pad = render_strokes(
            [[(float(x), float(y)) for x, y in stroke] for stroke in strokes], pen_width=PEN_WIDTH
        )
        t1 = clock()
        image = canvas_to_input(pad).reshape(1, -1)
        t2 = clock()
        pixel = model.predict_proba(image)
        t3 = clock()
        features = path_features.features_of([strokes], model.path.points)
        t4 = clock()
        path = mlp.softmax(mlp.forward(model.path.params, features) / np.float32(model.path.temperature))
        t5 = clock()
        path_io.pool(pixel, path, model.path.pool_weight)
        t6 = clock()
        for name, (start, stop) in zip(steps, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]):
            steps[name].append((stop - start) * 1e3)
    load_after = os.getloadavg()[0]
    totals = {name: float(np.sum(values)) for name, values in steps.items()}
    pixel_view = totals["render"] + totals["canvas_to_input"] + totals["pixel forward"]
    path_view = totals["path features"] + totals["path forward"]
    print(
        f"{len(drawings)} real digits, one request at a time, {args.clock} clock;"
        f" load {load_before:.1f} before, {load_after:.1f} after"
    )
    print(f"{'step':<16} {'median ms':>10} {'p90 ms':>8}")
    for name, values in steps.items():
        print(f"{name:<16} {np.median(values):>10.3f} {np.percentile(values, 90):>8.3f}")
    print(
        f"mean per request: pixel view {pixel_view / len(drawings):.3f} ms, path view {path_view / len(drawings):.3f} ms,"
        f" pool {totals['pool'] / len(drawings):.3f} ms: the path adds {path_view / pixel_view:.1%} to the pixel view's cost"
        f" (its forward pass alone {totals['path forward'] / totals['pixel forward']:.1%} of the pixel forward pass)"
    )


if __name__ == "__main__":
    main()
