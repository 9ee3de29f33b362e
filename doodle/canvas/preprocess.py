"""Canvas image -> 28x28 model input, made the way MNIST was made; and safe image decoding.

The one preprocessing that the dashboard, the API and every benchmark use, so that what a
person draws and what a client posts meet the model the same way. MNIST's recipe: find the
ink, scale its bounding box so the longer side is 20 px (anti-aliased, aspect kept), and put
it in a 28x28 field so its centre of mass sits at the centre (row 14, column 14 in pixel-index
coordinates, as measured on MNIST itself).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from doodle.constants import IMAGE_SIDE as OUTPUT_SIZE

DIGIT_BOX = 20
# MNIST's measured mean centre of mass, (row, column) in pixel-index coordinates.
CENTRE_OF_MASS = (14.0, 14.0)

BLANK_CANVAS_MESSAGE = "draw a digit first"
NOT_AN_IMAGE_MESSAGE = "not a PNG or JPEG image"
CORRUPT_IMAGE_MESSAGE = "image is truncated or corrupt"
IMAGE_TOO_LARGE_MESSAGE = "image is too large"

ACCEPTED_FORMATS = ("PNG", "JPEG")
# 2048 x 2048: far above any drawing canvas, far below what would exhaust memory as float32.
DEFAULT_MAX_PIXELS = 2048 * 2048

# Ink must differ from the background by this much (on the 0..1 scale) to count at all ...
MIN_INK_CONTRAST = 0.1
# ... and by this many noise standard deviations, the noise being measured on the border.
NOISE_SIGMAS = 5.0
# Connected ink regions smaller than this fraction of the canvas (or 3 px) are specks.
MIN_COMPONENT_FRACTION = 1e-4
# Less kept ink than this (pixels, or fraction of the canvas) is "nearly blank".
MIN_INK_PIXELS = 8
MIN_INK_FRACTION = 2e-4
# The digit's box is that of ink at least this strong: MNIST's 20 px box holds its faint
# anti-aliased rim, but JPEG ringing around strokes must not widen it.
STROKE_LEVEL = 0.2
# Faint ink this many pixels (4-neighbour steps) from the kept strokes stays: their anti-aliased rim.
NEAR_STROKES_PX = 2
# Steps of growing within the ink mask that `_surely_no_specks` tries before it labels regions.
SPECK_CHECK_STEPS = 3


# The grey level `_to_unit_float` gives each byte value.
_BYTE_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


class BlankCanvasError(ValueError):
    """The canvas holds no digit: nothing drawn, too little ink, or only noise."""

    def __init__(self, message: str = BLANK_CANVAS_MESSAGE):
        super().__init__(message)


class ImageDecodeError(ValueError):
    """Bytes that are not a usable PNG/JPEG: not an image, truncated, or too large."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any canvas array -> ``(H, W)`` float32 intensity in [0, 1] (either polarity).

    ``image`` is ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; uint8/uint16/bool
    or float (floats above 1 are read as 0..255). When an RGBA image's border is mostly
    transparent the drawing is in the alpha channel (a transparent canvas with opaque strokes),
    so alpha is returned as the intensity; otherwise the colour's luminance is.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image has no pixels: shape {array.shape}")
    pixels = _to_unit_float(array)
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3]
        if np.median(border_pixels(alpha)) < 0.5:
            return alpha
        # Opaque background: composite over white so half-transparent strokes keep their tone.
        rgb = pixels[:, :, :3] * alpha[:, :, None] + (1.0 - alpha[:, :, None])
    else:
        rgb = pixels
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def ink_map(image: np.ndarray) -> np.ndarray:
    """Any canvas array -> ``(H, W)`` float32 ink in [0, 1] (0 background, 1 full ink).

    The background is the median of the one-pixel border, so the polarity (light ink on dark
    or dark ink on light) follows from whichever tone surrounds the drawing. Pixels that
    differ from the background by less than the noise floor, and isolated specks, become 0;
    the remaining ink is scaled so its strongest pixels are 1. Raises `BlankCanvasError` when
    no digit is left.
    """
    window, (top, left), shape = _ink_window(image)
    ink = np.zeros(shape, dtype=np.float32)
    ink[top : top + window.shape[0], left : left + window.shape[1]] = window
    return ink


def _ink_window(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """`ink_map`'s work, done at full resolution only where it must be: -> the ink map's window
    ``(h, w)`` float32 (outside it the map is 0), the window's top-left ``(row, column)`` in the
    canvas, and the canvas's ``(H, W)``.

    The background, the noise floor and the ink mask look at the whole canvas (a few cheap
    passes); specks, the peak, the ink's scaling and the faint rim near the strokes only at the
    mask's box grown by ``NEAR_STROKES_PX``, so their cost follows the drawing's size, not the
    canvas's. Every pixel gets the same arithmetic as on the whole canvas, so the map is the same.
    """
    array = np.asarray(image)
    # A grey byte canvas (the pad, most uploads) stays bytes until the window is known.
    as_bytes = array.ndim == 2 and array.dtype == np.uint8 and array.size > 0
    source = array if as_bytes else to_grey(array)
    if source.dtype.kind == "f" and not np.isfinite(source).all():
        raise ValueError("image holds NaN or infinite values")
    border = _to_unit_float(border_pixels(source)) if as_bytes else border_pixels(source)
    background = _median(border)
    polarity = -1.0 if background > 0.5 else 1.0
    noise_sigma = 1.4826 * _median(np.abs(polarity * (border - background)))
    threshold = max(MIN_INK_CONTRAST, NOISE_SIGMAS * noise_sigma)
    mask = _ink_mask(source, background, polarity, threshold)
    box = _box_of(mask)
    if box is None:
        raise BlankCanvasError()
    height, width = source.shape
    # The window: the mask's box and the rim that near-stroke ink may occupy around it.
    top, bottom = max(box[0] - NEAR_STROKES_PX, 0), min(box[1] + NEAR_STROKES_PX, height)
    left, right = max(box[2] - NEAR_STROKES_PX, 0), min(box[3] + NEAR_STROKES_PX, width)
    # Contiguous: every pass over the window then runs as one loop, not one per row.
    grey = np.ascontiguousarray(source[top:bottom, left:right])
    # polarity * (grey - background), in place: multiplying by +-1 is exact, so is negating. A
    # byte's result depends on the byte alone: bytes get it for their 256 levels, then look it up.
    signed = _BYTE_LEVELS.copy() if as_bytes else grey.copy()
    signed -= np.float32(background)
    if polarity < 0:
        np.negative(signed, out=signed)
    window_mask = mask[top:bottom, left:right]
    kept = _drop_specks(window_mask, _speck_size(source.size))
    kept_count = np.count_nonzero(kept)
    if kept_count < max(MIN_INK_PIXELS, MIN_INK_FRACTION * source.size):
        raise BlankCanvasError()
    # The strong end of the real strokes is "full ink"; a percentile ignores one hot pixel.
    peak = _byte_peak(grey, polarity, signed, kept_count) if as_bytes and kept is window_mask else None
    if peak is None:
        peak = _percentile(signed.take(grey[kept]) if as_bytes else signed[kept], 99)
    floor = min(threshold, peak) * 0.5
    # ink = clip((signed - floor) / (peak - floor), 0, 1), in place (on the 256 levels for bytes).
    ink = signed
    ink -= floor
    ink /= max(peak - floor, 1e-6)
    np.maximum(ink, 0.0, out=ink)
    np.minimum(ink, 1.0, out=ink)
    if as_bytes:
        inked = _count_inked_bytes(grey, ink, polarity)
        ink = ink.take(grey)
    else:
        inked = np.count_nonzero(ink)
    # Keep faint anti-aliasing next to the strokes, drop everything else (specks, noise). The
    # kept strokes are all ink; when nothing else is (a pad's clean strokes), nothing is dropped.
    if inked > kept_count:
        ink *= _grow_cross(kept, NEAR_STROKES_PX)
    return ink, (top, left), (height, width)


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` of the true pixels of an ``(H, W)`` boolean mask (bottom
    and right exclusive), None when there are none. The mask's bytes searched from both ends
    give the rows, the rows between them ORed together the columns: each a C loop over bytes,
    where ``mask.any(axis=1)`` pays numpy's reduction set-up once per row."""
    data = mask.tobytes()
    first = data.find(1)
    if first < 0:
        return None
    width = mask.shape[1]
    top, bottom = first // width, data.rfind(1) // width + 1
    columns = np.logical_or.reduce(mask[top:bottom], axis=0).tobytes()
    return top, bottom, columns.find(1), columns.rfind(1) + 1


def _count_inked_bytes(grey: np.ndarray, levels: np.ndarray, polarity: float) -> int:
    """How many pixels of a byte window get ink above 0 from the 256 ``levels`` (the ink of
    each byte): ``np.count_nonzero(levels.take(grey))`` as one comparison of bytes. The ink
    only falls as a byte moves away from the ink's side (the arithmetic that makes it is
    monotonic), so the inked bytes are the ones up to the last inked one (dark ink), or from the
    first (light ink)."""
    inked = np.flatnonzero(levels > 0)
    if inked.size == 0:
        return 0
    return int(np.count_nonzero(grey <= int(inked[-1]) if polarity < 0 else grey >= int(inked[0])))


def _byte_peak(grey: np.ndarray, polarity: float, signed: np.ndarray, kept_count: int) -> float | None:
    """`_percentile` (99) of ``signed`` over the ink of a byte window, when the ink is all of
    the mask (no speck dropped) and its strongest byte fills the top of the order: a pen's
    strokes, mostly full ink. The strongest byte (the darkest for dark ink) is ink, and so is
    every pixel holding it; when they are at least the values from the percentile's lower
    neighbour up, both neighbours are that byte's level and the interpolation between equal
    values gives it exactly. None otherwise (the caller sorts the values)."""
    strongest = int(grey.min() if polarity < 0 else grey.max())
    at_strongest = np.count_nonzero(grey == strongest)
    below = int(np.floor((kept_count - 1) * (99 / 100)))
    if below < kept_count - at_strongest:
        return None
    return float(signed[strongest])


def _ink_mask(source: np.ndarray, background: float, polarity: float, threshold: float) -> np.ndarray:
    """Pixels that differ from the background by more than ``threshold`` in the ink's direction,
    ``(H, W)`` bool, from the float grey canvas or from its ``uint8`` bytes. A byte's grey level
    only rises with the byte, so for bytes the test is one comparison with the first (or last)
    byte whose level passes, found among the 256 levels with the same arithmetic."""
    if source.dtype != np.uint8:
        return polarity * (source - np.float32(background)) > threshold
    inked = np.flatnonzero(polarity * (_BYTE_LEVELS - np.float32(background)) > threshold)
    if inked.size == 0:
        return np.zeros(source.shape, dtype=bool)
    # A Python int keeps the comparison in uint8 (a numpy int64 would widen every byte first).
    return source >= int(inked[0]) if polarity > 0 else source <= int(inked[-1])


def _percentile(values: np.ndarray, percent: int) -> float:
    """``np.percentile(values, percent)`` of a 1-D float32 array without NaN (its default linear
    method, the same arithmetic), partitioning ``values`` in place: numpy's own call costs more
    than the partition. Mirrors numpy 2's ``_quantile``: the virtual index ``(n - 1) * q``, its
    neighbours, and the lerp taken from the nearer end."""
    count = values.size
    virtual = (count - 1) * (percent / 100)
    below = int(np.floor(virtual))
    if virtual >= count - 1:
        values.partition(count - 1)
        return float(values[count - 1])
    values.partition((below, below + 1))
    low, high = values[below], values[below + 1]
    weight = virtual - below
    step = high - low
    return float(high - step * (1 - weight) if weight >= 0.5 else low + step * weight)


def _median(values: np.ndarray) -> float:
    """`np.median` of a 1-D float32 array without NaN, by the same arithmetic (the two middle
    values averaged in float32), minus its overhead: it runs twice per drawing."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def blank_inputs(images: np.ndarray) -> np.ndarray:
    """Which model inputs are too empty to be a digit: ``(N, 784)`` or ``(N, 28, 28)`` in [0, 1]
    (0 background, 1 ink) -> ``(N,)`` bool. The 28x28 counterpart of `canvas_to_input`'s blank
    check: fewer than ``MIN_INK_PIXELS`` pixels at ``MIN_INK_CONTRAST`` or more."""
    x = np.asarray(images).reshape(len(images), -1)
    return (x >= MIN_INK_CONTRAST).sum(axis=1) < MIN_INK_PIXELS


def blank_input(image: np.ndarray) -> bool:
    """`blank_inputs` for one input, ``(784,)`` or ``(28, 28)``: one NumPy call where the batch's
    reshape and sum cost twice as much on a single image."""
    return bool(np.count_nonzero(image >= MIN_INK_CONTRAST) < MIN_INK_PIXELS)


def canvas_to_input(image: np.ndarray) -> np.ndarray:
    """A drawing -> ``(28, 28)`` float32 in [0, 1], 0 background / 1 ink, as MNIST was made.

    ``image``: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``, any size, uint8 or float, either
    polarity (see `to_grey`, `ink_map`). The bounding box of the strokes (ink >= 0.2) is
    scaled (area-averaged when shrinking, so thin strokes survive as grey; bilinear when
    growing) until its longer side is 20 px, its peak set back to 1, and it is pasted so its
    centre of mass lands on (14, 14), rounded to whole pixels and clamped inside the frame. Raises `BlankCanvasError`
    ("draw a digit first") for a blank, nearly blank or noise-only canvas.
    """
    window, _, _ = _ink_window(image)  # ink_to_input needs only the part that holds ink
    return ink_to_input(window)


def ink_to_input(ink: np.ndarray) -> np.ndarray:
    """The second half of `canvas_to_input`: a clean ``(H, W)`` float32 ink map in [0, 1]
    (0 background, as `ink_map` returns it) -> ``(28, 28)`` float32 in [0, 1]. A pad rendered
    without noise (0 and 1 only) is its own ink map, so generated training digits can skip the
    cleaning and still meet the model exactly as drawn digits do. Raises `BlankCanvasError`
    when no pixel reaches the stroke level."""
    box = _box_of(ink >= STROKE_LEVEL)
    if box is None:
        raise BlankCanvasError()
    top, bottom, left, right = box
    crop = ink[top:bottom, left:right]
    digit = _scale_longer_side(crop, DIGIT_BOX)
    peak = float(digit.max())
    if peak <= 0.0:
        raise BlankCanvasError()
    # A 1 px stroke shrunk 14x averages to 0.07; MNIST strokes peak at 1, so restore the peak.
    digit /= peak
    np.minimum(digit, 1.0, out=digit)  # clip(digit / peak, 0, 1): the digit is never negative
    return _paste_centred(digit)


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, transparent_as_alpha: bool = False
) -> np.ndarray:
    """PNG/JPEG bytes -> ``(H, W)`` uint8 grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8.

    16-bit greyscale becomes ``(H, W)`` float32 in [0, 1]; an EXIF orientation is applied. With
    ``transparent_as_alpha``, an RGBA image whose border is mostly transparent comes back as
    its alpha channel, ``(H, W)`` uint8: the drawing `to_grey` would read from it, and
    `canvas_to_input` gives the same input for both, at a quarter of the copying and on its
    byte path. The size is checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing. Raises
    `ImageDecodeError` for non-images, other formats, truncated or corrupt files, and images
    with more than ``max_pixels`` pixels.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise ImageDecodeError(NOT_AN_IMAGE_MESSAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(bytes(data)), formats=list(ACCEPTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(IMAGE_TOO_LARGE_MESSAGE) from None
    except (OSError, SyntaxError, ValueError):  # UnidentifiedImageError is an OSError
        raise ImageDecodeError(NOT_AN_IMAGE_MESSAGE) from None
    with opened as img:
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageDecodeError(CORRUPT_IMAGE_MESSAGE)
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"{IMAGE_TOO_LARGE_MESSAGE}: {width}x{height} pixels, at most {max_pixels} allowed"
            )
        try:
            img.load()
            # Phone photos store "rotate me" in EXIF instead of rotating the pixels. In place: the
            # image is ours, and a copy of every upload's pixels is not needed.
            ImageOps.exif_transpose(img, in_place=True)
            converted = _convert_mode(img)
            if transparent_as_alpha and converted.mode == "RGBA":
                alpha = np.asarray(converted.getchannel("A"))
                if alpha_holds_drawing(alpha):
                    return alpha.copy()
            return np.asarray(converted).copy() if converted.mode != "I" else _wide_grey(converted)
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ImageDecodeError(CORRUPT_IMAGE_MESSAGE) from None


def alpha_holds_drawing(alpha: np.ndarray) -> bool:
    """`to_grey`'s test on an RGBA image's ``(H, W)`` uint8 alpha channel: a mostly transparent
    border, so the drawing is in the alpha."""
    return bool(np.median(border_pixels(_to_unit_float(alpha))) < 0.5)


def _to_unit_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:  # the common case first: every canvas the app and most uploads send
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        top = 255.0 if array.dtype.itemsize == 1 or array.max(initial=0) <= 255 else np.iinfo(array.dtype).max
        unit = array.astype(np.float32) / np.float32(top)
        # Unsigned values cannot leave [0, 1] here; only negative signed ones need the clip.
        return unit if array.dtype.kind == "u" else np.clip(unit, 0.0, 1.0)
    pixels = array.astype(np.float32)
    finite = pixels[np.isfinite(pixels)]
    if finite.size and finite.max() > 1.0:
        pixels = pixels / np.float32(255.0)
    return np.clip(pixels, 0.0, 1.0)  # NaN stays NaN and is rejected by the caller


def border_pixels(plane: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels of an ``(H, W)`` plane, as a flat array."""
    if min(plane.shape) <= 2:
        return plane.reshape(-1)
    return np.concatenate([plane[0], plane[-1], plane[1:-1, 0], plane[1:-1, -1]])


def _speck_size(canvas_pixels: int) -> int:
    """Regions of fewer pixels than this are specks on a canvas of ``canvas_pixels`` pixels."""
    return max(3, int(MIN_COMPONENT_FRACTION * canvas_pixels))


def _drop_specks(mask: np.ndarray, min_size: int | None = None) -> np.ndarray:
    """Keep the 8-connected regions of ``mask`` that are large enough to be strokes: ``min_size``
    pixels or more (default: `_speck_size` of the mask's own size)."""
    if min_size is None:
        min_size = _speck_size(mask.size)
    if _surely_no_specks(mask, min_size):
        return mask
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def _surely_no_specks(mask: np.ndarray, min_size: int) -> bool:
    """True when every pixel of ``mask`` is shown to lie in an 8-connected region of at least
    ``min_size`` pixels without labelling the regions (labelling cost more than the rest of
    `canvas_to_input`). Seeds lie in such a region: pixels whose 3x3 neighbourhood holds
    ``min_size`` mask pixels (all of them touch the seed), or, for a larger ``min_size`` (a
    larger canvas), pixels whose whole ``k x k`` neighbourhood (``k * k >= min_size``) is mask.
    Every mask pixel joined to a seed is in the seed's region; a pen's strokes are seeds but
    for their rims, which a few steps of growing within the mask reach. False (label them)
    when some pixel is still not reached: a speck, or a line thinner than ``k``.

    The sums and the growing run on the mask laid out flat (`_flat_layout`): every neighbour is
    one shift of one contiguous array, where a 2-D shift by a column would walk row by row."""
    if mask.size == 0:
        return False
    side = 3
    while side * side < min_size:
        side += 2
    reach = side // 2
    height = mask.shape[0]
    padded, width = _flat_layout(mask, reach, reach, np.uint8 if side == 3 else np.uint16)
    flat = padded.reshape(-1)
    across = flat.copy()  # the sum over each pixel's row of the neighbourhood
    for shift in range(1, reach + 1):
        across[shift:] += flat[:-shift]
        across[:-shift] += flat[shift:]
    start, size = reach * width, height * width  # the mask's rows, without the empty ones around them
    counts = across[start : start + size].copy()
    for shift in range(1, reach + 1):
        counts += across[start - shift * width : start - shift * width + size]
        counts += across[start + shift * width : start + shift * width + size]
    inside = flat[start : start + size] != 0
    reached = inside & (counts >= (min_size if side == 3 else side * side))
    total = np.count_nonzero(inside)
    for _ in range(SPECK_CHECK_STEPS + reach - 1):
        if np.count_nonzero(reached) == total:
            return True
        reached = _grow_square(reached, width)
        reached &= inside
    return np.count_nonzero(reached) == total


def _flat_layout(mask: np.ndarray, empty_rows: int, empty_columns: int, dtype=bool) -> tuple[np.ndarray, int]:
    """``(H, W)`` mask -> ``(H + 2 * empty_rows, W + empty_columns)`` C-contiguous copy in
    ``dtype`` (0/1) with empty rows above and below and empty columns on the right, and its
    row length. Flat, a shift by ``k <= empty_columns`` moves a pixel ``k`` columns within its
    row or into empty columns, never onto a pixel of the next or the previous row: the 2-D
    neighbourhood of every pixel, outside counting as empty, in one contiguous shift."""
    height, width = mask.shape
    padded = np.zeros((height + 2 * empty_rows, width + empty_columns), dtype=dtype)
    padded[empty_rows : empty_rows + height, :width] = mask
    return padded, width + empty_columns


def _grow_square(flat: np.ndarray, width: int) -> np.ndarray:
    """One step of 8-neighbour dilation of a flat boolean mask laid out by `_flat_layout` (rows
    of ``width``, at least one empty column on the right); outside counts as empty."""
    across = flat.copy()
    across[1:] |= flat[:-1]
    across[:-1] |= flat[1:]
    grown = across.copy()
    grown[width:] |= across[:-width]
    grown[:-width] |= across[width:]
    return grown


def _grow_cross(mask: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` steps of 4-neighbour dilation of a boolean ``(H, W)`` mask, outside counting as
    empty: `scipy.ndimage.binary_dilation` with its default cross and ``iterations=steps``.
    Flat (`_flat_layout` with ``steps`` empty columns, which growth may enter but never cross);
    the result is a view of ``(H, W)``."""
    height, width = mask.shape
    padded, row = _flat_layout(mask, 0, steps)
    grown = padded.reshape(-1)
    for _ in range(steps):
        previous = grown
        grown = previous.copy()
        grown[row:] |= previous[:-row]
        grown[:-row] |= previous[row:]
        grown[1:] |= previous[:-1]
        grown[:-1] |= previous[1:]
    return grown.reshape(height, row)[:, :width]


def _scale_longer_side(crop: np.ndarray, longer: int) -> np.ndarray:
    """``(h, w)`` float32 -> ``(h', w')`` with ``max(h', w') == longer``, aspect kept."""
    height, width = crop.shape
    factor = longer / max(height, width)
    new_height = max(1, min(longer, round(height * factor)))
    new_width = max(1, min(longer, round(width * factor)))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    plane = Image.frombytes("F", (width, height), *_rows_of(crop))
    scaled = plane.resize((new_width, new_height), resample).tobytes()
    digit = np.frombuffer(scaled, dtype=np.float32).reshape(new_height, new_width)
    return np.maximum(digit, 0.0)  # clip(digit, 0, None), into a new writable array


def _rows_of(crop: np.ndarray) -> tuple[np.ndarray, str, str, int, int]:
    """``crop``'s pixels for Pillow's raw decoder as float32 rows: a crop of a larger float32
    array is read in place (its rows ``stride`` bytes apart), anything else from a copy."""
    height, width = crop.shape
    row_stride = crop.strides[0]
    if crop.dtype == np.float32 and crop.strides[1] == 4 and row_stride % 4 == 0 and row_stride >= 4 * width:
        span = (height - 1) * (row_stride // 4) + width  # from the first pixel to the last
        return np.lib.stride_tricks.as_strided(crop, shape=(span,), strides=(4,)), "raw", "F", row_stride, 1
    return np.ascontiguousarray(crop, dtype=np.float32), "raw", "F", 0, 1


def _paste_centred(digit: np.ndarray) -> np.ndarray:
    """Put ``(h, w)`` (h, w <= 28) into a 28x28 frame with its centre of mass on (14, 14)."""
    height, width = digit.shape
    com_row, com_col = _centre_of_mass(digit)
    top = min(max(round(CENTRE_OF_MASS[0] - com_row), 0), OUTPUT_SIZE - height)
    left = min(max(round(CENTRE_OF_MASS[1] - com_col), 0), OUTPUT_SIZE - width)
    frame = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = digit
    return frame


def _centre_of_mass(plane: np.ndarray) -> tuple[float, float]:
    """``(row, column)`` centre of mass of an ``(h, w)`` float32 plane: `scipy.ndimage.center_of_mass`'s
    arithmetic (a float32 total, float64 weighted sums) without its overhead."""
    total = plane.sum()
    rows = np.arange(plane.shape[0], dtype=float).reshape(-1, 1)
    cols = np.arange(plane.shape[1], dtype=float).reshape(1, -1)
    return (plane * rows).sum() / total, (plane * cols).sum() / total


def _convert_mode(img: Image.Image) -> Image.Image:
    """Pillow's many modes -> L, RGB, RGBA or I (16/32-bit grey)."""
    if img.mode in ("L", "RGB", "RGBA"):
        return img
    if img.mode in ("1",):
        return img.convert("L")
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        return img.convert("I")
    if img.mode in ("LA", "PA", "La", "RGBa") or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("RGB")


def _wide_grey(img: Image.Image) -> np.ndarray:
    """A 16-bit greyscale image -> ``(H, W)`` float32 in [0, 1]."""
    values = np.asarray(img, dtype=np.float32)
    return np.clip(values / 65535.0, 0.0, 1.0)
