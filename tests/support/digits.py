"""Digits as a person draws them on the 280x280 pad with a mouse: pad pixels, one list per stroke."""

from __future__ import annotations

import math

Stroke = list[tuple[float, float]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> Stroke:
    """A closed loop starting at the top, drawn anticlockwise as most people draw a 0."""
    angles = [2 * math.pi * i / n for i in range(n + 1)]
    return [(cx - rx * math.sin(a), cy - ry * math.cos(a)) for a in angles]


HAND_DRAWN_DIGITS: dict[int, list[Stroke]] = {
    0: [_ellipse(140, 140, 62, 95)],
    1: [[(150, 40), (146, 140), (142, 240)]],
    2: [[(82, 90), (100, 55), (140, 45), (180, 60), (195, 95), (180, 135), (80, 235), (210, 235)]],
    3: [
        [
            (80, 60),
            (130, 45),
            (180, 60),
            (190, 95),
            (165, 125),
            (125, 135),
            (175, 145),
            (195, 185),
            (180, 225),
            (130, 240),
            (80, 225),
        ]
    ],
    4: [[(85, 40), (70, 165), (210, 165)], [(175, 60), (172, 240)]],
    5: [
        [(190, 45), (95, 45)],
        [(95, 45), (85, 130), (140, 115), (185, 140), (195, 190), (170, 230), (120, 240), (80, 220)],
    ],
    6: [
        [
            (180, 50),
            (130, 70),
            (95, 120),
            (85, 180),
            (105, 230),
            (150, 240),
            (185, 210),
            (180, 165),
            (140, 145),
            (100, 165),
            (90, 190),
        ]
    ],
    7: [[(70, 50), (210, 50), (160, 130), (120, 240)]],
    8: [
        [
            (140, 135),
            (180, 110),
            (185, 70),
            (150, 45),
            (110, 50),
            (95, 80),
            (110, 115),
            (140, 135),
            (175, 160),
            (190, 200),
            (170, 235),
            (130, 240),
            (95, 215),
            (95, 175),
            (140, 135),
        ]
    ],
    9: [
        [
            (185, 95),
            (160, 55),
            (120, 50),
            (90, 80),
            (95, 115),
            (130, 130),
            (175, 115),
            (185, 95),
            (180, 160),
            (170, 240),
        ]
    ],
}


def nine() -> list[Stroke]:
    """A 9 drawn in one stroke: a loop from its right side, anticlockwise, then a long tail."""
    loop = [
        (140 + 50 * math.cos(t), 95 - 45 * math.sin(t)) for t in (2 * math.pi * i / 32 for i in range(33))
    ]
    tail = [(190 - 4 * i - 0.15 * i * i, 95 + 15 * i) for i in range(1, 11)]
    return [loop + tail]


# A number on the 280 px pad: each hand-drawn digit narrowed and shortened about the pad's centre,
# then shifted along x, one digit every NUMBER_PITCH px (its ink about 60 px wide: gaps of a few px).
NUMBER_SCALE = (0.3, 0.5)
NUMBER_PITCH = 64


def number_strokes(
    digits: str, pitch: float = NUMBER_PITCH, scale: tuple[float, float] = NUMBER_SCALE
) -> list[Stroke]:
    """The strokes of a written number, ``"2026"``, centred on the pad, one digit after another."""
    sx, sy = scale
    first = 140 - pitch * (len(digits) - 1) / 2
    return [
        [(first + index * pitch + (x - 140) * sx, 140 + (y - 140) * sy) for x, y in stroke]
        for index, digit in enumerate(digits)
        for stroke in HAND_DRAWN_DIGITS[int(digit)]
    ]


def draw_on(app, strokes: list[Stroke], *, touch: bool = False) -> None:
    """Draw `strokes` on a `doodle.app.dashboard.DoodleApp` through the handlers ipycanvas calls for
    the browser's mouse events (or, with `touch`, a finger's)."""
    for stroke in strokes:
        if touch:
            app.handle_touch_start([stroke[0]])
            for point in stroke[1:]:
                app.handle_touch_move([point])
            app.handle_touch_end([])
        else:
            app.handle_mouse_down(*stroke[0])
            for point in stroke[1:]:
                app.handle_mouse_move(*point)
            app.handle_mouse_up(*stroke[-1])
