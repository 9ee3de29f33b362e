"""A drawing of a whole number -> its digits, left to right, each ready for `canvas_to_input`.

The ink is cut into 8-connected components; when the pen's strokes are known, each group of
components the rules below make is cut again into the ink each stroke laid down in it and grouped
again within it (strokes part digits whose ink touches, never join ink the components kept
apart). Pieces of one digit are joined: marks much less tall than a digit (a dot,
a tick, a 5's flag drawn apart) go to the nearest digit, as do short pieces right next to a taller
one (a 4's corner and stem drawn apart); pieces that overlap heavily in x (a 5's flag, a 4 in two
strokes, a crossed 7), or overlap somewhat, have similar widths and together stay narrower than a
digit (a 0 drawn as two arcs), become one. A box far wider than it is tall (``SPLIT_RATIO``) is
taken for touching digits and cut, one digit per ``DIGIT_ASPECT`` of its height, near each even
cut at the column whose ink spans the least height (the narrowest bridge between the digits; the
least ink breaks ties), since the inside of a 0 or an 8 holds little ink but is no place to cut.
When no column there is a narrow bridge, the box is left whole and the result says so in
``reason``. Which neighbouring boxes could still be one digit in pieces (`Segmentation.close`)
is for a reader with a model to settle (`doodle.reading.number_reading`).

Every digit's own ink (with its anti-aliased rim, without its neighbours' ink) is put back on the
canvas's background and goes through `doodle.canvas.preprocess.canvas_to_input`, exactly as one digit
drawn alone would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import STROKE_LEVEL, border_pixels, canvas_to_input, ink_map, to_grey
from doodle.constants import IMAGE_SIDE

# A mark less tall than this fraction of the tallest mark is a fragment (a dot, a tick, a 5's
# flag drawn apart, however wide) and joins the nearest digit.
FRAGMENT_FRACTION = 0.3
# A mark less tall than PIECE_FRACTION of the tallest whose ink box comes within PIECE_GAP of the
# tallest's height of a taller mark is a piece of that digit (a 4 whose corner and stem were drawn
# apart): digits of one number are about the same height and stand further apart than that.
PIECE_FRACTION = 0.6
PIECE_GAP = 0.1
# Two pieces whose x-ranges overlap by this fraction of the narrower one are one digit.
MERGE_OVERLAP = 0.5
# Pieces of similar widths (the narrower at least NARROW_MERGE_BALANCE of the wider) that overlap
# in x by NARROW_MERGE_OVERLAP of the narrower are also one digit when together they are at most
# NARROW_MERGE_ASPECT as wide as tall: a 0 or an 8 drawn in two halves. Two digits side by side
# are wider, and a 1 touching a 7 is far narrower than the 7.
NARROW_MERGE_OVERLAP = 0.2
NARROW_MERGE_BALANCE = 0.5
NARROW_MERGE_ASPECT = 0.7
# A box wider than this times its height holds touching digits (measured against the median box
# height instead, wide single digits were cut more often than touching ones were found) ...
SPLIT_RATIO = 1.4
# ... about one per this width-to-height ratio (handwritten digits are narrower than tall) ...
DIGIT_ASPECT = 0.7
# ... cut within this fraction of a digit's width of the even cut, at the column whose ink spans
# the least height ...
CUT_WINDOW = 0.35
# ... provided that span is at most this fraction of the box's height. Touching digits are each
# about as tall as the box: when a cut would leave a part less tall than MIN_PART_HEIGHT of it,
# the box is one wide digit (a 5 with a long flag), not several.
MAX_CUT_SPAN = 0.5
MIN_PART_HEIGHT = 0.5
# More separate marks than this is not a written number (a photo, noise): give up at once.
MAX_MARKS = 200
# The ink around a digit's strokes (anti-aliasing) that travels with it, in pixels.
RIM_PX = 3

TOO_MANY_MARKS_REASON = "{count} separate marks: too many for a written number"
NO_CUT_REASON = (
    "box {index} is {ratio:.1f} times wider than tall but has no narrow column to cut at: read as one digit"
)

Point = tuple[float, float]


@dataclass(frozen=True)
class DigitBox:
    """One digit found on the canvas: its bounding box in canvas pixels and its own ink.

    ``mask`` is ``(h, w)`` bool, the digit's stroke pixels (ink >= ``STROKE_LEVEL``) inside the box.
    """

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray = field(repr=False, compare=False)

    @property
    def xywh(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Segmentation:
    """The digits of a drawing, left to right.

    ``grey`` is the canvas as ``(H, W)`` float32 intensity in [0, 1] and ``background`` its
    background tone; ``reason`` says what the segmentation could not do (``None`` when every box
    looks like one digit).
    """

    boxes: tuple[DigitBox, ...]
    grey: np.ndarray = field(repr=False, compare=False)
    background: float
    reason: str | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def digit_canvas(self, index: int) -> np.ndarray:
        """Digit ``index`` alone on the background: ``(h', w')`` float32 in [0, 1], the box with
        a margin, the digit's strokes and their rim kept and every other pixel set to the
        background tone."""
        box = self.boxes[index]
        height, width = self.grey.shape
        margin = RIM_PX + 2 + box.h // 10
        top, left = max(0, box.y - margin), max(0, box.x - margin)
        bottom, right = min(height, box.y + box.h + margin), min(width, box.x + box.w + margin)
        own = np.zeros((bottom - top, right - left), dtype=bool)
        own[box.y - top : box.y - top + box.h, box.x - left : box.x - left + box.w] = box.mask
        others = np.zeros_like(own)
        for other_index, other in enumerate(self.boxes):
            if other_index != index:
                _paste(others, other, top, left)
        keep = ndimage.binary_dilation(own, iterations=RIM_PX) & ~others
        crop = self.grey[top:bottom, left:right]
        return np.where(keep, crop, np.float32(self.background)).astype(np.float32)

    def joined(self, index: int) -> Segmentation:
        """The same digits with box ``index`` and the next one taken for one digit."""
        first, second = self.boxes[index], self.boxes[index + 1]
        x0, y0, x1, y1 = _union_bounds(first, second)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        _paste(mask, first, y0, x0)
        _paste(mask, second, y0, x0)
        union = DigitBox(x0, y0, x1 - x0, y1 - y0, mask)
        return Segmentation(
            self.boxes[:index] + (union,) + self.boxes[index + 2 :], self.grey, self.background, self.reason
        )

    def close(self, index: int) -> bool:
        """Whether box ``index`` and the next one could be one digit drawn in pieces: their ink
        touches or their boxes overlap in x, and together they are no wider than one digit
        (``SPLIT_RATIO`` times their height, what `segment` leaves uncut)."""
        first, second = self.boxes[index], self.boxes[index + 1]
        x0, y0, x1, y1 = _union_bounds(first, second)
        if x1 - x0 > SPLIT_RATIO * (y1 - y0):
            return False
        if min(first.x + first.w, second.x + second.w) > max(first.x, second.x):
            return True
        grown = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=bool)
        _paste(grown, first, y0 - 1, x0 - 1)
        grown = ndimage.binary_dilation(grown, structure=np.ones((3, 3), dtype=bool))
        other = np.zeros_like(grown)
        _paste(other, second, y0 - 1, x0 - 1)
        return bool((grown & other).any())

    def inputs(self) -> np.ndarray:
        """Every digit through `canvas_to_input`: ``(K, 28, 28)`` float32 in [0, 1]."""
        if not self.boxes:
            return np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
        return np.stack([canvas_to_input(self.digit_canvas(i)) for i in range(len(self.boxes))])


def segment(
    image: np.ndarray,
    strokes: Sequence[Sequence[Point]] | None = None,
    *,
    pen_width: float = 20.0,
) -> Segmentation:
    """A drawing -> its digit boxes, ordered left to right.

    ``image``: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``, any dtype and polarity `to_grey`
    accepts. ``strokes`` (optional): the pen's strokes as ``(x, y)`` points in image pixels,
    drawn ``pen_width`` wide; within each group of ink components each stroke's ink is then a
    piece of its own, so digits drawn touching but in separate strokes stay apart. Raises `BlankCanvasError` for a blank canvas.
    """
    grey = to_grey(image)
    ink = ink_map(grey)  # raises BlankCanvasError
    background = float(np.median(border_pixels(grey)))
    strokes_mask = ink >= STROKE_LEVEL
    pieces, count = _pieces(strokes_mask, None, pen_width)
    if count > MAX_MARKS:
        return Segmentation((), grey, background, TOO_MANY_MARKS_REASON.format(count=count))
    groups = _merge_overlapping(_attach_fragments(_groups_of(pieces)))
    if strokes:
        pieces, groups = _split_by_strokes(strokes_mask, pieces, groups, strokes, pen_width)
    boxes: list[tuple[int, int, int, int, np.ndarray]] = []
    reasons: list[str] = []
    for group in sorted(groups, key=lambda g: (g.x0 + g.x1) / 2):
        mask = np.isin(pieces[group.y0 : group.y1, group.x0 : group.x1], list(group.labels))
        cut = _split_wide(mask, mask.shape[0])
        if cut is None:
            reasons.append(NO_CUT_REASON.format(index=len(boxes), ratio=mask.shape[1] / mask.shape[0]))
            cut = [(0, mask.shape[1])]
        for start, stop in cut:
            part = np.zeros_like(mask)
            part[:, start:stop] = mask[:, start:stop]
            boxes.append(_tight_box(part, group.x0, group.y0))
    digit_boxes = tuple(DigitBox(x, y, w, h, m) for x, y, w, h, m in boxes)
    return Segmentation(digit_boxes, grey, background, "; ".join(reasons) or None)


@dataclass
class _Group:
    labels: set[int]
    x0: int
    x1: int  # exclusive
    y0: int
    y1: int  # exclusive

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def absorb(self, other: _Group) -> None:
        self.labels |= other.labels
        self.x0, self.x1 = min(self.x0, other.x0), max(self.x1, other.x1)
        self.y0, self.y1 = min(self.y0, other.y0), max(self.y1, other.y1)


def _pieces(
    mask: np.ndarray, strokes: Sequence[Sequence[Point]] | None, pen_width: float
) -> tuple[np.ndarray, int]:
    """``(H, W)`` bool stroke mask -> ``(H, W)`` int32 piece labels (0 = none) and their count:
    8-connected components, or the ink of each stroke when strokes are given (ink no stroke
    covers becomes components of its own)."""
    structure = np.ones((3, 3), dtype=bool)
    if not strokes:
        labels, count = ndimage.label(mask, structure=structure)
        return labels.astype(np.int32), int(count)
    # Each stroke's number where the pen drew it, a pixel wider all round: the anti-aliased edge.
    owner = render_strokes(strokes, mask.shape, pen_width + 2, numbered=True)
    drawn = sum(1 for stroke in strokes if len(stroke))
    labels = np.where(mask, owner, 0)
    uncovered, extra = ndimage.label(mask & (labels == 0), structure=structure)
    labels = np.where(uncovered > 0, uncovered + drawn, labels).astype(np.int32)
    # Keep the numbering dense: a stroke wholly overdrawn by later strokes leaves no pixel.
    labels, present = _dense(labels)
    return labels, len(present)


def _dense(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integer labels (0 = none) -> the same regions numbered 1..K in the order of
    their old labels, as int32, and the old labels present (``(K,)``, ascending)."""
    present = np.flatnonzero(np.bincount(labels.ravel()))
    present = present[present > 0]
    relabel = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    relabel[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return relabel[labels], present


def _union_bounds(first: DigitBox, second: DigitBox) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the box holding both boxes (ends exclusive)."""
    return (
        min(first.x, second.x),
        min(first.y, second.y),
        max(first.x + first.w, second.x + second.w),
        max(first.y + first.h, second.y + second.h),
    )


def _groups_of(pieces: np.ndarray) -> list[_Group]:
    """``(H, W)`` int32 piece labels -> one group per piece, its box."""
    return [
        _Group({label}, s[1].start, s[1].stop, s[0].start, s[0].stop)
        for label, s in enumerate(ndimage.find_objects(pieces), start=1)
        if s is not None
    ]


def _split_by_strokes(
    mask: np.ndarray,
    components: np.ndarray,
    groups: list[_Group],
    strokes: Sequence[Sequence[Point]],
    pen_width: float,
) -> tuple[np.ndarray, list[_Group]]:
    """The groups of ink components, each cut into the ink every stroke laid down in it and
    grouped again by the same rules, within the group only: strokes part digits whose ink
    touches, and never join ink the components kept apart. Returns the new piece labels and
    groups."""
    stroke_pieces, count = _pieces(mask, strokes, pen_width)
    group_of = np.zeros(int(components.max()) + 1, dtype=np.int64)
    for index, group in enumerate(groups, start=1):
        group_of[list(group.labels)] = index
    # One piece per stroke and group of components.
    pair = np.where(mask, stroke_pieces.astype(np.int64) * (len(groups) + 1) + group_of[components], 0)
    pieces, present = _dense(pair)
    owner = present % (len(groups) + 1)
    regrouped: list[_Group] = []
    pieces_groups = _groups_of(pieces)
    for index in range(1, len(groups) + 1):
        inside = [g for g in pieces_groups if owner[min(g.labels) - 1] == index]
        regrouped.extend(_merge_overlapping(_attach_fragments(inside)))
    return pieces, regrouped


def _attach_fragments(groups: list[_Group]) -> list[_Group]:
    """Marks far less tall than the tallest one join the nearest (in x) taller mark."""
    if len(groups) < 2:
        return groups
    tallest = max(g.height for g in groups)
    limit = FRAGMENT_FRACTION * tallest
    big = [g for g in groups if g.height >= limit]
    for small in (g for g in groups if g.height < limit):
        min(big, key=lambda g: _distance(g, small)).absorb(small)
    # Short pieces right next to a taller one: shortest first, so a piece joins a whole digit.
    piece_limit, near = PIECE_FRACTION * tallest, PIECE_GAP * tallest
    for short in sorted((g for g in big if g.height < piece_limit), key=lambda g: g.height):
        taller = [g for g in big if g is not short and g.height > short.height]
        if not taller:
            continue
        nearest = min(taller, key=lambda g: _distance(g, short))
        if _distance(nearest, short)[0] <= near:
            nearest.absorb(short)
            big = [g for g in big if g is not short]
    return big


def _distance(group: _Group, other: _Group) -> tuple[float, float]:
    """The horizontal gap between two groups' boxes (0 when they overlap in x), then the
    distance between their centres."""
    gap = max(group.x0 - other.x1, other.x0 - group.x1, 0)
    return gap, abs((group.x0 + group.x1) / 2 - (other.x0 + other.x1) / 2)


def _merge_overlapping(groups: list[_Group]) -> list[_Group]:
    """Join groups that overlap heavily in x, or are two halves of one narrow digit."""
    groups = sorted(groups, key=lambda g: g.x0)
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
                if overlap <= 0:
                    continue
                width = max(a.x1, b.x1) - min(a.x0, b.x0)
                height = max(a.y1, b.y1) - min(a.y0, b.y0)
                narrower, wider = sorted((a.width, b.width))
                halves = (
                    overlap >= NARROW_MERGE_OVERLAP * narrower
                    and narrower >= NARROW_MERGE_BALANCE * wider
                    and width <= NARROW_MERGE_ASPECT * height
                )
                if overlap >= MERGE_OVERLAP * narrower or halves:
                    a.absorb(b)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _split_wide(mask: np.ndarray, digit_height: float) -> list[tuple[int, int]] | None:
    """``(h, w)`` bool ink of one box and the height of one digit -> column ranges, one per
    digit; ``None`` when the box is too wide for one digit but no column near an even cut is a
    narrow bridge."""
    height, width = mask.shape
    if width <= SPLIT_RATIO * digit_height:
        return [(0, width)]
    count = max(2, int(round(width / (DIGIT_ASPECT * digit_height))))
    column_ink = mask.sum(axis=0)
    rows = np.arange(height)[:, None]
    top = np.where(mask, rows, height).min(axis=0)
    bottom = np.where(mask, rows, -1).max(axis=0)
    span = np.where(column_ink > 0, bottom - top + 1, 0)
    # Span first, ink second: one sortable cost per column.
    cost = span * (height + 1) + column_ink
    step = width / count
    window = max(1, int(CUT_WINDOW * step))
    cuts = []
    for k in range(1, count):
        centre = int(round(k * step))
        low, high = max(1, centre - window), min(width - 1, centre + window + 1)
        if low >= high:
            continue
        column = low + int(np.argmin(cost[low:high]))
        if span[column] > MAX_CUT_SPAN * height:
            return None
        cuts.append(column)
    edges = [0, *sorted(set(cuts)), width]
    parts = [(start, stop) for start, stop in zip(edges[:-1], edges[1:]) if mask[:, start:stop].any()]
    for start, stop in parts:
        rows = np.flatnonzero(mask[:, start:stop].any(axis=1))
        if rows[-1] - rows[0] + 1 < MIN_PART_HEIGHT * height:
            return [(0, width)]
    return parts


def _tight_box(mask: np.ndarray, left: int, top: int) -> tuple[int, int, int, int, np.ndarray]:
    """``(h, w)`` bool at (``left``, ``top``) -> the bounding box of its ink and the mask cropped to it."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return left + int(cols[0]), top + int(rows[0]), int(crop.shape[1]), int(crop.shape[0]), crop


def _paste(target: np.ndarray, box: DigitBox, top: int, left: int) -> None:
    """OR ``box.mask`` into ``target`` (whose origin is canvas (``left``, ``top``)), clipped."""
    y0, x0 = box.y - top, box.x - left
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(target.shape[0], y0 + box.h), min(target.shape[1], x0 + box.w)
    if ys < ye and xs < xe:
        target[ys:ye, xs:xe] |= box.mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
