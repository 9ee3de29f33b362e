"""A drawing on the pad as strokes, without widgets: pen down, move, up, undo, clear, and the
rendering the model reads.

The dashboard feeds it the pointer events ipycanvas reports and paints what it says changed;
tests drive it directly. Points are pad pixels, ``(x, y)`` floats in ``[0, size)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from doodle.constants import CANVAS_SIZE

PEN_WIDTH = 20  # px on the 280 px pad: about 2 px once the digit is scaled to MNIST's 20 px box

Point = tuple[float, float]
Stroke = list[Point]


def render_strokes(
    strokes: Sequence[Sequence[Point]] | Sequence[np.ndarray],
    size: int | tuple[int, int] = CANVAS_SIZE,
    pen_width: float = PEN_WIDTH,
    *,
    numbered: bool = False,
) -> np.ndarray:
    """Stroke points in pad pixels -> the pad's round pen: ``(H, W)`` uint8, white ink on black.

    The one stroke renderer: the pad, generated pen strokes, doodles, segmentation and the tests
    all draw with it. A line ``pen_width`` wide (rounded to whole pixels) through consecutive
    points and a dot of diameter ``pen_width`` at every point (round caps and joins, as the
    browser's ``line_cap``/``line_join`` "round" draw them, and no seams between short wide
    segments). ``size``: the side of a square pad, or ``(H, W)``. ``numbered``: ``(H, W)`` int32
    instead, each pixel the number (from 1, empty strokes skipped) of the last stroke drawn over
    it, 0 where no stroke is.
    """
    height, width = (size, size) if isinstance(size, int) else size
    image = Image.new("I" if numbered else "L", (width, height), 0)
    pen = ImageDraw.Draw(image)
    radius = pen_width / 2
    line_width = max(1, int(round(pen_width)))
    drawn = 0
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if not points:
            continue
        drawn += 1
        ink = drawn if numbered else 255
        if len(points) > 1:
            pen.line(points, fill=ink, width=line_width)
        for x, y in points:
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    return np.asarray(image, dtype=np.int32 if numbered else np.uint8)


class Drawing:
    """The strokes drawn so far and whether the pen is down.

    Each method says what changed, so a view can paint only that: `pen_down` starts a stroke,
    `pen_move` returns the segment to add (or ``None`` with the pen up), `pen_up` says whether a
    stroke ended (time to read the digit).
    """

    def __init__(self, size: int = CANVAS_SIZE, pen_width: int = PEN_WIDTH) -> None:
        self.size = size
        self.pen_width = pen_width
        self.strokes: list[Stroke] = []
        self.is_pen_down = False

    @property
    def is_empty(self) -> bool:
        return not self.strokes

    def pen_down(self, x: float, y: float) -> Stroke:
        """Start a stroke at ``(x, y)``; returns it (one point: a dot until the pen moves)."""
        self.is_pen_down = True
        self.strokes.append([(float(x), float(y))])
        return self.strokes[-1]

    def pen_move(self, x: float, y: float) -> tuple[Point, Point] | None:
        """Extend the current stroke to ``(x, y)``: the new segment, or ``None`` when the pen is up
        (hovering draws nothing)."""
        if not self.is_pen_down:
            return None
        stroke = self.strokes[-1]
        start = stroke[-1]
        stroke.append((float(x), float(y)))
        return start, stroke[-1]

    def pen_up(self) -> bool:
        """Lift the pen; ``True`` when a stroke was being drawn (it is now finished)."""
        was_down = self.is_pen_down
        self.is_pen_down = False
        return was_down

    def undo(self) -> bool:
        """Remove the last stroke; ``False`` when there was none."""
        self.is_pen_down = False
        if not self.strokes:
            return False
        self.strokes.pop()
        return True

    def clear(self) -> None:
        self.strokes = []
        self.is_pen_down = False

    def render(self) -> np.ndarray:
        """The pad as the model gets it: ``(size, size)`` uint8, white ink on black."""
        return render_strokes(self.strokes, self.size, self.pen_width)
