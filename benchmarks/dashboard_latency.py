"""Dashboard latency: from a click on Predict to the answer on the page, in headless Chromium.

Voilà serves the dashboard as `make run` does; 50 drawings are made with mouse strokes (MNIST
test digits traced to their skeletons, at random sizes and places, so every drawing differs),
then Predict is clicked and the time until the whole answer is on the page (guess, bars,
attribution map and hidden units) is measured inside the page. Prints p50 / p95 / max and how many drawings the model read right.

    .venv/bin/python benchmarks/dashboard_latency.py [--drawings 50] [--seed 0]

Needs a trained model (models/ or DOODLE_MODEL_PATH), Chromium, and the MNIST files
(DOODLE_MNIST_DIR or data/raw) for the strokes; without them the hand-drawn sample digits
are jittered instead.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support: the Voilà and browser driver

from doodle.canvas.doodles import place_on_pad, skeleton_drawing  # noqa: E402
from doodle.model.model_io import load_model  # noqa: E402
from doodle.paths import MNIST_DIR_ENV, model_path  # noqa: E402
from support.browser import DashboardPage, launch_chromium  # noqa: E402
from support.digits import HAND_DRAWN_DIGITS  # noqa: E402
from support.voila import VoilaServer  # noqa: E402

Strokes = list[list[tuple[float, float]]]


def mnist_test_digits(count: int) -> tuple[np.ndarray, np.ndarray] | None:
    folder = Path(os.environ.get(MNIST_DIR_ENV) or ROOT / "data" / "raw")
    images_path = folder / "t10k-images-idx3-ubyte.gz"
    labels_path = folder / "t10k-labels-idx1-ubyte.gz"
    if not (images_path.is_file() and labels_path.is_file()):
        return None
    with gzip.open(images_path) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    with gzip.open(labels_path) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)[:count].astype(int)
    return images, labels


def drawings(count: int, seed: int) -> list[tuple[int, Strokes]]:
    """``count`` labelled drawings with varied strokes."""
    rng = np.random.default_rng(seed)
    mnist = mnist_test_digits(count)
    made: list[tuple[int, Strokes]] = []
    if mnist is not None:
        for image, label in zip(*mnist):
            strokes = skeleton_drawing(image, rng)
            if strokes:
                made.append((int(label), _points(strokes)))
        return made
    print("MNIST files not found: jittering the hand-drawn sample digits instead", file=sys.stderr)
    for i in range(count):
        digit = i % 10
        strokes = [np.array(s) + rng.normal(0, 4, (len(s), 2)) for s in HAND_DRAWN_DIGITS[digit]]
        made.append((digit, _points(place_on_pad(strokes, rng))))
    return made


def _points(strokes: list[np.ndarray]) -> Strokes:
    return [[(float(x), float(y)) for x, y in stroke] for stroke in strokes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drawings", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load_model(model_path())  # fail early, with the loader's message, if there is none
    samples = drawings(args.drawings, args.seed)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="doodle-bench-") as workdir:
        env = {"DOODLE_FEEDBACK_DB": str(Path(workdir) / "feedback.sqlite")}
        started = time.perf_counter()
        with VoilaServer(Path(workdir) / "voila.log", env=env) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            dashboard = DashboardPage(page, server.url).open()
            print(
                f"model {model.version}; Voilà up and the page rendered in {time.perf_counter() - started:.1f} s"
            )
            # One warm-up prediction: the first one pays for imports in the kernel.
            dashboard.draw(samples[0][1])
            dashboard.timed_predict()
            latencies, misread = [], []
            for label, strokes in samples:
                dashboard.clear()
                dashboard.draw(strokes)
                elapsed_ms, shown = dashboard.timed_predict()
                latencies.append(elapsed_ms)
                if shown.digit != label:
                    misread.append(f"{label} read as {shown.digit}")
            browser.close()

    times = np.array(latencies)
    p50, p95 = np.percentile(times, [50, 95])
    print(f"Predict click -> answer on screen over {len(times)} drawings:")
    print(
        f"  p50 {p50:.0f} ms   p95 {p95:.0f} ms   mean {times.mean():.0f} ms   max {times.max():.0f} ms"
        f"   (aim: p95 <= 100 ms)"
    )
    print(
        f"  read right: {len(times) - len(misread)}/{len(times)} drawings"
        + (f" (misread: {', '.join(misread)})" if misread else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
