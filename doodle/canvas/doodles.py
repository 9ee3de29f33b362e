"""The doodle benchmark: MNIST digits redrawn the way people draw on a canvas (the evaluate stage and
the seed study draw them from sampled validation digits, `doodle.study.development`).

A person drawing with a mouse or a finger leaves strokes of one even width, with round ends,
at whatever size and place they like, unlike MNIST's scanned pen strokes. Each digit is
thinned to its skeleton, the skeleton is traced into strokes, and the strokes are redrawn with
a round pen of random width on a 280x280 canvas at a random size and position; the canvas then
goes through `doodle.canvas.preprocess.canvas_to_input`, the same path the dashboard and the API use.
Every random choice comes from a generator seeded with ``(seed, index)``, so image ``i`` is the
same whatever subset is generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.morphology import skeletonize

from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import canvas_to_input
from doodle.constants import BINARY_INK_BYTE, CANVAS_SIZE  # BINARY_INK_BYTE: MNIST ink before thinning

BACKGROUND = 255  # a white canvas with black ink, as the drawing app shows it


@dataclass(frozen=True)
class DoodleStyle:
    """Ranges the per-image random choices are drawn from (uniformly).

    ``size``: the longer side of the drawing as a fraction of the canvas; ``pen_fraction``: the
    pen's diameter as a fraction of that longer side (MNIST's strokes are about 10-15 % of the
    digit's height); ``smoothing``: passes of a 1-2-1 filter over each stroke's points, which
    turns the skeleton's pixel staircase into a hand's smooth line.
    """

    size: tuple[float, float] = (0.3, 0.9)
    pen_fraction: tuple[float, float] = (0.07, 0.2)
    min_pen_px: int = 4
    smoothing: int = 2


DEFAULT_STYLE = DoodleStyle()


def skeleton_strokes(image: np.ndarray) -> list[np.ndarray]:
    """``(28, 28)`` uint8 digit -> strokes, each ``(K, 2)`` float64 (row, col) points along the skeleton.

    The binarised digit is thinned to a one-pixel skeleton whose pixels are joined to their
    8-neighbours; a diagonal link is dropped when a 4-connected path already joins its two
    ends (so corners do not make tiny triangles). Strokes run between end points and junctions;
    closed loops (an "0") become one stroke that returns to its start. Isolated pixels are
    strokes of one point.
    """
    skeleton = skeletonize(np.asarray(image) >= BINARY_INK_BYTE)
    pixels = {(int(r), int(c)) for r, c in zip(*np.nonzero(skeleton))}
    neighbours: dict[tuple[int, int], set[tuple[int, int]]] = {p: set() for p in pixels}
    for r, c in pixels:
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            other = (r + dr, c + dc)
            if other not in pixels:
                continue
            if dr and dc and ((r, c + dc) in pixels or (r + dr, c) in pixels):
                continue
            neighbours[(r, c)].add(other)
            neighbours[other].add((r, c))

    visited: set[frozenset] = set()
    strokes: list[np.ndarray] = []

    def walk(start: tuple[int, int], first: tuple[int, int]) -> list[tuple[int, int]]:
        path = [start, first]
        visited.add(frozenset((start, first)))
        previous, current = start, first
        while len(neighbours[current]) == 2:
            (following,) = neighbours[current] - {previous}
            edge = frozenset((current, following))
            if edge in visited:
                break
            visited.add(edge)
            path.append(following)
            previous, current = current, following
        return path

    # Sorted, so the strokes (and hence the random choices applied to them) are deterministic.
    for node in sorted(pixels):
        if len(neighbours[node]) == 0:
            strokes.append(np.array([node], dtype=np.float64))
        elif len(neighbours[node]) != 2:
            for other in sorted(neighbours[node]):
                if frozenset((node, other)) not in visited:
                    strokes.append(np.array(walk(node, other), dtype=np.float64))
    for node in sorted(pixels):  # what is left are closed loops
        for other in sorted(neighbours[node]):
            if frozenset((node, other)) not in visited:
                strokes.append(np.array(walk(node, other), dtype=np.float64))
    return strokes


# A skeleton trace placed on the pad as a person draws a digit there: its longer side this many
# px, at least TRACE_MARGIN px from the pad's edges.
TRACE_SIZE = (140.0, 230.0)
TRACE_MARGIN = 15.0


def skeleton_drawing(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``(28, 28)`` uint8 digit -> its skeleton traced as pad strokes, each ``(K, 2)`` float64
    (x, y) points in pixels of the 280 px pad: every other skeleton point (the strokes stay
    smooth and short), the longer side `TRACE_SIZE` px, anywhere it fits. How the dashboard
    benchmarks draw an MNIST digit with the mouse."""
    strokes = [stroke[:, ::-1][:: 2 if len(stroke) > 4 else 1] for stroke in skeleton_strokes(image)]
    strokes = [stroke for stroke in strokes if len(stroke)]
    return place_on_pad(strokes, rng) if strokes else []


def place_on_pad(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes of ``(K, 2)`` (x, y) points in any units -> pad pixels: scaled so the longer side
    is `TRACE_SIZE` px (drawn from ``rng``), moved anywhere that keeps `TRACE_MARGIN` px clear."""
    everything = np.concatenate(strokes)
    low, high = everything.min(axis=0), everything.max(axis=0)
    factor = rng.uniform(*TRACE_SIZE) / max(float((high - low).max()), 1.0)
    room = np.maximum(CANVAS_SIZE - 2 * TRACE_MARGIN - (high - low) * factor, 0.0)
    offset = TRACE_MARGIN + rng.uniform(0, 1, size=2) * room
    return [(stroke - low) * factor + offset for stroke in strokes]


def _smooth(points: np.ndarray, passes: int) -> np.ndarray:
    """1-2-1 filter over a stroke's ``(K, 2)`` points; the ends stay put (a loop's start is its end)."""
    points = points.copy()
    for _ in range(passes):
        if len(points) < 3:
            break
        points[1:-1] = 0.25 * points[:-2] + 0.5 * points[1:-1] + 0.25 * points[2:]
    return points


def draw_doodle(
    image: np.ndarray, rng: np.random.Generator, style: DoodleStyle = DEFAULT_STYLE
) -> np.ndarray:
    """``(28, 28)`` uint8 MNIST digit -> ``(280, 280)`` uint8 canvas, black round-pen strokes on white.

    Raises ValueError when the digit has no ink to trace.
    """
    strokes = [_smooth(stroke, style.smoothing) for stroke in skeleton_strokes(image)]
    if not strokes:
        raise ValueError("digit has no ink at or above the binarisation threshold")
    everything = np.concatenate(strokes)
    low, high = everything.min(axis=0), everything.max(axis=0)
    extent = max(float((high - low).max()), 1.0)

    longer_side = rng.uniform(*style.size) * CANVAS_SIZE
    pen = max(style.min_pen_px, int(round(rng.uniform(*style.pen_fraction) * longer_side)))
    margin = pen / 2 + 2  # a dot of the pen covers pen / 2 px each side of its point, both ends included
    # Never larger than the canvas holds, pen included (a large size with a thick pen would be cut off).
    factor = min(longer_side, CANVAS_SIZE - 2 * margin) / extent
    drawn = (high - low) * factor
    # Anywhere on the canvas that keeps the whole drawing, pen included, inside it.
    room = np.maximum(CANVAS_SIZE - 2 * margin - drawn, 0.0)
    offset = margin + rng.uniform(0.0, 1.0, size=2) * room

    points = [(stroke - low) * factor + offset for stroke in strokes]  # (row, col) on the pad
    # The pad's round pen, turned dark on white.
    return BACKGROUND - render_strokes([stroke[:, ::-1] for stroke in points], CANVAS_SIZE, pen)


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def make_doodles(
    images: np.ndarray,
    seed: int,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    style: DoodleStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """MNIST digits ``(N, 784)`` or ``(N, 28, 28)`` uint8 -> doodles ``(N, 28, 28)`` float32 in [0, 1].

    ``indices`` (default ``0..N-1``) are the digits' positions in their sample; with ``seed``
    they seed each image's pen, size and place, so a subset reproduces the same doodles.
    """
    images = np.asarray(images).reshape(-1, 28, 28)
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    if len(indices) != len(images):
        raise ValueError(f"{len(indices)} indices for {len(images)} images")
    out = np.empty((len(images), 28, 28), dtype=np.float32)
    for row, (image, index) in enumerate(zip(images, indices)):
        out[row] = canvas_to_input(draw_doodle(image, _rng(seed, index), style))
    return out


def sample_canvases(
    images: np.ndarray,
    seed: int,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    style: DoodleStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """The canvases behind `make_doodles` for a figure: ``(N, 28, 28)`` uint8 -> ``(N, 280, 280)`` uint8."""
    images = np.asarray(images).reshape(-1, 28, 28)
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    return np.stack([draw_doodle(image, _rng(seed, index), style) for image, index in zip(images, indices)])
