"""Segmentation of a drawn number into digit boxes, on synthetic drawings."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.canvas import segment as seg
from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import BlankCanvasError, canvas_to_input

# Digits as polylines (and ellipses) on a unit square, one list of strokes each.
ONE = [[(0.5, 0.05), (0.5, 0.95)]]
ONE_RIGHT = [[(0.85, 0.05), (0.85, 0.95)]]
SEVEN = [[(0.1, 0.1), (0.9, 0.1), (0.4, 0.95)]]
TWO = [[(0.1, 0.25), (0.5, 0.05), (0.9, 0.25), (0.1, 0.95), (0.9, 0.95)]]
SIX = [[(0.8, 0.05), (0.2, 0.6), (0.5, 0.95), (0.8, 0.7), (0.2, 0.6)]]
FOUR_TWO_STROKES = [[(0.2, 0.05), (0.1, 0.6), (0.9, 0.6)], [(0.7, 0.05), (0.7, 0.95)]]
FIVE_WITH_FLAG = [
    [(0.25, 0.1), (0.2, 0.5), (0.7, 0.45), (0.8, 0.75), (0.5, 0.95), (0.15, 0.85)],
    [(0.3, -0.02), (0.9, -0.02)],
]
ZERO = "ellipse"


def draw_number(
    digits, *, height=120, width_frac=0.6, gap=0.4, pen=12, size=None, lift=None, canvas_colour=255, ink=0
):
    """Digits side by side, ``height`` px tall, ``gap`` (fraction of height) apart, dark on white.

    ``lift``: per-digit vertical offsets in px. Returns the canvas and the drawn strokes as
    lists of (x, y) points (ellipses as polylines)."""
    digit_w = width_frac * height
    total_w = len(digits) * digit_w + (len(digits) - 1) * gap * height + 80
    size = size or (int(total_w), height + 80)
    all_strokes = []
    for i, digit in enumerate(digits):
        x0 = 40 + i * (digit_w + gap * height)
        y0 = 40 + (lift[i] if lift else 0)
        if digit == ZERO:
            t = np.linspace(0, 2 * np.pi, 60)
            strokes = [list(zip(0.5 + 0.45 * np.cos(t), 0.5 + 0.48 * np.sin(t)))]
        else:
            strokes = digit
        all_strokes.extend([(x0 + x * digit_w, y0 + y * height) for x, y in stroke] for stroke in strokes)
    inked = render_strokes(all_strokes, (size[1], size[0]), pen) > 0  # the pad's round pen
    return np.where(inked, ink, canvas_colour).astype(np.uint8), all_strokes


def centres(result):
    return [b.x + b.w / 2 for b in result.boxes]


def test_separate_digits_come_out_left_to_right():
    canvas, _ = draw_number([TWO, ZERO, TWO, SIX])
    result = seg.segment(canvas)
    assert len(result) == 4
    assert result.reason is None
    assert centres(result) == sorted(centres(result))
    # Each box holds the ink of one digit: about one digit's width apart.
    spacing = np.diff(centres(result))
    assert np.all(np.abs(spacing - 1.0 * 120) < 15)
    assert result.inputs().shape == (4, 28, 28)


def test_boxes_are_canvas_pixels_around_the_ink():
    canvas, _ = draw_number([ONE, SEVEN], height=100, gap=0.5)
    result = seg.segment(canvas)
    ink = canvas < 128
    for box in result.boxes:
        inside = ink[box.y : box.y + box.h, box.x : box.x + box.w]
        assert inside.any(axis=0)[[0, -1]].all() and inside.any(axis=1)[[0, -1]].all()
    assert sum(b.mask.sum() for b in result.boxes) == pytest.approx(
        (seg.ink_map(canvas) >= seg.STROKE_LEVEL).sum(), rel=0.01
    )


@pytest.mark.parametrize(
    ("digit", "pieces"),
    [(FOUR_TWO_STROKES, 3), (FIVE_WITH_FLAG, 4)],
    ids=["4 in two strokes", "5 with a flag"],
)
def test_pieces_of_one_digit_are_joined(digit, pieces):
    canvas, strokes = draw_number([ONE, digit, ONE], pen=10)
    from scipy import ndimage

    _, components = ndimage.label(canvas < 128, structure=np.ones((3, 3)))
    assert components == pieces  # the 5's flag is ink of its own; the 4's strokes cross
    assert len(strokes) == 4
    assert len(seg.segment(canvas)) == 3
    assert len(seg.segment(canvas, strokes, pen_width=10)) == 3


def test_broken_zero_is_one_digit():
    canvas, _ = draw_number([ONE, ZERO, ONE])
    # Break the 0 into two arcs that meet at different columns at the top and the bottom, as
    # a 0 drawn in two strokes that do not quite close.
    broken = canvas.copy()
    broken[25:58, 176:186] = 255
    broken[142:175, 206:216] = 255
    from scipy import ndimage

    _, components = ndimage.label(broken < 128, structure=np.ones((3, 3)))
    assert components == 4
    result = seg.segment(broken)
    assert len(result) == 3


def test_a_dot_joins_the_nearest_digit():
    canvas, _ = draw_number([SEVEN, ONE], gap=0.6)
    dotted = canvas.copy()
    dotted[60:70, 150:160] = 0  # a small mark beside the 7
    assert len(seg.segment(dotted)) == 2


def test_touching_digits_are_cut_at_the_column_of_least_ink():
    canvas, _ = draw_number([ZERO, ZERO], gap=-0.02, width_frac=0.75)
    from scipy import ndimage

    _, components = ndimage.label(canvas < 128, structure=np.ones((3, 3)))
    assert components == 1
    result = seg.segment(canvas)
    assert len(result) == 2
    assert result.reason is None
    assert abs(result.boxes[0].w - result.boxes[1].w) < 20


def test_strokes_keep_touching_digits_apart():
    canvas, strokes = draw_number([ONE_RIGHT, SEVEN], gap=-0.02, width_frac=0.5, pen=14)
    from scipy import ndimage

    _, components = ndimage.label(canvas < 128, structure=np.ones((3, 3)))
    assert components == 1
    assert len(seg.segment(canvas)) == 1  # one narrow blob for ink alone
    assert len(seg.segment(canvas, strokes, pen_width=14)) == 2


def test_a_wide_blob_without_a_thin_column_is_reported():
    canvas = np.full((200, 500), 255, dtype=np.uint8)
    canvas[50:150, 50:450] = 0  # a solid bar 4x wider than tall
    result = seg.segment(canvas)
    assert len(result) == 1
    assert result.reason == seg.NO_CUT_REASON.format(index=0, ratio=4.0)


@pytest.mark.parametrize("shape", [(3, 60), (2, 9), (40, 3), (1, 400)])
def test_thin_lines_and_tiny_canvases_get_an_answer(shape):
    canvas = np.full((shape[0] + 20, shape[1] + 20), 255, dtype=np.uint8)
    canvas[10 : 10 + shape[0], 10 : 10 + shape[1]] = 0
    result = seg.segment(canvas)
    assert len(result) >= 1
    assert result.inputs().shape == (len(result), 28, 28)


def test_too_many_marks_give_up():
    canvas = np.full((400, 400), 255, dtype=np.uint8)
    for dy in range(5):
        for dx in range(5):
            canvas[5 + dy : 395 : 10, 5 + dx : 395 : 10] = 0
    result = seg.segment(canvas)
    assert len(result) == 0
    assert result.reason.endswith("too many for a written number")


def test_blank_canvas_is_an_error():
    with pytest.raises(BlankCanvasError):
        seg.segment(np.full((100, 300), 255, dtype=np.uint8))


@pytest.mark.parametrize("polarity", ["dark on light", "light on dark"])
def test_one_digit_alone_meets_the_model_as_canvas_to_input_makes_it(polarity):
    ink, paper = (0, 255) if polarity == "dark on light" else (255, 0)
    canvas, _ = draw_number([SIX], ink=ink, canvas_colour=paper)
    result = seg.segment(canvas)
    assert len(result) == 1
    np.testing.assert_allclose(result.inputs()[0], canvas_to_input(canvas), atol=0.02)


def test_each_digit_input_holds_only_its_own_ink():
    canvas, _ = draw_number([SEVEN, ONE], gap=0.3)
    result = seg.segment(canvas)
    seven_alone, _ = draw_number([SEVEN], gap=0.3)
    one_canvas = canvas.copy()
    one_canvas[:, : result.boxes[1].x - 5] = 255
    inputs = result.inputs()
    np.testing.assert_allclose(inputs[0], canvas_to_input(seven_alone), atol=0.02)
    np.testing.assert_allclose(inputs[1], canvas_to_input(one_canvas), atol=0.02)


def test_rgba_and_baselines():
    canvas, _ = draw_number([TWO, SEVEN, ONE], lift=[0, 30, -20])
    rgba = np.dstack([canvas, canvas, canvas, np.full_like(canvas, 255)])
    result = seg.segment(rgba)
    assert len(result) == 3
    assert [b.y for b in result.boxes][1] > [b.y for b in result.boxes][0] + 20
