"""The pen's path as the path model reads it: a digit's strokes -> one fixed-length vector.

A drawing is its strokes in drawing order, each a ``(K, 2)`` array of pad points ``(x, y)``, y
pointing down (the pad's pixels; `doodle.sources.pendigits.to_pad` puts the real writers' tablet strokes
there). `path_features` turns it into what the MLP reads, in four steps (notebooks/02_derive_path
derives and justifies each):

1. **Join** the strokes in order into one polyline; the straight jump from the end of a stroke to
   the start of the next is part of it, marked pen-up. The order and the jumps are what the ink
   does not show: a 4 in one stroke or two, a 9 whose tail curls one way or the other.
2. **Resample** the polyline to ``points`` points equally spaced by arc length (pen-up jumps count
   at `JUMP_WEIGHT` of their length, so a long jump does not swallow the points of the ink). The
   tablet's 100 ms sampling and the pad's pointer events then give the same vector for the same
   shape, whatever the speed of the pen.
3. **Normalise** position and size: the centre of the bounding box goes to 0 and its longer side
   becomes 2, so coordinates lie in ``[-1, 1]`` and the aspect is kept (a 1 stays thin).
4. **Per point**: ``x, y`` (3), a pen-down flag (1 on ink, 0 on a jump) and the direction of the
   step to the next point as ``(cos, sin)`` (the last point repeats the previous step): direction
   is what tells a 3 drawn downwards from a curled 9, and unit vectors do not jump at +-180 degrees
   as an angle would.

The vector is ``points`` rows of ``(x, y, pen_down, cos, sin)`` flattened: ``5 * points`` float32.
`augment_strokes` draws the random small rotation, slant, scale and jitter used in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POINTS = 32  # resampled points per digit
CHANNELS = 5  # x, y, pen_down, cos, sin
JUMP_WEIGHT = 0.3  # share of a pen-up jump's length that counts in the arc length

NO_STROKES = "a drawing needs at least one stroke"
EMPTY_STROKE = "stroke {index} has no points"
BAD_STROKE_SHAPE = "stroke {index} must be (K, 2) points, got shape {shape}"
NOT_FINITE = "stroke {index} holds NaN or infinite coordinates"


def feature_size(points: int = POINTS) -> int:
    """Length of the vector `path_features` returns."""
    return CHANNELS * points


def check_strokes(strokes: Sequence[np.ndarray | Sequence[Sequence[float]]]) -> list[np.ndarray]:
    """Strokes as ``(K, 2)`` float64 arrays, or `ValueError` naming what is wrong: no strokes, an
    empty stroke, a stroke that is not pairs of numbers, NaN or infinity. A one-point stroke is a dot."""
    if len(strokes) == 0:
        raise ValueError(NO_STROKES)
    checked = []
    for index, stroke in enumerate(strokes):
        array = np.asarray(stroke, dtype=np.float64)
        if array.size == 0:
            raise ValueError(EMPTY_STROKE.format(index=index))
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(BAD_STROKE_SHAPE.format(index=index, shape=array.shape))
        if not np.isfinite(array).all():
            raise ValueError(NOT_FINITE.format(index=index))
        checked.append(array)
    return checked


def join_strokes(strokes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Strokes -> the joined polyline ``(M, 2)`` and ``(M - 1,)`` bool, True where the segment from
    point i to i + 1 is ink (within a stroke) and False on the jump between two strokes. A digit of
    one single point gives ``(1, 2)`` and no segments."""
    points = np.concatenate(strokes, axis=0)
    ink = np.ones(max(len(points) - 1, 0), dtype=bool)
    end = 0
    for stroke in strokes[:-1]:
        end += len(stroke)
        ink[end - 1] = False  # from the last point of this stroke to the first of the next
    return points, ink


def resample(
    points: np.ndarray, ink: np.ndarray, count: int = POINTS, jump_weight: float = JUMP_WEIGHT
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points equally spaced along the polyline by arc length (jumps weighted by
    ``jump_weight``), and for each the pen-down flag of the segment it lies on (1.0 ink, 0.0 jump;
    the last point takes its segment's). A polyline of no length gives ``count`` copies of its
    first point, pen down."""
    if len(points) < 2:
        return np.repeat(points[:1], count, axis=0), np.ones(count)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    weighted = np.where(ink, steps, steps * jump_weight)
    arc = np.concatenate([[0.0], np.cumsum(weighted)])
    total = arc[-1]
    if total <= 0:
        return np.repeat(points[:1], count, axis=0), np.ones(count)
    targets = np.linspace(0.0, total, count)
    # The segment each target lies on: the last arc position <= target, never past the last segment.
    segment = np.clip(np.searchsorted(arc, targets, side="right") - 1, 0, len(steps) - 1)
    span = weighted[segment]
    fraction = np.divide(targets - arc[segment], span, out=np.zeros(count), where=span > 0)
    start, stop = points[segment], points[segment + 1]
    resampled = start + fraction[:, None] * (stop - start)
    return resampled, ink[segment].astype(np.float64)


def normalise(points: np.ndarray) -> np.ndarray:
    """Centre the bounding box on 0 and scale its longer side to 2 (aspect kept); a single point
    (no extent) is only centred."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    half = float((high - low).max()) / 2.0
    return (points - centre) / (half if half > 0 else 1.0)


def directions(points: np.ndarray) -> np.ndarray:
    """``(count, 2)`` unit vectors ``(cos, sin)`` of each step to the next point; the last point
    repeats the step before it; a step of no length gives ``(0, 0)``."""
    steps = np.diff(points, axis=0)
    if len(steps) == 0:
        return np.zeros_like(points)
    steps = np.concatenate([steps, steps[-1:]], axis=0)
    length = np.linalg.norm(steps, axis=1, keepdims=True)
    return np.divide(steps, length, out=np.zeros_like(steps), where=length > 1e-9)


def path_features(strokes: Sequence[np.ndarray], points: int = POINTS) -> np.ndarray:
    """One drawing's strokes (pad coordinates, y down, in drawing order) -> ``(5 * points,)``
    float32: per resampled point ``x, y, pen_down, cos, sin`` (module docstring)."""
    joined, ink = join_strokes(check_strokes(strokes))
    resampled, pen_down = resample(joined, ink, points)
    position = normalise(resampled)
    rows = np.column_stack([position, pen_down, directions(position)])
    return rows.astype(np.float32).reshape(-1)


def features_of(drawings: Sequence[Sequence[np.ndarray]], points: int = POINTS) -> np.ndarray:
    """Many drawings -> ``(N, 5 * points)`` float32."""
    out = np.empty((len(drawings), feature_size(points)), dtype=np.float32)
    for row, strokes in enumerate(drawings):
        out[row] = path_features(strokes, points)
    return out


def augment_strokes(
    strokes: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    max_rotation: float = 10.0,
    max_slant: float = 0.25,
    scale_range: tuple[float, float] = (0.85, 1.15),
    jitter: float = 0.01,
) -> list[np.ndarray]:
    """A random small distortion of one drawing: rotation up to ``max_rotation`` degrees either way,
    slant (horizontal shear ``x += s * y``, ``|s| <= max_slant``), separate scale factors for x and y
    from ``scale_range``, and Gaussian jitter of every point with sd ``jitter`` times the drawing's
    size. The order of strokes and points is kept: the path's story is the same, the hand differs."""
    joined = np.concatenate(strokes, axis=0)
    centre = (joined.min(axis=0) + joined.max(axis=0)) / 2.0
    size = float((joined.max(axis=0) - joined.min(axis=0)).max()) or 1.0
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    shear = np.array([[1.0, rng.uniform(-max_slant, max_slant)], [0.0, 1.0]])
    scale = np.diag(rng.uniform(*scale_range, size=2))
    matrix = rotation @ shear @ scale
    out = []
    for stroke in strokes:
        moved = (np.asarray(stroke, dtype=np.float64) - centre) @ matrix.T + centre
        out.append(moved + rng.normal(0.0, jitter * size, size=moved.shape))
    return out
