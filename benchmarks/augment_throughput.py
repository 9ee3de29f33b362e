"""Cost of training augmentation: milliseconds per 60,000 images for `doodle.model.augment`.

Times `random_augment` as the training loop calls it (slices of 2,048 images) with the default
options, with elastic distortion, and with stroke changes only, plus the deterministic transforms
the evaluation stage uses; the best of a few rounds counts (on a shared machine the best round is
the least disturbed one). Images are the prepared training split if it exists, else random strokes.

    .venv/bin/python benchmarks/augment_throughput.py [--rounds 3]
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

from doodle.model import augment  # noqa: E402
from doodle.model.train import AUGMENT_CHUNK  # noqa: E402
from doodle.sources import data  # noqa: E402

IMAGES = 60_000


def load_images() -> tuple[np.ndarray, str]:
    try:
        images, _ = data.load_split("train", ROOT / "data" / "prepared")
        source = "prepared training split"
    except Exception:  # no pipeline run yet: strokes are what matters for the cost, not digits
        rng = np.random.default_rng(0)
        images = (rng.random((IMAGES, 784)) < 0.19).astype(np.uint8) * 255
        source = "random pixels"
    images = np.resize(images, (IMAGES, 784)).reshape(IMAGES, 28, 28).astype(np.float32) / 255.0
    return images, source


def best_ms(run, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    images, source = load_images()
    rng = np.random.default_rng(0)

    def chunked(**options):
        def run():
            for start in range(0, IMAGES, AUGMENT_CHUNK):
                augment.random_augment(images[start : start + AUGMENT_CHUNK], rng, **options)

        return run

    def whole(transform):
        def run():
            for start in range(0, IMAGES, AUGMENT_CHUNK):
                transform(images[start : start + AUGMENT_CHUNK])

        return run

    cases = {
        "random_augment, defaults": chunked(),
        "random_augment, elastic alpha 34": chunked(elastic_alpha=34.0),
        "random_augment, warp only (no stroke)": chunked(stroke_prob=0.0),
        "random_augment, a warp per image": chunked(images_per_warp=1),
        "rotate 10 degrees": whole(lambda x: augment.rotate(x, 10.0)),
        "shift 1.5, -0.5": whole(lambda x: augment.shift(x, 1.5, -0.5)),
        "stroke_width +1": whole(lambda x: augment.stroke_width(x, 1.0)),
        "elastic alpha 34 sigma 4": whole(lambda x: augment.elastic(x, rng, 34.0, 4.0)),
    }
    print(
        f"{IMAGES:,} images ({source}), slices of {AUGMENT_CHUNK}, best of {args.rounds}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'transform':40s} {'ms per 60k':>12s}")
    for name, run in cases.items():
        print(f"{name:40s} {best_ms(run, args.rounds):12.0f}")


if __name__ == "__main__":
    main()
