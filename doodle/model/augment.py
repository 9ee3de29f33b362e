"""Image transforms for training augmentation and robustness curves, in NumPy alone.

People draw digits thicker, thinner, smaller, tilted and further off-centre than MNIST's
writers; these transforms make the training images vary in exactly those ways. Every function
takes and returns ``(N, 28, 28)`` float32 batches in [0, 1] (0 background, 1 ink). Geometric
transforms share one batched affine warp with bilinear sampling, so `random_augment` moves,
turns, scales and bends each image with its own random parameters in a single gather pass.

Conventions: ``dx > 0`` moves ink right, ``dy > 0`` moves it down, ``degrees > 0`` turns it
counter-clockwise as displayed (``rotate(x, 90)`` matches ``np.rot90(x, axes=(1, 2))``), and
``factor > 1`` enlarges it; rotation and scaling are about the image centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from doodle.constants import IMAGE_SIDE as SIDE

CENTRE = (SIDE - 1) / 2.0
# Source coordinates are clipped into a zero border this wide, so a gather never leaves the array.
_PAD = 2
_PADDED = SIDE + 2 * _PAD

ScalarOrPerImage = float | Sequence[float] | np.ndarray


def _check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"expected images of shape (N, {SIDE}, {SIDE}), got {images.shape}")
    return images


def _per_image(value: ScalarOrPerImage, count: int) -> np.ndarray:
    """A scalar or ``(N,)`` parameter -> ``(N,)`` float32."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 0:
        return np.full(count, array, dtype=np.float32)
    if array.shape != (count,):
        raise ValueError(f"expected a scalar or one value per image ({count}), got shape {array.shape}")
    return array


_GRID_ROW, _GRID_COL = (axis.astype(np.float32) - np.float32(CENTRE) for axis in np.mgrid[0:SIDE, 0:SIDE])


def _source_coords(
    degrees: np.ndarray, factor: np.ndarray, dx: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel reads from: two ``(N, 28, 28)`` float32 arrays (row, col).

    The forward map is ``out = factor * R(degrees) @ src + (dx, dy)`` about the centre; we need its
    inverse, evaluated on the output grid. Rows grow downward, so a counter-clockwise turn on
    screen is clockwise in (row, col) coordinates.
    """
    theta = np.deg2rad(degrees.astype(np.float64))
    cos = (np.cos(theta) / factor).astype(np.float32)[:, None, None]
    sin = (np.sin(theta) / factor).astype(np.float32)[:, None, None]
    col = _GRID_COL[None] - dx[:, None, None]
    row = _GRID_ROW[None] - dy[:, None, None]
    src_col = cos * col - sin * row + np.float32(CENTRE)
    src_row = sin * col + cos * row + np.float32(CENTRE)
    return src_row, src_col


def _sample(images: np.ndarray, src_row: np.ndarray, src_col: np.ndarray) -> np.ndarray:
    """Bilinear sampling with zeros outside: ``(N, 28, 28)`` images at ``(N, 28, 28)`` coordinates."""
    count = len(images)
    padded = np.zeros((count, _PADDED, _PADDED), dtype=np.float32)
    padded[:, _PAD:-_PAD, _PAD:-_PAD] = images
    # Points beyond one pixel outside the image all read the zero border.
    src_row = np.clip(src_row, -1.0, SIDE, dtype=np.float32)
    src_col = np.clip(src_col, -1.0, SIDE, dtype=np.float32)
    row0 = np.floor(src_row)
    col0 = np.floor(src_col)
    w_row = src_row - row0
    w_col = src_col - col0
    base = (np.arange(count, dtype=np.intp) * (_PADDED * _PADDED))[:, None, None]
    top_left = base + (row0.astype(np.intp) + _PAD) * _PADDED + (col0.astype(np.intp) + _PAD)
    flat = padded.ravel()
    top = flat[top_left] + w_col * (flat[top_left + 1] - flat[top_left])
    bottom = flat[top_left + _PADDED] + w_col * (flat[top_left + _PADDED + 1] - flat[top_left + _PADDED])
    out = top + w_row * (bottom - top)
    return np.clip(out, 0.0, 1.0, out=out)


def affine(
    images: np.ndarray,
    *,
    degrees: ScalarOrPerImage = 0.0,
    factor: ScalarOrPerImage = 1.0,
    dx: ScalarOrPerImage = 0.0,
    dy: ScalarOrPerImage = 0.0,
) -> np.ndarray:
    """Rotate, scale and shift in one bilinear warp: ``(N, 28, 28)`` float32 -> same.

    Each parameter is a scalar or one value per image; ``factor`` must be positive.
    """
    images = _check_batch(images)
    count = len(images)
    if (np.asarray(factor) <= 0).any():
        raise ValueError("scale factor must be positive")
    if all(np.ndim(value) == 0 for value in (degrees, factor, dx, dy)):
        # One warp for the whole batch: column gathers, several times faster than per-image maps.
        src_row, src_col = _source_coords(*(_per_image(value, 1) for value in (degrees, factor, dx, dy)))
        indices, weights = _bilinear_taps(src_row, src_col)
        flat = _warp_shared(images.reshape(count, SIDE * SIDE), indices[0], weights[0])
        return flat.reshape(count, SIDE, SIDE)
    src_row, src_col = _source_coords(
        _per_image(degrees, count), _per_image(factor, count), _per_image(dx, count), _per_image(dy, count)
    )
    return _sample(images, src_row, src_col)


def rotate(images: np.ndarray, degrees: ScalarOrPerImage) -> np.ndarray:
    """Turn counter-clockwise (as displayed) about the centre: ``(N, 28, 28)`` -> same."""
    return affine(images, degrees=degrees)


def shift(images: np.ndarray, dx: ScalarOrPerImage, dy: ScalarOrPerImage) -> np.ndarray:
    """Move ink ``dx`` pixels right and ``dy`` down (fractions interpolate): ``(N, 28, 28)`` -> same."""
    return affine(images, dx=dx, dy=dy)


def scale(images: np.ndarray, factor: ScalarOrPerImage) -> np.ndarray:
    """Enlarge (``factor > 1``) or shrink about the centre: ``(N, 28, 28)`` -> same."""
    return affine(images, factor=factor)


def _disc_offsets(radius: int) -> list[tuple[int, int]]:
    span = range(-radius, radius + 1)
    # radius + 0.5 so that radius 1 is the 3x3 cross and radius 2 a rounded 5x5.
    return [(r, c) for r in span for c in span if r * r + c * c <= (radius + 0.5) ** 2]


def _morph(images: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """Grey dilation (``grow``) or erosion by a disc of integer ``radius``; zeros outside."""
    if radius == 0:
        return images.copy()
    count = len(images)
    padded = np.zeros((count, SIDE + 2 * radius, SIDE + 2 * radius), dtype=np.float32)
    padded[:, radius:-radius, radius:-radius] = images
    reduce = np.maximum if grow else np.minimum
    out = None
    for r, c in _disc_offsets(radius):
        window = padded[:, radius + r : radius + r + SIDE, radius + c : radius + c + SIDE]
        out = window.copy() if out is None else reduce(out, window, out=out)
    return out


def _blend_stroke(images: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Per-image stroke change; fractional deltas interpolate between neighbouring radii.

    Only the images with ``delta != 0`` are processed: each is a hat-weighted sum of its
    eroded, original and dilated versions, so the whole batch needs one pass per radius.
    """
    changed = np.flatnonzero(delta)
    if changed.size == 0:
        return images
    subset, delta = images[changed], delta[changed]
    lowest, highest = min(int(np.floor(delta.min())), 0), max(int(np.ceil(delta.max())), 0)
    blended = np.zeros_like(subset)
    for radius in range(lowest, highest + 1):
        weight = np.maximum(0.0, 1.0 - np.abs(delta - radius)).astype(np.float32)
        if not weight.any():
            continue
        level = subset if radius == 0 else _morph(subset, abs(radius), grow=radius > 0)
        blended += weight[:, None, None] * level
    out = images.copy()
    out[changed] = blended
    return out


def stroke_width(images: np.ndarray, delta: ScalarOrPerImage) -> np.ndarray:
    """Thicken (``delta > 0``) or thin (``delta < 0``) strokes by ``|delta|`` pixels each side.

    Grey dilation or erosion by a small disc; a fractional delta blends the two nearest integer
    radii. ``(N, 28, 28)`` float32 -> same, in [0, 1].
    """
    images = _check_batch(images)
    return _blend_stroke(images, _per_image(delta, len(images)))


def _gaussian_matrix(sigma: float) -> np.ndarray:
    """``(28, 28)`` float32 matrix ``G`` with ``G @ field`` a Gaussian blur along axis 0.

    Rows are normalised, so the border sees a renormalised (not zero-padded) kernel.
    """
    index = np.arange(SIDE, dtype=np.float64)
    kernel = np.exp(-0.5 * ((index[:, None] - index[None, :]) / sigma) ** 2)
    return (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)


def _elastic_displacement(
    rng: np.random.Generator, count: int, alpha: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Simard et al.'s smooth random field: uniform noise in [-1, 1] blurred by a Gaussian of
    ``sigma`` pixels, times ``alpha``. Returns two ``(N, 28, 28)`` float32 displacements."""
    blur = _gaussian_matrix(sigma)
    noise = rng.random((2, count, SIDE, SIDE), dtype=np.float32) * 2.0 - 1.0
    # A separable blur is two small matrix products, far cheaper than a convolution loop.
    field = blur @ noise @ blur.T
    field *= np.float32(alpha)
    return field[0], field[1]


def elastic(
    images: np.ndarray, rng: np.random.Generator, alpha: float = 34.0, sigma: float = 4.0
) -> np.ndarray:
    """Elastic distortion (Simard, Steinkraus and Platt 2003): ``(N, 28, 28)`` float32 -> same.

    ``alpha`` scales the displacement, ``sigma`` (pixels) sets how smooth it is; alpha = 34,
    sigma = 4 bends strokes by about a pixel or two.
    """
    images = _check_batch(images)
    d_row, d_col = _elastic_displacement(rng, len(images), alpha, sigma)
    row, col = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    return _sample(images, row[None] + d_row, col[None] + d_col)


def _bilinear_taps(src_row: np.ndarray, src_col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``K`` coordinate maps ``(K, 28, 28)``: flat pixel indices ``(K, 4, 784)`` intp and
    weights ``(K, 4, 784)`` float32 of the four neighbours each output pixel reads. Neighbours
    outside the image get weight 0 (and read pixel 0), which is zero padding."""
    count = len(src_row)
    src_row = src_row.reshape(count, 1, SIDE * SIDE)
    src_col = src_col.reshape(count, 1, SIDE * SIDE)
    row0 = np.floor(src_row)
    col0 = np.floor(src_col)
    w_row = src_row - row0
    w_col = src_col - col0
    # Taps in the order top-left, top-right, bottom-left, bottom-right.
    d_row = np.array([0, 0, 1, 1])[None, :, None]
    d_col = np.array([0, 1, 0, 1])[None, :, None]
    row = row0.astype(np.intp) + d_row
    col = col0.astype(np.intp) + d_col
    weights = np.where(d_row == 1, w_row, 1 - w_row) * np.where(d_col == 1, w_col, 1 - w_col)
    inside = (row >= 0) & (row < SIDE) & (col >= 0) & (col < SIDE)
    indices = np.where(inside, row * SIDE + col, 0)
    return indices, np.where(inside, weights, 0.0).astype(np.float32)


def _warp_shared(flat_images: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One warp for a whole batch: ``(n, 784)`` float32 -> ``(n, 784)``, a weighted sum of four
    column gathers with taps ``(4, 784)`` (the same for every image, so reads stay in cache)."""
    out = np.take(flat_images, indices[0], axis=1)
    out *= weights[0]
    for tap in range(1, 4):
        out += np.take(flat_images, indices[tap], axis=1) * weights[tap]
    return np.clip(out, 0.0, 1.0, out=out)


def random_augment(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    max_rotation: float = 10.0,
    max_shift: float = 2.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
    stroke_prob: float = 0.5,
    stroke_range: tuple[float, float] = (-0.5, 1.0),
    images_per_warp: int = 16,
) -> np.ndarray:
    """Random distortions in one vectorised pass: ``(N, 28, 28)`` float32 -> same, in [0, 1].

    Each image gets its own stroke change, drawn from ``stroke_range`` with probability
    ``stroke_prob`` (else none). Then the batch is split at random into groups of
    ``images_per_warp``, and each group shares one random warp: a rotation in
    +-``max_rotation`` degrees, a scale in ``scale_range``, a shift in +-``max_shift`` pixels
    on each axis and, when ``elastic_alpha > 0``, an elastic field. Sharing a warp within a
    small random group keeps the variety across the epoch while the gathers read each image
    contiguously (about ten times faster than a separate coordinate map per image).
    Deterministic given the state of ``rng``.
    """
    images = _check_batch(images)
    count = len(images)
    if count == 0:
        return images.copy()
    groups = -(-count // max(int(images_per_warp), 1))

    def uniform(low: float, high: float, size: int) -> np.ndarray:
        return rng.uniform(low, high, size).astype(np.float32)

    # Every random number is drawn up front in a fixed order, so options do not shift the stream.
    delta = np.where(rng.random(count) < stroke_prob, uniform(*stroke_range, count), 0.0).astype(np.float32)
    order = rng.permutation(count)
    degrees = uniform(-max_rotation, max_rotation, groups)
    factor = uniform(*scale_range, groups)
    dx = uniform(-max_shift, max_shift, groups)
    dy = uniform(-max_shift, max_shift, groups)
    src_row, src_col = _source_coords(degrees, factor, dx, dy)
    if elastic_alpha > 0:
        d_row, d_col = _elastic_displacement(rng, groups, elastic_alpha, elastic_sigma)
        src_row += d_row
        src_col += d_col

    indices, weights = _bilinear_taps(src_row, src_col)
    flat = _blend_stroke(images, delta).reshape(count, SIDE * SIDE)
    out = np.empty_like(flat)
    for group, members in enumerate(np.array_split(order, groups)):
        out[members] = _warp_shared(flat[members], indices[group], weights[group])
    return out.reshape(count, SIDE, SIDE)
