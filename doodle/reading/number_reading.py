"""A drawing of several digits -> the number read, digit by digit, without widgets: the one
number reading of the drawing pad's number mode, ``/predict/number`` and the number benchmarks.

The drawing goes through `doodle.canvas.segment.segment` (with the pen's strokes when they are known, so
digits drawn touching in separate strokes stay apart), each digit's own ink through
`canvas_to_input` and the model. Boxes that may be one digit drawn in several strokes (their ink
touches or they overlap in x, and together they are no wider than one digit) become one when the
model reads their union more surely than it reads the two apart. The dashboard switches to it on
its own when a drawing holds more than one digit; a single digit keeps the single-digit path.

With the strokes known and a path model served beside the pixel model, each digit is read from both
views, as a single digit is: every stroke goes to the digit whose ink it laid down
(`strokes_of_digits`) and the path model's reading of a digit's strokes is pooled with the pixel
model's (`doodle.model.path_io.pool`). An upload has no strokes: its digits are read from the pixels alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from doodle.canvas.drawing import PEN_WIDTH
from doodle.canvas.preprocess import BlankCanvasError, blank_inputs, canvas_to_input
from doodle.canvas.segment import Point, Segmentation, segment
from doodle.constants import IMAGE_SIDE, MAX_NUMBER_DIGITS
from doodle.model.model_io import Model
from doodle.model.path_io import PATH, PIXELS, pool

TOO_MANY_DIGITS_MESSAGE = "{count} digits found: the pad reads at most {limit}"
FAINT_DIGIT_MESSAGE = "digit {index} (from the left) is too faint to read"


@dataclass(frozen=True)
class DigitReading:
    """One digit of a number: where it is on the pad and what the model said.

    ``box`` is ``(x, y, w, h)`` in pad pixels (the digit's ink), ``probabilities`` ``(10,)``
    float32 summing to 1, ``model_input`` ``(28, 28)`` float32 in [0, 1] (what the model saw,
    what a correction stores), ``canvas`` ``(h', w')`` uint8 the digit alone on the pad's
    background (its box with a margin), ``strokes`` the pen's strokes that drew it, each ``(K, 2)``
    float64 in pad pixels, in drawing order (None when the strokes are not known or none is its),
    ``views`` the views its answer pooled.
    """

    digit: int
    confidence: float
    probabilities: np.ndarray
    box: tuple[int, int, int, int]
    model_input: np.ndarray
    canvas: np.ndarray
    strokes: tuple[np.ndarray, ...] | None = None
    views: tuple[str, ...] = (PIXELS,)


@dataclass(frozen=True)
class NumberReading:
    """The digits of a drawing, left to right; ``reason`` says what the segmentation could not
    do (``None`` when every box looked like one digit); ``model_version`` the model that read them."""

    digits: tuple[DigitReading, ...]
    reason: str | None = None
    model_version: str | None = None

    def __len__(self) -> int:
        return len(self.digits)

    @property
    def number(self) -> str:
        """The digits read as one string, ``"2026"``."""
        return "".join(str(d.digit) for d in self.digits)

    @property
    def lowest_confidence(self) -> float:
        return min((d.confidence for d in self.digits), default=0.0)

    @property
    def views(self) -> tuple[str, ...]:
        """The views read: ``("pixels", "path")`` when any digit's answer pooled the path."""
        return (PIXELS, PATH) if any(PATH in d.views for d in self.digits) else (PIXELS,)


class TooManyDigitsError(ValueError):
    """More digits on the pad than the reading's limit (`MAX_NUMBER_DIGITS` by default)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(TOO_MANY_DIGITS_MESSAGE.format(count=count, limit=limit))
        self.count = count
        self.limit = limit


class FaintDigitError(BlankCanvasError):
    """A digit's box holds too little ink to read; ``index`` counts from 0 at the left."""

    def __init__(self, index: int) -> None:
        super().__init__(FAINT_DIGIT_MESSAGE.format(index=index + 1))
        self.index = index


@dataclass(frozen=True)
class NumberPieces:
    """A drawing cut into digits, before the model's answer: ``found`` the segmentation after
    joining, ``canvases`` each digit alone (float32 in [0, 1]), ``inputs`` ``(K, 28, 28)``
    float32 what the model reads."""

    found: Segmentation
    canvases: tuple[np.ndarray, ...]
    inputs: np.ndarray


def cut_number(
    model: Model,
    image: np.ndarray,
    strokes: Sequence[Sequence[Point]] | None = None,
    *,
    pen_width: float = PEN_WIDTH,
    max_digits: int = MAX_NUMBER_DIGITS,
) -> NumberPieces:
    """A drawing -> its digits' model inputs, left to right, pieces of one digit joined.

    ``image``: ``(H, W)`` uint8 (white ink on black, or any polarity `to_grey` accepts);
    ``strokes``: the pen's strokes in the image's pixels, drawn ``pen_width`` wide (``None``: ink
    components only, as for an upload). ``model`` needs only ``predict_proba`` (it judges the
    joins). Raises `BlankCanvasError` for a blank drawing, `FaintDigitError` for a digit too
    faint to read, `TooManyDigitsError` past ``max_digits``. A drawing with no box (too many
    separate marks) gives no pieces and the segmentation's ``reason``.
    """
    found = segment(image, strokes, pen_width=pen_width)
    if len(found) > max_digits:
        raise TooManyDigitsError(len(found), max_digits)
    if not found.boxes:
        return NumberPieces(found, (), np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32))
    found = _join_pieces(model, found)
    canvases = tuple(found.digit_canvas(index) for index in range(len(found)))
    inputs = []
    for index, canvas in enumerate(canvases):
        try:
            inputs.append(canvas_to_input(canvas))
        except BlankCanvasError:
            raise FaintDigitError(index) from None
    stacked = np.stack(inputs)
    faint = np.flatnonzero(blank_inputs(stacked))
    if faint.size:
        raise FaintDigitError(int(faint[0]))
    return NumberPieces(found, canvases, stacked)


def read_number(
    model: Model,
    image: np.ndarray,
    strokes: Sequence[Sequence[Point]] | None = None,
    *,
    pen_width: float = PEN_WIDTH,
    max_digits: int = MAX_NUMBER_DIGITS,
) -> NumberReading:
    """Read every digit of a drawing (`cut_number`, then one forward pass; with ``strokes`` and a
    model that has a path model, each digit's strokes through the path model too, pooled). Raises
    what `cut_number` raises; a drawing with no box gives an empty reading with its ``reason``."""
    pieces = cut_number(model, image, strokes, pen_width=pen_width, max_digits=max_digits)
    found, canvases, inputs = pieces.found, pieces.canvases, pieces.inputs
    if not found.boxes:
        return NumberReading((), found.reason, model.version)
    probabilities = model.predict_proba(inputs).astype(np.float64)
    owned = strokes_of_digits(found, strokes) if strokes else [None] * len(found)
    pooled = _pool_paths(model, probabilities, owned)
    digits = probabilities.argmax(axis=1)
    readings = tuple(
        DigitReading(
            digit=int(digit),
            confidence=float(probs[digit]),
            probabilities=probs.astype(np.float32),
            box=tuple(box.xywh),
            model_input=model_input.astype(np.float32),
            canvas=(np.clip(canvas, 0.0, 1.0) * 255).round().astype(np.uint8),
            strokes=digit_strokes,
            views=(PIXELS, PATH) if with_path else (PIXELS,),
        )
        for digit, probs, box, model_input, canvas, digit_strokes, with_path in zip(
            digits, probabilities, found.boxes, inputs, canvases, owned, pooled
        )
    )
    return NumberReading(readings, found.reason, model.version)


def strokes_of_digits(
    found: Segmentation, strokes: Sequence[Sequence[Point]]
) -> list[tuple[np.ndarray, ...] | None]:
    """Each digit's own strokes, in drawing order: a stroke belongs to the digit whose ink holds
    most of its points (the box's stroke mask), else, off every digit's ink, to the digit whose box
    centre is nearest its points' mean. ``(K, 2)`` float64 arrays in the drawing's pixels; None for
    a digit no stroke belongs to. Empty strokes are skipped."""
    owned: list[list[np.ndarray]] = [[] for _ in found.boxes]
    centres = np.array([(box.x + box.w / 2, box.y + box.h / 2) for box in found.boxes], dtype=np.float64)
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if not len(points):
            continue
        cells = np.floor(points).astype(np.int64)
        hits = np.zeros(len(found.boxes), dtype=np.int64)
        for index, box in enumerate(found.boxes):
            col, row = cells[:, 0] - box.x, cells[:, 1] - box.y
            inside = (col >= 0) & (col < box.w) & (row >= 0) & (row < box.h)
            hits[index] = int(box.mask[row[inside], col[inside]].sum())
        if hits.max() > 0:
            owner = int(hits.argmax())
        else:
            owner = int(np.argmin(((centres - points.mean(axis=0)) ** 2).sum(axis=1)))
        owned[owner].append(points)
    return [tuple(digit) if digit else None for digit in owned]


def _pool_paths(model: Model, probabilities: np.ndarray, owned: Sequence[tuple | None]) -> list[bool]:
    """Pool, in place, the pixel ``probabilities`` ``(K, 10)`` of the digits with strokes with the
    model's path model's reading of them (`doodle.model.path_io.pool`, the model's own weight); returns
    which digits pooled. Nothing changes without a path model."""
    path_model = getattr(model, "path", None)
    rows = [index for index, digit_strokes in enumerate(owned) if digit_strokes]
    if path_model is None or not rows:
        return [False] * len(owned)
    path_probabilities = path_model.predict_proba([owned[index] for index in rows])
    probabilities[rows] = pool(probabilities[rows], path_probabilities, path_model.pool_weight)
    return [index in rows for index in range(len(owned))]


def _join_pieces(model: Model, found: Segmentation) -> Segmentation:
    """Neighbouring boxes that could be one digit drawn in pieces (`Segmentation.close`) become
    one when the model reads their union as a digit more surely than it reads them as two: the
    union's top probability beats the product of the parts' (recognition-driven segmentation).
    The surest join first, until none is left."""
    while len(found) > 1:
        candidates = [index for index in range(len(found) - 1) if found.close(index)]
        if not candidates:
            break
        alone = np.stack([canvas_to_input(found.digit_canvas(i)) for i in range(len(found))])
        unions = [found.joined(index) for index in candidates]
        together = np.stack([canvas_to_input(u.digit_canvas(i)) for u, i in zip(unions, candidates)])
        sure = model.predict_proba(np.concatenate([alone, together])).max(axis=1)
        parts, joined = sure[: len(found)], sure[len(found) :]
        gains = [
            np.log(joined[k]) - np.log(parts[i]) - np.log(parts[i + 1]) for k, i in enumerate(candidates)
        ]
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        found = unions[best]
    return found
