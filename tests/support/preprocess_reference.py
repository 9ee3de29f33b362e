"""The canvas -> 28x28 recipe worked at full resolution everywhere, as `doodle.canvas.preprocess` did
before it worked only in the ink's box, and a fixed set of drawings to compare the two on.

`tests/test_preprocess_reference.py` checks that `canvas_to_input` and `ink_map` give these
functions' results on every drawing of `reference_drawings`; `benchmarks/preprocess_speed.py`
times both. Self-contained on purpose: no step of the reference calls `doodle.canvas.preprocess` (only
the uploads are decoded with its `decode_image`), so a change there cannot change the reference.
"""

from __future__ import annotations

import numpy as np
from drawing_helpers import synthetic_drawings
from PIL import Image
from scipy import ndimage

from doodle.canvas import strokes
from doodle.canvas.doodles import draw_doodle
from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import decode_image
from support.digits import HAND_DRAWN_DIGITS
from support.synthetic import synthetic_mnist

OUTPUT_SIZE = 28
DIGIT_BOX = 20
CENTRE_OF_MASS = (14.0, 14.0)
MIN_INK_CONTRAST = 0.1
NOISE_SIGMAS = 5.0
MIN_COMPONENT_FRACTION = 1e-4
MIN_INK_PIXELS = 8
MIN_INK_FRACTION = 2e-4
STROKE_LEVEL = 0.2


class ReferenceBlank(ValueError):
    """The reference found no digit (where `doodle.canvas.preprocess` raises `BlankCanvasError`)."""


def reference_canvas_to_input(image: np.ndarray) -> np.ndarray:
    """A drawing -> ``(28, 28)`` float32 in [0, 1], every step on the whole canvas."""
    return reference_ink_to_input(reference_ink_map(image))


def reference_ink_map(image: np.ndarray) -> np.ndarray:
    """Any canvas array -> ``(H, W)`` float32 ink in [0, 1]: the background from the border's
    median, the noise floor from its spread, 8-connected specks labelled and dropped over the
    whole canvas, the ink scaled to its 99th percentile, the rim within two pixels kept."""
    grey = _to_grey(image)
    if not np.isfinite(grey).all():
        raise ValueError("image holds NaN or infinite values")
    border = _border(grey)
    background = float(np.median(border))
    polarity = -1.0 if background > 0.5 else 1.0
    signed = polarity * (grey - np.float32(background))
    noise_sigma = 1.4826 * float(np.median(np.abs(polarity * (border - background))))
    threshold = max(MIN_INK_CONTRAST, NOISE_SIGMAS * noise_sigma)
    mask = _drop_specks(signed > threshold)
    if mask.sum() < max(MIN_INK_PIXELS, MIN_INK_FRACTION * grey.size):
        raise ReferenceBlank()
    peak = float(np.percentile(signed[mask], 99))
    floor = min(threshold, peak) * 0.5
    ink = np.clip((signed - floor) / max(peak - floor, 1e-6), 0.0, 1.0)
    near_strokes = ndimage.binary_dilation(mask, iterations=2)
    return np.where(near_strokes, ink, 0.0).astype(np.float32)


def reference_ink_to_input(ink: np.ndarray) -> np.ndarray:
    strokes_mask = ink >= STROKE_LEVEL
    if not strokes_mask.any():
        raise ReferenceBlank()
    rows = np.flatnonzero(strokes_mask.any(axis=1))
    cols = np.flatnonzero(strokes_mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    factor = DIGIT_BOX / max(height, width)
    size = (max(1, min(DIGIT_BOX, round(width * factor))), max(1, min(DIGIT_BOX, round(height * factor))))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    digit = np.clip(
        np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, resample)), 0.0, None
    )
    peak = float(digit.max())
    if peak <= 0.0:
        raise ReferenceBlank()
    digit = np.clip(digit / peak, 0.0, 1.0)
    com_row, com_col = ndimage.center_of_mass(digit)
    top = int(np.clip(round(CENTRE_OF_MASS[0] - com_row), 0, OUTPUT_SIZE - digit.shape[0]))
    left = int(np.clip(round(CENTRE_OF_MASS[1] - com_col), 0, OUTPUT_SIZE - digit.shape[1]))
    frame = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32)
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame


def _to_grey(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    pixels = _to_unit_float(array)
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3]
        if np.median(_border(alpha)) < 0.5:
            return alpha
        rgb = pixels[:, :, :3] * alpha[:, :, None] + (1.0 - alpha[:, :, None])
    else:
        rgb = pixels
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def _to_unit_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        top = 255.0 if array.dtype.itemsize == 1 or array.max(initial=0) <= 255 else np.iinfo(array.dtype).max
        return np.clip(array.astype(np.float32) / np.float32(top), 0.0, 1.0)
    pixels = array.astype(np.float32)
    finite = pixels[np.isfinite(pixels)]
    if finite.size and finite.max() > 1.0:
        pixels = pixels / np.float32(255.0)
    return np.clip(pixels, 0.0, 1.0)


def _border(plane: np.ndarray) -> np.ndarray:
    if min(plane.shape) <= 2:
        return plane.reshape(-1)
    return np.concatenate([plane[0], plane[-1], plane[1:-1, 0], plane[1:-1, -1]])


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(3, int(MIN_COMPONENT_FRACTION * mask.size))
    keep[0] = False
    return keep[labels]


def reference_drawings() -> list[tuple[str, np.ndarray]]:
    """A fixed, seeded set of drawings of every kind `canvas_to_input` meets, as ``(name,
    canvas)``: pen-stroke digits on the 280 px pad (pens 1-34 px, so thin lines too), the README's
    hand-drawn digits, doodles traced from digit-like images, uploads (PNG, transparent PNG,
    JPEG, 200-360 px), and variants: noise with specks, dark on light, float, RGB, a drawing
    touching the edge, a tiny drawing (scaled up), a 1,000 px canvas."""
    drawings: list[tuple[str, np.ndarray]] = []
    pens = (1, 2, 3, 5, 8, 12, 18, 24, 30, 34)
    for i in range(80):
        digit = i % 10
        rng = np.random.default_rng([20261206, i])
        styles = list(strokes.STYLES[digit])
        pen = float(pens[(i // 10 + digit) % len(pens)])
        pad_strokes = strokes.draw_strokes(
            digit,
            styles[i % len(styles)],
            strokes.TRAINING_WRITERS.sample(rng),
            rng,
            pen_width=pen,
            height_fraction=float(rng.uniform(0.25, 0.9)),
        )
        drawings.append((f"pad digit {digit} pen {pen:g}", render_strokes(pad_strokes, pen_width=pen)))
    for digit, digit_strokes in HAND_DRAWN_DIGITS.items():
        drawings.append((f"hand-drawn {digit}", render_strokes(digit_strokes)))
    images, _ = synthetic_mnist(30, seed=5)
    for i, image in enumerate(images):
        try:
            drawings.append((f"doodle {i}", draw_doodle(image, np.random.default_rng([7, i]))))
        except ValueError:  # no ink to trace
            continue
    for name, data in synthetic_drawings(40, seed=11):
        drawings.append((f"upload {name}", decode_image(data)))
    drawings.extend(_variants([pad for _, pad in drawings[:80:7]]))
    return drawings


def _variants(pads: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    variants = []
    for i, pad in enumerate(pads):
        rng = np.random.default_rng([99, i])
        noisy = pad.astype(np.float32) + rng.normal(0.0, 10.0, pad.shape)
        specks = rng.integers(0, pad.shape[0] - 3, size=(12, 2))
        for row, col in specks:
            noisy[row : row + rng.integers(1, 3), col : col + rng.integers(1, 3)] = 255.0
        noisy_bytes = np.clip(noisy, 0, 255).astype(np.uint8)
        variants.append((f"noise and specks {i}", noisy_bytes))
        variants.append((f"dark on light {i}", 255 - noisy_bytes))
        variants.append((f"float {i}", np.clip(noisy / 255.0, 0.0, 1.0).astype(np.float32)))
        variants.append((f"rgb {i}", np.stack([255 - pad, 255 - pad // 2, 255 - pad // 3], axis=-1)))
        rows = np.flatnonzero(pad.any(axis=1))
        cols = np.flatnonzero(pad.any(axis=0))
        edge = np.zeros_like(pad)
        drawing = pad[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        edge[: drawing.shape[0], edge.shape[1] - drawing.shape[1] :] = drawing
        variants.append((f"touching the edge {i}", edge))
        tiny = np.zeros_like(pad)
        small = np.asarray(Image.fromarray(drawing).resize((12, 15), Image.Resampling.BILINEAR))
        tiny[100:115, 130:142] = small
        variants.append((f"tiny {i}", tiny))
        if i % 3 == 0:
            large = np.asarray(Image.fromarray(pad).resize((1000, 1000), Image.Resampling.BILINEAR))
            variants.append((f"1000 px canvas {i}", large))
    return variants
