"""The stroke model behind the pad, without widgets: pen events, undo, clear, rendering."""

from __future__ import annotations

import numpy as np

from doodle.canvas.drawing import CANVAS_SIZE, Drawing, render_strokes


def test_pen_events_build_strokes():
    drawing = Drawing()
    assert drawing.is_empty and drawing.pen_move(5, 5) is None  # hovering draws nothing
    assert drawing.pen_down(10, 20) == [(10.0, 20.0)]
    assert drawing.pen_move(30, 40) == ((10.0, 20.0), (30.0, 40.0))
    assert drawing.pen_up() is True
    assert drawing.pen_up() is False  # a second lift ends nothing
    assert drawing.pen_move(50, 50) is None
    assert drawing.strokes == [[(10.0, 20.0), (30.0, 40.0)]]


def test_undo_and_clear():
    drawing = Drawing()
    for y in (60, 140, 220):
        drawing.pen_down(40, y)
        drawing.pen_move(240, y)
        drawing.pen_up()
    three = drawing.render()
    assert drawing.undo() is True and len(drawing.strokes) == 2
    assert drawing.render().sum() < three.sum()
    drawing.pen_down(0, 0)
    assert drawing.undo() is True and not drawing.is_pen_down  # undo while drawing drops that stroke
    drawing.clear()
    assert drawing.is_empty and drawing.render().max() == 0
    assert drawing.undo() is False


def test_render_is_white_ink_on_black_where_the_strokes_are():
    drawing = Drawing(pen_width=20)
    drawing.pen_down(140, 40)
    drawing.pen_move(140, 240)
    image = drawing.render()
    assert image.shape == (CANVAS_SIZE, CANVAS_SIZE) and image.dtype == np.uint8
    assert image[140, 140] == 255 and image[140, 135] == 255  # on the stroke, within the pen's half width
    assert image[140, 160] == 0 and image[10, 140] == 0  # beside it and past its end cap
    np.testing.assert_array_equal(image, render_strokes(drawing.strokes, CANVAS_SIZE, 20))


def test_pen_width_sets_the_ink_width():
    thin, thick = Drawing(pen_width=6), Drawing(pen_width=30)
    for drawing in (thin, thick):
        drawing.pen_down(140, 40)
        drawing.pen_move(140, 240)
    widths = [(d.render()[140] > 0).sum() for d in (thin, thick)]
    assert 5 <= widths[0] <= 8 and 28 <= widths[1] <= 32
