"""Digits drawn as pen trajectories from parametric styles, without any MNIST image.

People write shapes that MNIST rarely has: a 9 whose tail curls left, a 7 with a curved top or a
crossbar, a 1 with a flag and a base, an open-topped 4. Each digit here has several style
variants written as strokes (arcs, Bezier curves, lines) in a unit box. A *writer* (`Writer`)
adds their habits: slant, width, rotation, hand tremor, how far a loop overshoots and how
densely the pointer is sampled. The strokes are rendered by the drawing app's pen
(`doodle.canvas.drawing.render_strokes`: round, white ink on black, on the 280 px pad) and go through
`doodle.canvas.preprocess.canvas_to_input`, the one path of the app, the API and the benchmarks.

Two uses, kept apart by their writers (`TRAINING_WRITERS`, `HELD_OUT_WRITERS`): training mixes
fresh stroke digits into its batches; the development benchmark draws digits by writers whose
slant and width lie in bands that no training writer has, with other seeds. Everything is
deterministic from a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import canvas_to_input, ink_to_input
from doodle.constants import CANVAS_SIZE, IMAGE_SIDE

BENCHMARK_PEN_WIDTHS = (6, 10, 14, 18, 22, 26, 30)  # px on the 280 px pad, thin to thick

Stroke = np.ndarray  # (K, 2) float64 points (x, y) in the unit box, y downwards
ShapeFn = Callable[[np.random.Generator], list[Stroke]]


# ---- curve pieces in the unit box (x right, y down; angles in degrees, 0 = right, 90 = down)


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, step: float = 12.0) -> Stroke:
    count = max(3, int(abs(stop - start) / step) + 1)
    theta = np.radians(np.linspace(start, stop, count))
    return np.column_stack([cx + rx * np.cos(theta), cy + ry * np.sin(theta)])


def _bezier(*control: tuple[float, float], count: int = 14) -> Stroke:
    points = np.asarray(control, dtype=np.float64)
    t = np.linspace(0.0, 1.0, count)[:, None]
    degree = len(points) - 1
    return sum(comb(degree, i) * (1 - t) ** (degree - i) * t**i * points[i] for i in range(degree + 1))


def _line(*points: tuple[float, float]) -> Stroke:
    """A polyline through ``points``, with a point every 0.1 so that tremor can bend it."""
    pieces = []
    for a, b in zip(points[:-1], points[1:]):
        a, b = np.asarray(a, float), np.asarray(b, float)
        count = max(2, int(np.hypot(*(b - a)) / 0.1) + 1)
        pieces.append(a + np.linspace(0.0, 1.0, count)[:, None] * (b - a))
    return _join(*pieces)


def _join(*pieces: Stroke) -> Stroke:
    """One stroke through consecutive pieces (a repeated joining point is dropped)."""
    out = [pieces[0]]
    for piece in pieces[1:]:
        out.append(piece[1:] if np.allclose(piece[0], out[-1][-1]) else piece)
    return np.concatenate(out)


# ---- the style variants of each digit; ``u`` draws the per-drawing shape choices


def _zero(u):
    rx, overshoot = u.uniform(0.28, 0.42), u.uniform(-15, 35)
    start = u.uniform(-120, -60)
    return [_arc(0.5, 0.5, rx, 0.5, start, start - 360 - overshoot)]


def _one_stick(u):
    bend = u.uniform(-0.04, 0.04)
    return [_bezier((0.5, 0.0), (0.5 + bend, 0.5), (0.5, 1.0))]


def _one_flag(u):
    flag, drop = u.uniform(0.15, 0.35), u.uniform(0.12, 0.3)
    return [_line((0.5 - flag, drop), (0.5, 0.0), (0.5, 1.0))]


def _one_flag_base(u):
    flag, base = u.uniform(0.15, 0.35), u.uniform(0.18, 0.3)
    return [_line((0.5 - flag, 0.2), (0.5, 0.0), (0.5, 1.0)), _line((0.5 - base, 1.0), (0.5 + base, 1.0))]


def _two_curved(u):
    r = u.uniform(0.26, 0.34)
    top = _arc(0.5, r, r + 0.05, r, u.uniform(-190, -160), u.uniform(5, 30))
    end = top[-1]
    return [
        _join(
            top, _bezier(tuple(end), (0.5, 0.7), (0.05, 1.0)), _line((0.05, 1.0), (u.uniform(0.8, 1.0), 1.0))
        )
    ]


def _two_looped(u):
    top = _arc(0.5, 0.3, 0.34, 0.3, -180, 20)
    down = _bezier(tuple(top[-1]), (0.45, 0.75), (0.12, 0.92))
    loop = _arc(0.2, 0.88, 0.1, 0.09, 150, -150 + 360 + u.uniform(40, 80))
    return [_join(top, down, loop, _line(tuple(loop[-1]), (u.uniform(0.8, 1.0), 0.97)))]


def _two_angular(u):
    return [
        _line((0.1, 0.2), (0.45, 0.0), (0.85, 0.18), (0.8, 0.35), (0.05, 1.0), (u.uniform(0.8, 1.0), 1.0))
    ]


def _three_round(u):
    middle = u.uniform(0.2, 0.4)
    upper = _arc(0.45, 0.26, 0.32, 0.26, u.uniform(-165, -135), 110)
    lower = _arc(0.45, 0.74, 0.38, 0.26, -110, u.uniform(135, 165))
    upper[-1] = lower[0] = (middle, 0.5)
    return [_join(upper, lower)]


def _three_flat(u):
    lower = _arc(0.45, 0.7, 0.4, 0.3, -120, u.uniform(135, 165))
    return [_join(_line((0.1, 0.0), (0.85, 0.0), (tuple(lower[0]))), lower)]


def _four_closed(u):
    stem_x = u.uniform(0.6, 0.75)
    bar = u.uniform(0.6, 0.72)
    return [_line((stem_x, 0.0), (0.02, bar), (1.0, bar)), _line((stem_x, 0.05), (stem_x, 1.0))]


def _four_open(u):
    bar = u.uniform(0.5, 0.65)
    left = u.uniform(0.0, 0.15)
    return [_line((left + 0.1, 0.0), (left, bar), (1.0, bar)), _line((0.72, 0.05), (0.7, 1.0))]


def _five_two_strokes(u):
    belly = _arc(0.45, 0.7, 0.4, 0.3, -150, u.uniform(130, 160))
    return [_join(_line((0.2, 0.0), tuple(belly[0])), belly), _line((0.2, 0.0), (u.uniform(0.8, 0.95), 0.0))]


def _five_one_stroke(u):
    belly = _arc(0.45, 0.7, 0.4, 0.3, -150, u.uniform(130, 160))
    return [_join(_line((u.uniform(0.8, 0.95), 0.0), (0.2, 0.0), tuple(belly[0])), belly)]


def _six_curved(u):
    loop_r = u.uniform(0.25, 0.33)
    lead = _bezier((0.8, 0.0), (0.3, 0.05), (0.1, 0.45), (0.13, 1.0 - loop_r))
    loop = _arc(0.13 + 0.35, 1.0 - loop_r, 0.35, loop_r, 180, 180 - 360 - u.uniform(0, 30))
    return [_join(lead, loop)]


def _six_straight(u):
    loop = _arc(0.5, 0.72, 0.35, 0.28, 170, -190 - u.uniform(0, 30))
    return [_join(_line((0.75, 0.0), tuple(loop[0])), loop)]


def _seven_straight(u):
    return [_line((0.0, 0.0), (1.0, 0.0), (u.uniform(0.25, 0.5), 1.0))]


def _seven_curved_top(u):
    sag = u.uniform(0.08, 0.18)
    bar = _bezier((0.0, sag), (0.35, -sag), (0.7, sag), (1.0, 0.0))
    return [_join(bar, _bezier((1.0, 0.0), (0.6, 0.4), (u.uniform(0.3, 0.5), 1.0)))]


def _seven_crossed(u):
    foot = u.uniform(0.25, 0.5)
    cross_y = u.uniform(0.45, 0.55)
    cross_x = 1.0 - (1.0 - foot) * cross_y
    return [
        _line((0.0, 0.0), (1.0, 0.0), (foot, 1.0)),
        _line((cross_x - 0.3, cross_y), (cross_x + 0.25, cross_y)),
    ]


def _seven_hooked(u):
    return [_line((0.0, u.uniform(0.15, 0.3)), (0.02, 0.0), (1.0, 0.0), (u.uniform(0.25, 0.5), 1.0))]


def _eight_one_stroke(u):
    t = np.linspace(0.0, 2 * np.pi, 60) + u.uniform(-0.3, 0.0)
    t = np.append(t, t[-1] + np.linspace(0.05, u.uniform(0.1, 0.4), 4))
    top = u.uniform(0.4, 0.5)
    x = 0.5 + 0.45 * np.sin(2 * t) * np.where(np.cos(t) > 0, 0.8, 1.0)
    y = np.where(np.cos(t) > 0, top * (1 - np.cos(t)), top + (1 - top) * (-np.cos(t)))
    return [np.column_stack([x, y])]


def _eight_two_loops(u):
    top = u.uniform(0.4, 0.5)
    return [
        _arc(0.5, top / 2, 0.26, top / 2, -90, 270 + u.uniform(0, 25)),
        _arc(0.5, top + (1 - top) / 2, 0.34, (1 - top) / 2, -90, 270 + u.uniform(0, 25)),
    ]


def _nine_loop(u, r: float = 0.28) -> Stroke:
    return _arc(0.45, r, 0.33, r, u.uniform(-10, 20), u.uniform(-10, 20) - 360 - u.uniform(0, 25))


def _nine_straight(u):
    r = u.uniform(0.24, 0.32)
    return [_join(_nine_loop(u, r), _line((0.78, r), (u.uniform(0.7, 0.8), 1.0)))]


def _nine_curved(u):
    r = u.uniform(0.24, 0.32)
    return [
        _join(_nine_loop(u, r), _bezier((0.78, r), (0.8, 0.75), (0.65, 1.0), (u.uniform(0.35, 0.5), 0.97)))
    ]


def _nine_curled(u):
    """The loop on a stem that hooks left at the bottom, as many people write it."""
    r, curl = u.uniform(0.24, 0.32), u.uniform(0.0, 1.0)
    tail = _bezier(
        (0.78, r), (0.88, 0.8), (0.6, 1.05), (0.15, 1.0), (0.02 + 0.12 * (1 - curl), 0.92 - 0.25 * curl)
    )
    # Many such nines leave the loop's left side open or barely closed.
    loop = _arc(0.45, r, 0.33, r, u.uniform(-10, 20), u.uniform(-10, 20) - 360 + u.uniform(-40, 25))
    return [_join(loop, tail)]


def _nine_open(u):
    r = u.uniform(0.24, 0.32)
    loop = _arc(0.45, r, 0.33, r, -20, -320)
    return [_join(loop, _line((0.78, r - 0.05), (u.uniform(0.65, 0.8), 1.0)))]


STYLES: dict[int, dict[str, ShapeFn]] = {
    0: {"oval": _zero},
    1: {"stick": _one_stick, "flag": _one_flag, "flag and base": _one_flag_base},
    2: {"curved": _two_curved, "looped": _two_looped, "angular": _two_angular},
    3: {"round": _three_round, "flat top": _three_flat},
    4: {"closed": _four_closed, "open": _four_open},
    5: {"two strokes": _five_two_strokes, "one stroke": _five_one_stroke},
    6: {"curved": _six_curved, "straight": _six_straight},
    7: {
        "straight": _seven_straight,
        "curved top": _seven_curved_top,
        "crossed": _seven_crossed,
        "hooked": _seven_hooked,
    },
    8: {"one stroke": _eight_one_stroke, "two loops": _eight_two_loops},
    9: {
        "straight stem": _nine_straight,
        "curved stem": _nine_curved,
        "curled tail": _nine_curled,
        "open loop": _nine_open,
    },
}


# ---- writers


@dataclass(frozen=True)
class Writer:
    """One person's habits: ``slant`` (x shift per unit of height, > 0 leans right), ``width``
    (x scale of the unit box), ``rotation`` (degrees), ``tremor`` (smooth wobble, fraction of
    the digit's height) and ``spacing`` (pointer samples every so many pad pixels)."""

    slant: float
    width: float
    rotation: float
    tremor: float
    spacing: float


@dataclass(frozen=True)
class WriterFamily:
    """Where writers' habits are drawn from: ``slant_bands`` and ``width_bands`` are lists of
    (low, high) intervals; a band is picked uniformly, then a value in it."""

    slant_bands: tuple[tuple[float, float], ...]
    width_bands: tuple[tuple[float, float], ...]
    rotation: tuple[float, float] = (-8.0, 8.0)
    tremor: tuple[float, float] = (0.0, 0.02)
    spacing: tuple[float, float] = (2.0, 9.0)

    def sample(self, rng: np.random.Generator) -> Writer:
        def from_bands(bands):
            low, high = bands[int(rng.integers(len(bands)))]
            return float(rng.uniform(low, high))

        return Writer(
            slant=from_bands(self.slant_bands),
            width=from_bands(self.width_bands),
            rotation=float(rng.uniform(*self.rotation)),
            tremor=float(rng.uniform(*self.tremor)),
            spacing=float(rng.uniform(*self.spacing)),
        )


# Training writers never have a slant in (0.05, 0.15) or (0.35, 0.45), a width in (0.8, 0.9)
# or (1.15, 1.25), nor a tremor above 0.02; the held-out writers of the benchmark have only those.
TRAINING_WRITERS = WriterFamily(
    slant_bands=((-0.25, 0.05), (0.15, 0.35)),
    width_bands=((0.6, 0.8), (0.9, 1.15)),
    tremor=(0.0, 0.02),
)
HELD_OUT_WRITERS = WriterFamily(
    slant_bands=((0.05, 0.15), (0.35, 0.45)),
    width_bands=((0.8, 0.9), (1.15, 1.25)),
    tremor=(0.02, 0.03),
)


def _tremor(points: Stroke, amount: float, rng: np.random.Generator) -> Stroke:
    """Smooth wobble: a random low-frequency offset along the stroke, ``amount`` in box units."""
    if amount <= 0 or len(points) < 3:
        return points
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    phase = rng.uniform(0, 2 * np.pi, size=(2, 2))
    frequency = rng.uniform(2.0, 5.0, size=2)
    wobble = np.stack(
        [
            np.sin(frequency[0] * arc + phase[axis, 0])
            + 0.5 * np.sin(frequency[1] * 2 * arc + phase[axis, 1])
            for axis in range(2)
        ],
        axis=1,
    )
    return points + amount * wobble / 1.5


def _resample(points: Stroke, spacing: float) -> Stroke:
    """Points every ``spacing`` along the polyline (ends kept), as a pointer reports them."""
    steps = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    if arc[-1] <= spacing:
        return points[[0, -1]] if len(points) > 1 else points
    at = np.append(np.arange(0.0, arc[-1], spacing), arc[-1])
    return np.column_stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])])


def draw_strokes(
    digit: int,
    style: str,
    writer: Writer,
    rng: np.random.Generator,
    *,
    pen_width: float,
    height_fraction: float,
) -> list[Stroke]:
    """One drawing as pad strokes: a list of ``(K, 2)`` float64 (x, y) points in pixels of the
    280 px pad, the whole drawing (pen included) inside it. ``height_fraction``: the drawing's
    height as a fraction of the pad."""
    strokes = STYLES[digit][style](rng)
    angle = np.radians(writer.rotation)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shaped = []
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).copy()
        points = _tremor(points, writer.tremor, rng)
        points[:, 0] = 0.5 + (points[:, 0] - 0.5) * writer.width + writer.slant * (0.5 - points[:, 1])
        shaped.append((points - 0.5) @ rotation.T)
    everything = np.concatenate(shaped)
    low, high = everything.min(axis=0), everything.max(axis=0)
    extent = high - low
    scale = height_fraction * CANVAS_SIZE / max(extent[1], 1e-6)
    margin = pen_width / 2 + 2  # the pen's round cap stays off the pad's edge
    # Never wider than the pad allows.
    scale = min(scale, (CANVAS_SIZE - 2 * margin) / max(extent.max(), 1e-6))
    room = np.maximum(CANVAS_SIZE - 2 * margin - extent * scale, 0.0)
    offset = margin + rng.uniform(0.0, 1.0, size=2) * room
    return [_resample((points - low) * scale + offset, writer.spacing) for points in shaped]


@dataclass(frozen=True)
class StrokeDigits:
    """A generated set: ``images`` ``(N, 28, 28)`` float32 in [0, 1] (the model's input),
    ``labels`` ``(N,)`` int64, and per image its ``styles`` (variant name), ``pen_widths`` (px
    on the pad), ``heights`` (drawing height in pad px) and ``writers`` (writer index)."""

    images: np.ndarray
    labels: np.ndarray
    styles: np.ndarray
    pen_widths: np.ndarray
    heights: np.ndarray
    writers: np.ndarray


def generate(
    labels: Sequence[int] | np.ndarray,
    seed: int,
    *,
    family: WriterFamily = TRAINING_WRITERS,
    writer_count: int | None = None,
    pen_widths: Sequence[float] | np.ndarray | None = None,
    pen_range: tuple[float, float] = (4.0, 34.0),
    height_range: tuple[float, float] = (0.3, 0.9),
    canvases: bool = False,
    clean_pads: bool = False,
) -> StrokeDigits | tuple[StrokeDigits, np.ndarray]:
    """Stroke digits of the given ``labels`` (ints 0..9), deterministic from ``seed``.

    Image ``i`` uses its own generator seeded with ``(seed, i)``: its style variant (uniform over
    the digit's `STYLES`), its writer (one of ``writer_count`` writers sampled from ``family``
    with ``seed``, or a fresh writer per image when None), its pen width (``pen_widths[i]`` when
    given, else uniform in ``pen_range`` px) and its height (uniform fraction of the pad in
    ``height_range``). With ``canvases`` the ``(N, 280, 280)`` uint8 pads come back too.

    Each pad goes through `canvas_to_input`; with ``clean_pads`` through `ink_to_input` only,
    which gives the same input for these noise-free pads (a test checks it) several times faster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError("labels must be a 1-D sequence of digits 0..9")
    if pen_widths is not None and len(pen_widths) != len(labels):
        raise ValueError(f"{len(pen_widths)} pen widths for {len(labels)} labels")
    writers = None
    if writer_count is not None:
        writer_rng = np.random.default_rng([int(seed), 0x57])
        writers = [family.sample(writer_rng) for _ in range(writer_count)]
    count = len(labels)
    images = np.empty((count, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    styles = np.empty(count, dtype=object)
    widths = np.empty(count, dtype=np.float64)
    heights = np.empty(count, dtype=np.float64)
    writer_ids = np.full(count, -1, dtype=np.int64)
    pads = np.empty((count, CANVAS_SIZE, CANVAS_SIZE), dtype=np.uint8) if canvases else None
    for i, digit in enumerate(labels):
        rng = np.random.default_rng([int(seed), i])
        names = list(STYLES[int(digit)])
        style = names[int(rng.integers(len(names)))]
        if writers is None:
            writer = family.sample(rng)
        else:
            writer_ids[i] = int(rng.integers(len(writers)))
            writer = writers[writer_ids[i]]
        pen = float(pen_widths[i]) if pen_widths is not None else float(rng.uniform(*pen_range))
        height = float(rng.uniform(*height_range))
        strokes = draw_strokes(int(digit), style, writer, rng, pen_width=pen, height_fraction=height)
        pad = render_strokes(strokes, CANVAS_SIZE, pen)
        if pads is not None:
            pads[i] = pad
        images[i] = ink_to_input(pad * np.float32(1 / 255)) if clean_pads else canvas_to_input(pad)
        styles[i], widths[i] = style, pen
        everything = np.concatenate(strokes)
        heights[i] = float(everything[:, 1].max() - everything[:, 1].min()) + pen
    result = StrokeDigits(images, labels, styles, widths, heights, writer_ids)
    return (result, pads) if canvases else result


def benchmark(seed: int, per_class: int, writer_count: int = 14) -> StrokeDigits:
    """The development benchmark: ``per_class`` digits of each class at every pen width of
    `BENCHMARK_PEN_WIDTHS`, by ``writer_count`` held-out writers (`HELD_OUT_WRITERS`, seeded
    from ``seed``; pick a seed the training never uses)."""
    labels = np.repeat(np.arange(10), per_class * len(BENCHMARK_PEN_WIDTHS))
    widths = np.tile(np.repeat(BENCHMARK_PEN_WIDTHS, per_class), 10)
    return generate(labels, seed, family=HELD_OUT_WRITERS, writer_count=writer_count, pen_widths=widths)


# The stream of the pipeline's base seed that the evaluation benchmark's writers are drawn from
# (training derives its streams by spawning, never from this key).
EVALUATION_STREAM = 11


def evaluation_benchmark(base_seed: int, per_class: int, writer_count: int = 14) -> StrokeDigits:
    """The pen-stroke benchmark as the evaluate stage reports it (and the seed study and the promote
    stage measure it): `benchmark` seeded from the stream ``[base_seed, EVALUATION_STREAM]`` of the
    pipeline's ``base.seed``, ``per_class`` and ``writer_count`` from params.yaml's evaluate section."""
    seed = int(np.random.SeedSequence([int(base_seed), EVALUATION_STREAM]).generate_state(1)[0])
    return benchmark(seed, per_class, writer_count)
