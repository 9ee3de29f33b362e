"""Canvas preprocessing: every kind of canvas comes out as an MNIST-like 28x28 input."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from doodle.canvas import preprocess
from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import (
    BLANK_CANVAS_MESSAGE,
    CORRUPT_IMAGE_MESSAGE,
    IMAGE_TOO_LARGE_MESSAGE,
    NOT_AN_IMAGE_MESSAGE,
    BlankCanvasError,
    ImageDecodeError,
    canvas_to_input,
    decode_image,
)
from doodle.paths import MNIST_DIR_ENV

# A "7", a "0"-like ring and a "4" as polylines on a 0..1 square, drawn at any size.
SEVEN = [[(0.2, 0.15), (0.8, 0.15), (0.45, 0.9)]]
FOUR = [[(0.6, 0.9), (0.6, 0.1), (0.15, 0.65), (0.85, 0.65)]]


def draw(strokes, size=(280, 280), width=18, ink=255, background=0, box=(0.0, 0.0, 1.0, 1.0)):
    """Strokes in unit coordinates, mapped into ``box`` (x0, y0, x1, y1) of a ``size`` (W, H)
    canvas, drawn with the pad's round pen (`doodle.canvas.drawing.render_strokes`) in ``ink`` on
    ``background``."""
    x0, y0, x1, y1 = box
    mapped = [
        [((x0 + x * (x1 - x0)) * size[0], (y0 + y * (y1 - y0)) * size[1]) for x, y in stroke]
        for stroke in strokes
    ]
    pen = render_strokes(mapped, (size[1], size[0]), width)
    return np.where(pen > 0, ink, background).astype(np.uint8)


def ring(size=280, radius=0.35, width=18):
    img = Image.new("L", (size, size), 0)
    c, r = size / 2, radius * size
    ImageDraw.Draw(img).ellipse((c - r * 0.7, c - r, c + r * 0.7, c + r), outline=255, width=width)
    return np.asarray(img)


def assert_mnist_like(x: np.ndarray) -> None:
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() == pytest.approx(1.0)
    com = ndimage.center_of_mass(x)
    assert abs(com[0] - 14.0) <= 0.5 + 1e-6 and abs(com[1] - 14.0) <= 0.5 + 1e-6, com
    rows = np.flatnonzero(x.max(axis=1) > 0)
    cols = np.flatnonzero(x.max(axis=0) > 0)
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20
    assert rows[0] >= 0 and rows[-1] <= 27 and cols[0] >= 0 and cols[-1] <= 27


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def seven() -> np.ndarray:
    return canvas_to_input(draw(SEVEN))


def test_centred_drawing_is_mnist_like(seven):
    assert_mnist_like(seven)


@pytest.mark.parametrize("box", [(0.0, 0.0, 0.4, 0.4), (0.6, 0.55, 1.0, 0.95), (0.0, 0.6, 0.3, 1.0)])
def test_shifted_drawing_gives_the_same_input(seven, box):
    shifted = canvas_to_input(draw(SEVEN, box=box, width=7))
    assert_mnist_like(shifted)
    assert correlation(shifted, seven) > 0.85


def test_tiny_drawing_is_scaled_up(seven):
    tiny = canvas_to_input(draw(SEVEN, box=(0.45, 0.45, 0.55, 0.55), width=3))
    assert_mnist_like(tiny)
    assert correlation(tiny, seven) > 0.7


def test_huge_canvas(seven):
    huge = canvas_to_input(draw(SEVEN, size=(1400, 1400), width=90))
    assert_mnist_like(huge)
    assert correlation(huge, seven) > 0.95


def test_thick_strokes_still_mnist_like():
    thick = canvas_to_input(draw(SEVEN, width=50))
    assert_mnist_like(thick)
    assert (thick > 0.5).mean() > 0.15  # a thick pen stays thick


def test_one_pixel_line_survives_a_14x_shrink():
    thin = canvas_to_input(draw(FOUR, width=1))
    assert_mnist_like(thin)
    # Each of the 20 rows the vertical bar spans keeps visible ink.
    assert ((thin > 0.3).sum(axis=1) > 0).sum() >= 18


def test_inverted_canvas_matches(seven):
    dark_on_light = canvas_to_input(draw(SEVEN, ink=0, background=255))
    np.testing.assert_allclose(dark_on_light, seven, atol=1e-5)


def test_rgba_transparent_background_uses_alpha(seven):
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., :3] = 30  # dark ink colour: luminance alone would say "nothing here"
    rgba[..., 3] = draw(SEVEN)
    np.testing.assert_allclose(canvas_to_input(rgba), seven, atol=1e-5)


def test_rgb_and_float_and_grey_agree(seven):
    grey = draw(SEVEN)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_allclose(canvas_to_input(rgb), seven, atol=1e-5)
    np.testing.assert_allclose(canvas_to_input(grey / 255.0), seven, atol=1e-5)
    np.testing.assert_allclose(canvas_to_input(grey.astype(np.float32)), seven, atol=1e-5)
    opaque = np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])
    np.testing.assert_allclose(canvas_to_input(opaque), seven, atol=1e-5)


@pytest.mark.parametrize("size", [(420, 200), (150, 500)])
def test_non_square_canvas(seven, size):
    side = min(size)
    left, top = (size[0] - side) / 2 / size[0], (size[1] - side) / 2 / size[1]
    box = (left, top, 1 - left, 1 - top)
    x = canvas_to_input(draw(SEVEN, size=size, width=side // 15, box=box))
    assert_mnist_like(x)
    assert correlation(x, seven) > 0.9


def test_wide_and_tall_shapes_keep_their_aspect():
    dash = canvas_to_input(draw([[(0.2, 0.5), (0.8, 0.5)]], width=20))
    rows = np.flatnonzero(dash.max(axis=1) > 0)
    cols = np.flatnonzero(dash.max(axis=0) > 0)
    assert cols[-1] - cols[0] + 1 == 20 and rows[-1] - rows[0] + 1 <= 6


def test_noise_does_not_move_the_digit(seven):
    rng = np.random.default_rng(0)
    noisy = np.clip(draw(SEVEN) + rng.normal(0, 6, (280, 280)), 0, 255).astype(np.uint8)
    assert correlation(canvas_to_input(noisy), seven) > 0.95


def test_stray_specks_are_ignored(seven):
    canvas = draw(SEVEN).copy()
    canvas[5, 5] = canvas[270, 10] = canvas[140, 275] = 255
    np.testing.assert_allclose(canvas_to_input(canvas), seven, atol=1e-5)


def blank_canvases():
    rng = np.random.default_rng(1)
    specks = np.zeros((280, 280), np.uint8)
    specks[rng.integers(0, 280, 12), rng.integers(0, 280, 12)] = 255
    return {
        "black": np.zeros((280, 280), np.uint8),
        "white": np.full((280, 280), 255, np.uint8),
        "transparent": np.zeros((280, 280, 4), np.uint8),
        "grey noise": np.clip(rng.normal(128, 6, (280, 280)), 0, 255).astype(np.uint8),
        "faint smudge": draw(SEVEN, ink=12),
        "specks": specks,
        "one tiny dot": draw([[(0.5, 0.5)]], width=2),
        "single pixel canvas": np.ones((1, 1), np.float32),
    }


@pytest.mark.parametrize("name", list(blank_canvases()))
def test_blank_or_nearly_blank_canvas_raises(name):
    with pytest.raises(BlankCanvasError) as error:
        canvas_to_input(blank_canvases()[name])
    assert str(error.value) == BLANK_CANVAS_MESSAGE == "draw a digit first"
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("shape", [(28,), (28, 28, 2), (0, 28), (28, 28, 5)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="shape"):
        canvas_to_input(np.zeros(shape, np.uint8))


def test_nan_raises():
    canvas = draw(SEVEN).astype(np.float32)
    canvas[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        canvas_to_input(canvas)


def load_mnist_test_images(count: int) -> np.ndarray:
    folder = Path(os.environ.get(MNIST_DIR_ENV, "data/raw"))
    path = folder / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"MNIST test images not found in {folder} (set {MNIST_DIR_ENV})")
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]


def best_shifted_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation up to a one-pixel shift: centring rounds the centre of mass to whole pixels,
    and MNIST's own digits sit up to half a pixel off (14, 14), so a 1 px flip is expected."""
    return max(correlation(np.roll(a, (dy, dx), axis=(0, 1)), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_upscaled_mnist_digits_come_back():
    images = load_mnist_test_images(300)
    scores = []
    for image in images:
        big = np.asarray(Image.fromarray(image).resize((280, 280), Image.Resampling.BILINEAR))
        scores.append(best_shifted_correlation(canvas_to_input(big), image / 255.0))
    assert np.median(scores) > 0.95
    assert np.mean(np.array(scores) > 0.9) > 0.97
    assert np.min(scores) > 0.8


def test_mnist_digit_itself_is_almost_a_fixed_point():
    images = load_mnist_test_images(50)
    scores = [correlation(canvas_to_input(image), image / 255.0) for image in images]
    assert np.median(scores) > 0.99


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_decode_png_modes_round_trip():
    grey = draw(SEVEN)
    np.testing.assert_array_equal(decode_image(png_bytes(grey)), grey)
    rgba = np.dstack([grey, grey, grey, grey])
    np.testing.assert_array_equal(decode_image(png_bytes(rgba)), rgba)
    assert decode_image(png_bytes(np.dstack([grey] * 3), "JPEG")).shape == (280, 280, 3)


def test_decoded_images_feed_canvas_to_input(seven):
    for array, fmt in (
        (draw(SEVEN), "PNG"),
        (draw(SEVEN), "JPEG"),
        (draw(SEVEN, ink=0, background=255), "JPEG"),
    ):
        x = canvas_to_input(decode_image(png_bytes(array, fmt)))
        assert correlation(x, seven) > 0.97


def test_palette_png_with_transparency_becomes_rgba():
    img = Image.fromarray(draw(SEVEN)).convert("P")
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", transparency=0)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (280, 280, 4)


def test_exif_orientation_is_applied():
    upright = draw(SEVEN, size=(200, 280))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(
        buffer, format="JPEG", exif=exif, quality=95
    )
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == upright.shape
    assert correlation(decoded.astype(float), upright.astype(float)) > 0.95


def test_sixteen_bit_png_becomes_unit_floats():
    wide = (draw(SEVEN).astype(np.uint16) * 257).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.dtype == np.float32 and decoded.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"GIF89a" + b"\0" * 100, b"\x89PNG\r\n\x1a\n" + b"\0" * 20]
)
def test_decode_non_images(data):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(data)
    assert str(error.value) in (NOT_AN_IMAGE_MESSAGE, CORRUPT_IMAGE_MESSAGE)


def test_decode_rejects_other_formats():
    buffer = io.BytesIO()
    Image.fromarray(draw(SEVEN)).save(buffer, format="BMP")
    with pytest.raises(ImageDecodeError, match=NOT_AN_IMAGE_MESSAGE):
        decode_image(buffer.getvalue())


def test_decode_truncated_png():
    data = png_bytes(np.random.default_rng(0).integers(0, 255, (280, 280), dtype=np.uint8))
    with pytest.raises(ImageDecodeError, match=CORRUPT_IMAGE_MESSAGE):
        decode_image(data[: len(data) // 2])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels, with one compressed row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def test_decode_rejects_decompression_bomb_before_decoding():
    # The header says 20000 x 20000: 400 MB once decoded, refused from the header alone.
    bomb = png_header_only(20000, 20000)
    with pytest.raises(ImageDecodeError, match=IMAGE_TOO_LARGE_MESSAGE):
        decode_image(bomb)
    small = png_bytes(np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageDecodeError, match=IMAGE_TOO_LARGE_MESSAGE):
        decode_image(small, max_pixels=99 * 100)
    assert decode_image(small, max_pixels=100 * 100).shape == (100, 100)


def test_messages_are_defined_once():
    assert preprocess.BLANK_CANVAS_MESSAGE == "draw a digit first"
    assert str(BlankCanvasError()) == preprocess.BLANK_CANVAS_MESSAGE


def test_blank_inputs_flags_model_inputs_with_too_little_ink():
    from doodle.canvas.preprocess import MIN_INK_PIXELS, blank_input, blank_inputs

    images = np.zeros((4, 28, 28), dtype=np.float32)
    images[1, 10, 10 : 10 + MIN_INK_PIXELS - 1] = 1.0  # one pixel short of a stroke
    images[2, 5:25, 14] = 1.0  # a "1"
    images[3] = 0.05  # a faint wash, below the ink contrast everywhere
    np.testing.assert_array_equal(blank_inputs(images), [True, True, False, True])
    np.testing.assert_array_equal(blank_inputs(images.reshape(4, 784)), [True, True, False, True])
    # One input at a time (the API's /predict) says the same.
    assert [blank_input(image.reshape(784)) for image in images] == [True, True, False, True]
    assert [blank_input(image) for image in images] == [True, True, False, True]
