"""Generated canvas drawings for the scoring tests: seeded, cheap, no MNIST needed."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from doodle.canvas.drawing import render_strokes


def synthetic_drawings(count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` canvas drawings as ``(file name, encoded bytes)``, deterministic for a seed:
    2-4 round-pen strokes of random width at a random size and place, black on white (PNG),
    black on a transparent canvas (RGBA PNG) or black on white as JPEG, like the drawings the
    app and API clients send."""
    drawings = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        size = int(rng.integers(200, 361))
        kind = ("png", "rgba", "jpeg")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
        box = rng.uniform(0.3, 0.8) * size
        left, top = rng.uniform(0.05 * size, size - box - 0.05 * size, size=2)
        width = max(3, int(box * rng.uniform(0.06, 0.18)))
        strokes = [
            [(float(left + x * box), float(top + y * box)) for x, y in rng.uniform(0, 1, size=(3, 2))]
            for _ in range(int(rng.integers(2, 5)))
        ]
        ink = render_strokes(strokes, size, width)  # the pad's round pen, white on black
        if kind == "rgba":  # black ink on a transparent canvas
            canvas = Image.fromarray(np.dstack([np.zeros((size, size, 3), np.uint8), ink]), "RGBA")
        else:
            canvas = Image.fromarray(255 - ink)
        buffer = io.BytesIO()
        if kind == "jpeg":
            canvas.save(buffer, format="JPEG", quality=90)
        else:
            canvas.save(buffer, format="PNG")
        drawings.append((f"drawing-{i:05d}.{'jpg' if kind == 'jpeg' else 'png'}", buffer.getvalue()))
    return drawings
