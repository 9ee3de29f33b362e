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
    grey = to_grey(image)
    if not np.isfinite(grey).all():
        raise ValueError("image holds NaN or infinite values")
    border = border_pixels(grey)
    background = float(np.median(border))
    polarity = -1.0 if background > 0.5 else 1.0
    signed = polarity * (grey - np.float32(background))
    noise_sigma = 1.4826 * float(np.median(np.abs(polarity * (border - background))))
    threshold = max(MIN_INK_CONTRAST, NOISE_SIGMAS * noise_sigma)
    mask = _drop_specks(signed > threshold)
    area = grey.size
    if mask.sum() < max(MIN_INK_PIXELS, MIN_INK_FRACTION * area):
        raise BlankCanvasError()
    # The strong end of the real strokes is "full ink"; a percentile ignores one hot pixel.
    peak = float(np.percentile(signed[mask], 99))
    floor = min(threshold, peak) * 0.5
    ink = np.clip((signed - floor) / max(peak - floor, 1e-6), 0.0, 1.0)
    # Keep faint anti-aliasing next to the strokes, drop everything else (specks, noise).
    near_strokes = ndimage.binary_dilation(mask, iterations=2)
    return np.where(near_strokes, ink, 0.0).astype(np.float32)


def blank_inputs(images: np.ndarray) -> np.ndarray:
    """Which model inputs are too empty to be a digit: ``(N, 784)`` or ``(N, 28, 28)`` in [0, 1]
    (0 background, 1 ink) -> ``(N,)`` bool. The 28x28 counterpart of `canvas_to_input`'s blank
    check: fewer than ``MIN_INK_PIXELS`` pixels at ``MIN_INK_CONTRAST`` or more."""
    x = np.asarray(images).reshape(len(images), -1)
    return (x >= MIN_INK_CONTRAST).sum(axis=1) < MIN_INK_PIXELS


def canvas_to_input(image: np.ndarray) -> np.ndarray:
    """A drawing -> ``(28, 28)`` float32 in [0, 1], 0 background / 1 ink, as MNIST was made.

    ``image``: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``, any size, uint8 or float, either
    polarity (see `to_grey`, `ink_map`). The bounding box of the strokes (ink >= 0.2) is
    scaled (area-averaged when shrinking, so thin strokes survive as grey; bilinear when
    growing) until its longer side is 20 px, its peak set back to 1, and it is pasted so its
    centre of mass lands on (14, 14), rounded to whole pixels and clamped inside the frame. Raises `BlankCanvasError`
    ("draw a digit first") for a blank, nearly blank or noise-only canvas.
    """
    return ink_to_input(ink_map(image))


def ink_to_input(ink: np.ndarray) -> np.ndarray:
    """The second half of `canvas_to_input`: a clean ``(H, W)`` float32 ink map in [0, 1]
    (0 background, as `ink_map` returns it) -> ``(28, 28)`` float32 in [0, 1]. A pad rendered
    without noise (0 and 1 only) is its own ink map, so generated training digits can skip the
    cleaning and still meet the model exactly as drawn digits do. Raises `BlankCanvasError`
    when no pixel reaches the stroke level."""
    strokes = ink >= STROKE_LEVEL
    if not strokes.any():
        raise BlankCanvasError()
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digit = _scale_longer_side(crop, DIGIT_BOX)
    peak = float(digit.max())
    if peak <= 0.0:
        raise BlankCanvasError()
    # A 1 px stroke shrunk 14x averages to 0.07; MNIST strokes peak at 1, so restore the peak.
    digit = np.clip(digit / peak, 0.0, 1.0)
    return _paste_centred(digit)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """PNG/JPEG bytes -> ``(H, W)`` uint8 grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8.

    16-bit greyscale becomes ``(H, W)`` float32 in [0, 1]; an EXIF orientation is applied. The
    size is checked from the header before any pixel is decoded, so a decompression bomb costs
    nothing. Raises
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
            # Phone photos store "rotate me" in EXIF instead of rotating the pixels.
            converted = _convert_mode(ImageOps.exif_transpose(img))
            return np.asarray(converted).copy() if converted.mode != "I" else _wide_grey(converted)
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ImageDecodeError(CORRUPT_IMAGE_MESSAGE) from None


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
    return np.clip(pixels, 0.0, 1.0)  # NaN stays NaN and is rejected by the caller


def border_pixels(plane: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels of an ``(H, W)`` plane, as a flat array."""
    if min(plane.shape) <= 2:
        return plane.reshape(-1)
    return np.concatenate([plane[0], plane[-1], plane[1:-1, 0], plane[1:-1, -1]])


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Keep the 8-connected regions of ``mask`` that are large enough to be strokes."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    min_size = max(3, int(MIN_COMPONENT_FRACTION * mask.size))
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def _scale_longer_side(crop: np.ndarray, longer: int) -> np.ndarray:
    """``(h, w)`` float32 -> ``(h', w')`` with ``max(h', w') == longer``, aspect kept."""
    height, width = crop.shape
    factor = longer / max(height, width)
    new_height = max(1, min(longer, round(height * factor)))
    new_width = max(1, min(longer, round(width * factor)))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    scaled = Image.fromarray(crop.astype(np.float32), mode="F").resize((new_width, new_height), resample)
    return np.clip(np.asarray(scaled, dtype=np.float32), 0.0, None)


def _paste_centred(digit: np.ndarray) -> np.ndarray:
    """Put ``(h, w)`` (h, w <= 28) into a 28x28 frame with its centre of mass on (14, 14)."""
    height, width = digit.shape
    com_row, com_col = ndimage.center_of_mass(digit)
    top = int(np.clip(round(CENTRE_OF_MASS[0] - com_row), 0, OUTPUT_SIZE - height))
    left = int(np.clip(round(CENTRE_OF_MASS[1] - com_col), 0, OUTPUT_SIZE - width))
    frame = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = digit
    return frame


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
