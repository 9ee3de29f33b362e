"""The whole-number benchmark: numbers of several digits composed from single-digit drawings.

Each number is built from single-digit canvases taken from a digit source (pen-stroke digits by
writers no training run sees, `stroke_source`, or MNIST test digits redrawn as doodles,
`doodle_source`): each digit's ink is cropped, scaled to a common
height (with a little jitter), lifted or dropped off a shared baseline, and placed right of the
previous one at a random gap in a spacing band (a fraction of the digit height: negative gaps
overlap the ink boxes). The composed canvas is read as a client's upload is, by the one number
reading (`doodle.reading.number_reading`, without strokes); with its strokes, as the pad reads it. Pairs of neighbours
whose ink touches are recorded, so numbers with touching digits are scored separately.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from doodle.canvas.doodles import draw_doodle, skeleton_drawing
from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.canvas.preprocess import BlankCanvasError, canvas_to_input
from doodle.canvas.strokes import HELD_OUT_WRITERS, STYLES, WriterFamily, draw_strokes
from doodle.constants import BINARY_INK_BYTE, CANVAS_SIZE
from doodle.model.model_io import Model
from doodle.reading.number_reading import TooManyDigitsError
from doodle.reading.number_reading import read_number as read_pad


@dataclass(frozen=True)
class StrokeDrawing:
    """A drawing as the pad records it: ``strokes``, each ``(K, 2)`` float64 (x, y) points in
    pad pixels, drawn with a round pen ``pen_width`` px wide."""

    strokes: tuple[np.ndarray, ...]
    pen_width: float

    def canvas(self, size: int | tuple[int, int] = CANVAS_SIZE) -> np.ndarray:
        """The drawing rendered as the pad renders it, turned dark on white: ``(H, W)`` uint8
        (``size`` an int for a square pad, else ``(H, W)``)."""
        return 255 - render_strokes(self.strokes, size, self.pen_width)


# A digit drawing and its label: dark ink on a white (255) canvas, ``(H, W)`` uint8, or the
# drawing's strokes (`StrokeDrawing`), so the pad's stroke path can be measured too.
DigitSource = Callable[[np.random.Generator], tuple["np.ndarray | StrokeDrawing", int]]

DIGIT_HEIGHT = 100  # px, the digits' common height before jitter
HEIGHT_JITTER = (0.85, 1.1)  # each digit's height as a factor of DIGIT_HEIGHT
BASELINE_JITTER = 0.1  # each digit moves up or down by up to this fraction of the height
MARGIN = 40  # px of paper around the number

# Gap between neighbouring ink boxes, as a fraction of the digit height (uniform in the range).
SPACING_BANDS: dict[str, tuple[float, float]] = {
    "clear": (0.15, 0.5),
    "tight": (0.0, 0.15),
    "overlapping": (-0.15, 0.0),
}
DIGIT_COUNTS = (2, 3, 4, 5, 6)


def doodle_source(images: np.ndarray, labels: np.ndarray) -> DigitSource:
    """MNIST digits ``(N, 28, 28)`` uint8 and labels ``(N,)`` -> a source that redraws a random
    one as a doodle (`doodle.canvas.doodles.draw_doodle`) on a 280x280 white canvas."""
    images = np.asarray(images).reshape(-1, 28, 28)
    labels = np.asarray(labels)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, int]:
        index = int(rng.integers(len(images)))
        return draw_doodle(images[index], rng), int(labels[index])

    return draw


def skeleton_source(images: np.ndarray, labels: np.ndarray, pen_width: float = PEN_WIDTH) -> DigitSource:
    """MNIST digits ``(N, 28, 28)`` uint8 and labels ``(N,)`` -> a source that traces a random one
    to skeleton strokes placed on the pad (`doodle.canvas.doodles.skeleton_drawing`, the dashboard
    benchmarks' mouse drawings), drawn with the pad's pen: a `StrokeDrawing`."""
    images = np.asarray(images).reshape(-1, 28, 28)
    labels = np.asarray(labels)

    def draw(rng: np.random.Generator) -> tuple[StrokeDrawing, int]:
        while True:
            index = int(rng.integers(len(images)))
            strokes = skeleton_drawing(images[index], rng)
            if strokes:
                return StrokeDrawing(tuple(strokes), float(pen_width)), int(labels[index])

    return draw


def stroke_source(
    family: WriterFamily = HELD_OUT_WRITERS,
    pen_range: tuple[float, float] = (6.0, 30.0),
    height_range: tuple[float, float] = (0.5, 0.9),
    *,
    with_strokes: bool = False,
) -> DigitSource:
    """A source of pen-stroke digits (`doodle.canvas.strokes`): a uniform random digit in one of its
    style variants, by a writer drawn from ``family`` (the benchmark's held-out writers by
    default), with a pen of ``pen_range`` px and a height of ``height_range`` of the 280 px pad,
    rendered as the drawing app renders it and turned dark on white (``with_strokes``: the
    `StrokeDrawing` itself)."""

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, int]:
        digit = int(rng.integers(10))
        names = list(STYLES[digit])
        style = names[int(rng.integers(len(names)))]
        writer = family.sample(rng)
        pen = float(rng.uniform(*pen_range))
        strokes = draw_strokes(
            digit, style, writer, rng, pen_width=pen, height_fraction=float(rng.uniform(*height_range))
        )
        drawing = StrokeDrawing(tuple(strokes), pen)
        return (drawing if with_strokes else drawing.canvas()), digit

    return draw


@dataclass(frozen=True)
class ComposedNumber:
    """A composed number: ``canvas`` ``(H, W)`` uint8 dark on white, its ``labels``, the
    ``digits`` (each digit alone, scaled as in the number, on a canvas of its own: the single-digit
    reference) and whether each
    neighbouring pair's ink touches, ``touching`` ``(len(labels) - 1,)`` bool. Composed from
    `StrokeDrawing` s, ``strokes`` holds every digit's strokes moved onto the number's canvas,
    left to right, drawn with one pen, and the canvas is that drawing."""

    canvas: np.ndarray
    labels: tuple[int, ...]
    digits: tuple[np.ndarray, ...]
    touching: np.ndarray
    strokes: StrokeDrawing | None = None


def compose_number(
    drawings: Sequence[np.ndarray | StrokeDrawing],
    labels: Sequence[int],
    rng: np.random.Generator,
    spacing: tuple[float, float],
) -> ComposedNumber:
    """Single-digit canvases (``(H, W)`` uint8, dark ink on white) or `StrokeDrawing` s -> one
    number, left to right.

    Each digit's ink is cropped and scaled to ``DIGIT_HEIGHT`` times a jitter, moved up or down
    by up to ``BASELINE_JITTER`` of the height, and placed ``spacing`` (a range, fraction of the
    height) right of the previous digit's ink box. Overlapping ink keeps the darker pixel.
    Stroke drawings have their strokes moved and scaled the same way and are drawn again with
    one pen, the digits' scaled pen widths' mean, as one person writes a number.
    """
    crops, origins, factors = [], [], []
    for drawing in drawings:
        if isinstance(drawing, StrokeDrawing):
            drawing = drawing.canvas()
        ink = drawing < BINARY_INK_BYTE
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        crop = drawing[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        height = DIGIT_HEIGHT * rng.uniform(*HEIGHT_JITTER)
        width = max(1, round(crop.shape[1] * height / crop.shape[0]))
        crops.append(
            np.asarray(Image.fromarray(crop).resize((width, round(height)), Image.Resampling.BILINEAR))
        )
        origins.append(np.array([cols[0], rows[0]], dtype=np.float64))
        factors.append(np.array([width / crop.shape[1], round(height) / crop.shape[0]]))
    lifts = [round(rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * DIGIT_HEIGHT) for _ in crops]
    lefts = [0]
    for crop in crops[:-1]:
        gap = rng.uniform(*spacing) * DIGIT_HEIGHT
        lefts.append(round(lefts[-1] + crop.shape[1] + gap))
    lefts = [left - min(lefts) for left in lefts]
    top_of = [DIGIT_HEIGHT - crop.shape[0] + lift for crop, lift in zip(crops, lifts)]
    top_shift = min(top_of)
    width = max(left + crop.shape[1] for left, crop in zip(lefts, crops)) + 2 * MARGIN
    height = max(top - top_shift + crop.shape[0] for top, crop in zip(top_of, crops)) + 2 * MARGIN
    corners = [(left + MARGIN, top - top_shift + MARGIN) for left, top in zip(lefts, top_of)]
    if all(isinstance(drawing, StrokeDrawing) for drawing in drawings):
        return _compose_strokes(drawings, labels, corners, origins, factors, (height, width))
    canvas = np.full((height, width), 255, dtype=np.uint8)
    masks = []
    for crop, (x, y) in zip(crops, corners):
        region = canvas[y : y + crop.shape[0], x : x + crop.shape[1]]
        np.minimum(region, crop, out=region)
        mask = np.zeros(canvas.shape, dtype=bool)
        mask[y : y + crop.shape[0], x : x + crop.shape[1]] = crop < BINARY_INK_BYTE
        masks.append(mask)
    touching = np.array([_touch(a, b) for a, b in zip(masks[:-1], masks[1:])], dtype=bool)
    alone = tuple(np.pad(crop, MARGIN, constant_values=255) for crop in crops)
    return ComposedNumber(canvas, tuple(int(label) for label in labels), alone, touching)


def _compose_strokes(
    drawings: Sequence[StrokeDrawing],
    labels: Sequence[int],
    corners: Sequence[tuple[int, int]],
    origins: Sequence[np.ndarray],
    factors: Sequence[np.ndarray],
    shape: tuple[int, int],
) -> ComposedNumber:
    """`compose_number` for stroke drawings: each digit's strokes moved from its ink box's
    ``origin`` on its own pad to ``corner`` on the number's canvas, scaled by ``factor`` (x, y),
    and every digit drawn again with one pen."""
    pen = float(np.mean([d.pen_width * f.mean() for d, f in zip(drawings, factors)]))
    moved = [
        tuple((stroke - origin) * factor + np.array(corner, dtype=np.float64) for stroke in drawing.strokes)
        for drawing, origin, factor, corner in zip(drawings, origins, factors, corners)
    ]
    number = StrokeDrawing(tuple(stroke for strokes in moved for stroke in strokes), pen)
    masks = [StrokeDrawing(strokes, pen).canvas(shape) < BINARY_INK_BYTE for strokes in moved]
    touching = np.array([_touch(a, b) for a, b in zip(masks[:-1], masks[1:])], dtype=bool)
    alone = []
    for mask, strokes in zip(masks, moved):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        canvas = StrokeDrawing(strokes, pen).canvas(shape)
        alone.append(
            np.pad(canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], MARGIN, constant_values=255)
        )
    return ComposedNumber(
        number.canvas(shape), tuple(int(label) for label in labels), tuple(alone), touching, number
    )


def _touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ``(H, W)`` bool ink masks touch (8-neighbours) or overlap."""
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return bool((grown & b).any())


def read_number(canvas: np.ndarray, model: Model) -> list[int]:
    """A number's canvas -> the digits read, left to right, as ``/predict/number`` reads an
    upload (`doodle.reading.number_reading.read_number` without strokes); empty when the drawing gives no
    box, a box too faint to read, or more digits than the reading takes."""
    return read_drawing(model, canvas)


def read_drawing(
    model: Model,
    drawing: np.ndarray | StrokeDrawing,
    shape: tuple[int, int] | None = None,
    *,
    with_strokes: bool = False,
) -> list[int]:
    """A drawing (a canvas, or a `StrokeDrawing` rendered on a pad of ``shape`` ``(H, W)``) -> the
    digits read, left to right, by `doodle.reading.number_reading.read_number`: with its strokes as the
    drawing app reads them, else from its ink alone as ``/predict/number`` reads an upload; empty
    when nothing is read."""
    if isinstance(drawing, StrokeDrawing):
        canvas = drawing.canvas(shape if shape is not None else CANVAS_SIZE)
        strokes = (
            [[(float(x), float(y)) for x, y in stroke] for stroke in drawing.strokes]
            if with_strokes
            else None
        )
        pen_width = drawing.pen_width
    else:
        canvas, strokes, pen_width = drawing, None, PEN_WIDTH
    try:
        reading = read_pad(model, canvas, strokes, pen_width=pen_width)
    except (BlankCanvasError, TooManyDigitsError):
        return []
    return [d.digit for d in reading.digits]


# The two ways a drawing is read: the drawing app's, with the pen's strokes, and an upload's.
READ_PATHS = {"strokes": True, "upload": False}


def single_digit_benchmark(
    source: DigitSource, model: Model, seed: int, *, count: int = 300
) -> dict[str, dict]:
    """Single digits drawn on the pad, read as the pad reads a number, through each of
    `READ_PATHS`: how many come back as several digits (share, and by digit) and how many as
    the right single digit. ``source`` gives `StrokeDrawing` s on the 280 px pad; drawing ``i``
    comes from a generator seeded with ``(seed, i)``."""
    drawings = [source(np.random.default_rng([int(seed), i])) for i in range(count)]
    result: dict[str, dict] = {}
    for path, with_strokes in READ_PATHS.items():
        several = np.zeros(10, dtype=int)
        drawn = np.zeros(10, dtype=int)
        right = 0
        for drawing, label in drawings:
            read = read_drawing(model, drawing, (280, 280), with_strokes=with_strokes)
            drawn[label] += 1
            several[label] += len(read) > 1
            right += read == [label]
        result[path] = {
            "digits": int(count),
            "several_share": _ratio(int(several.sum()), count),
            "several_by_digit": {str(d): [int(several[d]), int(drawn[d])] for d in range(10)},
            "accuracy": _ratio(right, count),
        }
    return result


@dataclass
class _Tally:
    numbers: int = 0
    numbers_right: int = 0
    count_right: int = 0
    digits: int = 0
    digits_right: int = 0
    single_right: int = 0

    def add(self, truth: Sequence[int], read: Sequence[int], single: Sequence[int]) -> None:
        self.numbers += 1
        self.numbers_right += list(read) == list(truth)
        self.count_right += len(read) == len(truth)
        self.digits += len(truth)
        # A digit is read right when the number has the right count and that position matches.
        if len(read) == len(truth):
            self.digits_right += sum(r == t for r, t in zip(read, truth))
        self.single_right += sum(s == t for s, t in zip(single, truth))

    def summary(self) -> dict[str, float | int]:
        return {
            "numbers": self.numbers,
            "number_accuracy": _ratio(self.numbers_right, self.numbers),
            "count_accuracy": _ratio(self.count_right, self.numbers),
            "digits": self.digits,
            "digit_accuracy": _ratio(self.digits_right, self.digits),
            "single_digit_accuracy": _ratio(self.single_right, self.digits),
        }


def _ratio(part: int, whole: int) -> float | None:
    """``part / whole`` rounded; None (JSON null, not NaN) when there is nothing to count."""
    return round(part / whole, 6) if whole else None


def number_benchmark(
    source: DigitSource,
    model: Model,
    seed: int,
    *,
    numbers_per_cell: int = 50,
    digit_counts: Sequence[int] = DIGIT_COUNTS,
    bands: dict[str, tuple[float, float]] | None = None,
    read: Callable[[ComposedNumber], Sequence[int]] | None = None,
) -> dict:
    """Whole-number and per-digit accuracy by spacing band and digit count.

    For each band and count, ``numbers_per_cell`` numbers are composed (each seeded by
    ``(seed, band, count, i)``) and read. Numbers where any neighbours touch are tallied apart
    (``touching``), the rest by band (``bands[band]["by_count"][count]`` and the band's total).
    ``single_digit_accuracy`` is the same digits' drawings read one by one as single digits, the
    reference the per-digit accuracy is compared with. ``model`` needs only ``predict_proba`` and
    ``version``. ``read`` reads a composed number (default: its canvas alone, as
    ``/predict/number`` reads an upload; see `read_drawing` for the pad's path with strokes).
    """
    bands = SPACING_BANDS if bands is None else bands
    if read is None:
        read = lambda number: read_number(number.canvas, model)  # noqa: E731
    by_band: dict[str, dict[int, _Tally]] = {name: {n: _Tally() for n in digit_counts} for name in bands}
    touching: dict[str, _Tally] = {name: _Tally() for name in bands}
    for band_index, (name, spacing) in enumerate(bands.items()):
        for count in digit_counts:
            for i in range(numbers_per_cell):
                rng = np.random.default_rng([int(seed), band_index, int(count), i])
                drawings, labels = zip(*(source(rng) for _ in range(count)))
                number = compose_number(drawings, labels, rng, spacing)
                digits = read(number)
                single = model.predict_proba(np.stack([canvas_to_input(d) for d in number.digits])).argmax(
                    axis=1
                )
                tally = touching[name] if number.touching.any() else by_band[name][count]
                tally.add(number.labels, digits, [int(s) for s in single])
    result: dict = {"numbers_per_cell": int(numbers_per_cell), "bands": {}, "touching": {}}
    for name in bands:
        total = _Tally()
        for tally in by_band[name].values():
            for key in vars(total):
                setattr(total, key, getattr(total, key) + getattr(tally, key))
        result["bands"][name] = {
            "spacing": list(bands[name]),
            **total.summary(),
            "by_count": {str(n): tally.summary() for n, tally in by_band[name].items()},
        }
        result["touching"][name] = touching[name].summary()
    return result


def table_rows(result: dict) -> list[dict]:
    """`number_benchmark`'s result as table rows, one per cell: ``gaps`` (the band, or the band's numbers
    whose digits touch) and ``length`` (digits per number, 2-6, or "all"), then the cell's figures, where
    ``numbers`` and ``digits`` count the numbers and the digit drawings in it.

    ``length`` is named apart from the ``digits`` count on purpose: a cell of sixty 4-digit numbers has
    ``length`` 4 and ``digits`` 240, and a table indexed by the count would label it 240."""
    rows = []
    for band_name, band in result["bands"].items():
        for length, cell in [*band["by_count"].items(), ("all", band)]:
            figures = {key: value for key, value in cell.items() if key not in ("spacing", "by_count")}
            rows.append({"gaps": band_name, "length": length, **figures})
        rows.append({"gaps": f"{band_name}, touching", "length": "all", **result["touching"][band_name]})
    return rows


def whole_number_accuracy(result: dict) -> dict[str, float | int]:
    """The share of every composed number read whole (every band, touching ones included):
    ``{"numbers", "accuracy"}``, the one figure of the benchmark a run is compared by."""
    cells = [*result["bands"].values(), *result["touching"].values()]
    count = sum(int(cell["numbers"]) for cell in cells)
    right = sum(
        round(float(cell["number_accuracy"]) * int(cell["numbers"])) for cell in cells if cell["numbers"]
    )
    return {"numbers": count, "accuracy": right / count if count else float("nan")}
