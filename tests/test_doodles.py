"""The doodle benchmark generator and the font digits: determinism, shapes, ranges, variety."""

import numpy as np
import pytest
from scipy import ndimage

from doodle.canvas import doodles, fonts
from doodle.canvas.preprocess import BLANK_CANVAS_MESSAGE

SEED = 1234


def _ring() -> np.ndarray:
    """A '0': a 2 px thick square ring, (28, 28) uint8."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[6:22, 8:20] = 255
    image[8:20, 10:18] = 0
    return image


def _seven() -> np.ndarray:
    """A '7': a top bar and a diagonal, (28, 28) uint8."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[5:8, 7:21] = 255
    for row in range(8, 24):
        col = 20 - (row - 8) // 2
        image[row, col - 1 : col + 2] = 255
    return image


def _bar() -> np.ndarray:
    """A '1': a vertical bar, (28, 28) uint8."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:16] = 255
    return image


DIGITS = np.stack([_ring(), _seven(), _bar()])


def test_skeleton_of_a_bar_is_one_open_stroke():
    strokes = doodles.skeleton_strokes(_bar())
    assert len(strokes) == 1
    stroke = strokes[0]
    assert stroke.shape[1] == 2 and len(stroke) >= 15
    assert np.all(stroke[:, 1] == 14)  # the bar's middle column
    assert not np.array_equal(stroke[0], stroke[-1])


def test_skeleton_of_a_ring_is_one_closed_stroke():
    strokes = doodles.skeleton_strokes(_ring())
    assert len(strokes) == 1
    np.testing.assert_array_equal(strokes[0][0], strokes[0][-1])


def test_skeleton_of_a_cross_splits_at_the_junction():
    cross = np.zeros((28, 28), dtype=np.uint8)
    cross[13:15, 4:24] = 255
    cross[4:24, 13:15] = 255
    strokes = doodles.skeleton_strokes(cross)
    assert len(strokes) == 4
    ends = [{tuple(stroke[0]), tuple(stroke[-1])} for stroke in strokes]
    shared = set.intersection(*ends)
    assert len(shared) == 1  # all four arms meet at one junction


def test_make_doodles_shapes_dtype_and_range():
    out = doodles.make_doodles(DIGITS, SEED)
    assert out.shape == (3, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() == pytest.approx(1.0)
    assert (out.reshape(3, -1) > 0.5).sum(axis=1).min() > 20  # each holds a drawn digit


def test_make_doodles_accepts_flat_images():
    np.testing.assert_array_equal(
        doodles.make_doodles(DIGITS.reshape(3, 784), SEED), doodles.make_doodles(DIGITS, SEED)
    )


def test_make_doodles_is_deterministic_from_the_seed():
    first = doodles.make_doodles(DIGITS, SEED)
    np.testing.assert_array_equal(first, doodles.make_doodles(DIGITS, SEED))
    assert not np.array_equal(first, doodles.make_doodles(DIGITS, SEED + 1))


def test_a_subset_reproduces_the_same_doodles():
    everything = doodles.make_doodles(DIGITS, SEED)
    subset = doodles.make_doodles(DIGITS[1:], SEED, indices=[1, 2])
    np.testing.assert_array_equal(subset, everything[1:])


def _ink_box_and_pen(canvas: np.ndarray) -> tuple[int, float, tuple[float, float]]:
    """Longer side of the ink's bounding box, the pen width (twice the largest distance from
    ink to background along the strokes' middle) and the ink's centre, on a 280 px canvas."""
    ink = canvas < 128
    rows, cols = np.nonzero(ink)
    longer = max(np.ptp(rows), np.ptp(cols)) + 1
    pen = 2 * float(ndimage.distance_transform_edt(ink).max())
    return longer, pen, (float(rows.mean()), float(cols.mean()))


def test_canvases_vary_in_pen_width_size_and_position():
    canvases = doodles.sample_canvases(np.repeat(_seven()[None], 12, axis=0), SEED, indices=range(12))
    assert canvases.shape == (12, 280, 280) and canvases.dtype == np.uint8
    assert set(np.unique(canvases)) >= {0, 255}  # black ink on a white canvas
    measured = [_ink_box_and_pen(canvas) for canvas in canvases]
    sizes = np.array([m[0] for m in measured])
    pens = np.array([m[1] for m in measured])
    centres = np.array([m[2] for m in measured])
    low, high = doodles.DEFAULT_STYLE.size
    assert sizes.min() >= 0.9 * low * 280 and sizes.max() <= 280
    assert sizes.max() - sizes.min() > 60  # px: people draw small and large
    assert pens.max() / pens.min() > 2  # thin and thick pens
    assert np.ptp(centres, axis=0).min() > 40  # and at different places


def test_drawing_stays_on_the_canvas():
    canvases = doodles.sample_canvases(np.repeat(_ring()[None], 8, axis=0), SEED, indices=range(8))
    border = np.concatenate([canvases[:, 0], canvases[:, -1], canvases[:, :, 0], canvases[:, :, -1]], axis=1)
    assert (border == 255).all()


def test_a_digit_without_ink_is_refused():
    with pytest.raises(ValueError, match="no ink"):
        doodles.draw_doodle(np.zeros((28, 28), dtype=np.uint8), np.random.default_rng(0))


def test_blank_canvas_message_is_the_preprocessing_one():
    # The benchmark relies on canvas_to_input refusing blank canvases rather than inventing ink.
    from doodle.canvas.preprocess import BlankCanvasError, canvas_to_input

    with pytest.raises(BlankCanvasError, match=BLANK_CANVAS_MESSAGE):
        canvas_to_input(np.full((280, 280), 255, dtype=np.uint8))


def test_font_digits_cover_every_digit_font_and_size():
    digits = fonts.font_digits(font_files=fonts.FONT_FILES[:2], sizes=(64, 200))
    assert len(digits) == 2 * 2 * 10
    assert digits.images.shape == (40, 28, 28) and digits.images.dtype == np.float32
    assert digits.images.min() >= 0.0 and digits.images.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(digits.labels), [4] * 10)
    assert set(digits.fonts) == set(fonts.FONT_FILES[:2]) and set(digits.sizes) == {64, 200}


def test_every_listed_font_ships_with_matplotlib_and_draws_digits():
    for name in fonts.FONT_FILES:
        canvas = fonts.draw_digit(8, fonts.font_dir() / name, 128)
        assert (canvas < 128).sum() > 200, name
