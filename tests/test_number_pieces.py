"""A single digit drawn in several strokes is read by the pad as one digit, not as a number, while
digits side by side or touching are still read as numbers (`doodle.reading.number_reading`, with strokes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from doodle.canvas import segment as seg
from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.reading.number_reading import read_number
from support.digits import number_strokes


def _loop(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> list[tuple[float, float]]:
    return [
        (cx + rx * math.cos(2 * math.pi * i / n), cy - ry * math.sin(2 * math.pi * i / n))
        for i in range(n + 1)
    ]


FIVE_BODY = [(95, 80), (85, 140), (130, 125), (165, 150), (170, 195), (150, 232), (110, 242), (80, 225)]
PIECES = {
    # An "L" whose bar ends on the stem (meeting it, not crossing), then the stem.
    "4 as an L and a stem": (4, [[(90, 40), (75, 160), (150, 160)], [(150, 40), (150, 240)]]),
    # The flag drawn apart, above the body and clear of it.
    "5 with its flag apart": (5, [FIVE_BODY, [(120, 75), (225, 25)]]),
    # A loop, then a stem down its right side, mostly right of the loop.
    "9 as a loop and a stem": (9, [_loop(125, 95, 50, 48), [(192, 90), (195, 160), (190, 240)]]),
}


def _components(image: np.ndarray) -> int:
    return int(ndimage.label(image > 128, structure=np.ones((3, 3), dtype=bool))[1])


@pytest.mark.parametrize("name", list(PIECES))
def test_a_digit_in_several_strokes_is_one_digit(trained_model, name):
    digit, strokes = PIECES[name]
    image = render_strokes(strokes)
    reading = read_number(trained_model, image, strokes, pen_width=PEN_WIDTH)
    assert reading.number == str(digit), name


def test_an_l_and_a_stem_are_two_pieces_to_the_segmenter():
    """The 4's strokes are cut apart by the geometric rules alone: the join is the reading's."""
    _, strokes = PIECES["4 as an L and a stem"]
    assert len(seg.segment(render_strokes(strokes), strokes, pen_width=PEN_WIDTH)) == 2


@pytest.mark.parametrize(
    ("digits", "pitch", "touching"),
    [("47", 64, False), ("20", 64, False), ("17", 40, True), ("20", 46, True)],
)
def test_digits_side_by_side_or_touching_stay_a_number(trained_model, digits, pitch, touching):
    strokes = number_strokes(digits, pitch=pitch)
    image = render_strokes(strokes)
    assert (_components(image) == 1) == touching
    assert read_number(trained_model, image, strokes, pen_width=PEN_WIDTH).number == digits


def test_close_and_joined_boxes():
    """Boxes that overlap or touch and are together one digit wide are candidates; a digit-wide
    gap is not; a join holds both boxes' ink in one box around them."""
    _, strokes = PIECES["4 as an L and a stem"]
    found = seg.segment(render_strokes(strokes), strokes, pen_width=PEN_WIDTH)
    assert found.close(0)
    union = found.joined(0)
    assert len(union) == 1
    first, second = found.boxes
    box = union.boxes[0]
    assert (box.x, box.y) == (min(first.x, second.x), min(first.y, second.y))
    assert box.x + box.w == max(first.x + first.w, second.x + second.w)
    assert box.mask.sum() == first.mask.sum() + second.mask.sum() - _shared(first, second)
    apart = number_strokes("47")
    assert not seg.segment(render_strokes(apart), apart, pen_width=PEN_WIDTH).close(0)


def _shared(a: seg.DigitBox, b: seg.DigitBox) -> int:
    """Pixels both boxes' masks hold."""
    canvas = np.zeros((280, 280, 2), dtype=bool)
    canvas[a.y : a.y + a.h, a.x : a.x + a.w, 0] = a.mask
    canvas[b.y : b.y + b.h, b.x : b.x + b.w, 1] = b.mask
    return int((canvas[..., 0] & canvas[..., 1]).sum())


def _inside(box: seg.DigitBox, around: seg.DigitBox) -> bool:
    return (
        around.x <= box.x
        and box.x + box.w <= around.x + around.w
        and around.y <= box.y
        and box.y + box.h <= around.y + around.h
    )


@pytest.mark.parametrize("seed", range(6))
def test_strokes_only_part_what_the_ink_alone_groups(seed):
    """With strokes, every box lies inside a box the ink alone gives: strokes part digits whose
    ink touches but never join ink the components keep apart."""
    from doodle.study import numbers

    rng = np.random.default_rng(seed)
    source = numbers.stroke_source(with_strokes=True)
    drawings, labels = zip(*(source(rng) for _ in range(5)))
    number = numbers.compose_number(drawings, labels, rng, numbers.SPACING_BANDS["tight"])
    drawn = number.strokes
    with_strokes = seg.segment(number.canvas, drawn.strokes, pen_width=drawn.pen_width)
    ink_alone = seg.segment(number.canvas)
    assert len(with_strokes) >= len(ink_alone)
    for box in with_strokes.boxes:
        assert any(_inside(box, around) for around in ink_alone.boxes)
