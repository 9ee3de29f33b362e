"""The whole-number benchmark's composer and scoring, with a synthetic digit source."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from doodle.canvas.preprocess import canvas_to_input
from doodle.canvas.segment import segment
from doodle.study import numbers

# Each digit's "drawing" is a distinct shape, so a predict function can read it back exactly.
SHAPES = {
    0: "ellipse",
    1: [(0.5, 0.05), (0.5, 0.95)],
    7: [(0.1, 0.1), (0.9, 0.1), (0.4, 0.95)],
}


def shape_canvas(label: int) -> np.ndarray:
    canvas = Image.new("L", (200, 200), 255)
    pen = ImageDraw.Draw(canvas)
    box = (60, 30, 140, 170)
    if SHAPES[label] == "ellipse":
        pen.ellipse(box, outline=0, width=12)
    else:
        points = [(box[0] + x * 80, box[1] + y * 140) for x, y in SHAPES[label]]
        pen.line(points, fill=0, width=12, joint="curve")
    return np.asarray(canvas)


def shape_source(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    label = int(rng.choice(list(SHAPES)))
    return shape_canvas(label), label


class ShapeReader:
    """Reads the shapes back exactly, as a model would be read (`predict_proba`): all its
    probability on the nearest shape template (each shape alone through `canvas_to_input`)."""

    version = "shape-templates"

    def __init__(self) -> None:
        self.labels = np.array(list(SHAPES))
        self.templates = np.stack([canvas_to_input(shape_canvas(label)) for label in SHAPES]).reshape(
            len(SHAPES), -1
        )

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        flat = np.asarray(inputs).reshape(len(inputs), -1)
        distances = ((flat[:, None, :] - self.templates[None]) ** 2).sum(axis=2)
        probabilities = np.zeros((len(flat), 10), dtype=np.float32)
        probabilities[np.arange(len(flat)), self.labels[distances.argmin(axis=1)]] = 1.0
        return probabilities


def read_shapes(inputs: np.ndarray) -> np.ndarray:
    """``(N, 28, 28)`` -> the label of the nearest shape template."""
    return ShapeReader().predict_proba(inputs).argmax(axis=1)


def test_the_reader_knows_the_shapes_alone():
    for label in SHAPES:
        assert read_shapes(canvas_to_input(shape_canvas(label))[None])[0] == label


def test_clear_gaps_compose_apart_and_read_back():
    rng = np.random.default_rng(3)
    labels = [7, 0, 1, 7]
    number = numbers.compose_number([shape_canvas(d) for d in labels], labels, rng, (0.3, 0.4))
    assert number.labels == (7, 0, 1, 7)
    assert not number.touching.any()
    assert len(number.digits) == 4
    assert numbers.read_number(number.canvas, ShapeReader()) == labels
    found = segment(number.canvas)
    # Digits sit on a baseline within the jitter: box tops differ by less than the jitter allows.
    tops = [b.y for b in found.boxes if b.h > 80]
    assert max(tops) - min(tops) <= 2 * numbers.BASELINE_JITTER * numbers.DIGIT_HEIGHT + 20


def test_overlapping_gaps_are_seen_to_touch():
    rng = np.random.default_rng(4)
    labels = [0, 0, 0]
    number = numbers.compose_number([shape_canvas(d) for d in labels], labels, rng, (-0.15, -0.1))
    assert number.touching.all()


def test_composition_is_reproducible_from_the_seed():
    def make(seed):
        rng = np.random.default_rng(seed)
        drawings, labels = zip(*(shape_source(rng) for _ in range(3)))
        return numbers.compose_number(drawings, labels, rng, (0.0, 0.5))

    assert np.array_equal(make(1).canvas, make(1).canvas)
    assert not np.array_equal(make(1).canvas, make(2).canvas)


def test_benchmark_scores_bands_counts_and_touching():
    bands = {"clear": (0.3, 0.5), "overlapping": (-0.3, -0.2)}
    result = numbers.number_benchmark(
        shape_source, ShapeReader(), seed=5, numbers_per_cell=4, digit_counts=(2, 3), bands=bands
    )
    clear = result["bands"]["clear"]
    assert clear["numbers"] == 8 and clear["digits"] == 20
    assert clear["number_accuracy"] == 1.0
    assert clear["digit_accuracy"] == clear["single_digit_accuracy"] == 1.0
    assert set(clear["by_count"]) == {"2", "3"}
    assert result["touching"]["clear"]["numbers"] == 0
    assert result["touching"]["clear"]["number_accuracy"] is None  # JSON null, never NaN
    # Overlapping by a fifth of the height or more, nearly every number touches and is tallied
    # apart (a 1 can land inside a 0 without touching it).
    overlapping, touching = result["bands"]["overlapping"], result["touching"]["overlapping"]
    assert overlapping["numbers"] + touching["numbers"] == 8
    assert touching["numbers"] >= 6
    assert touching["number_accuracy"] < 1.0


def test_a_number_read_with_the_wrong_count_scores_no_digit():
    tally = numbers._Tally()
    tally.add([1, 2, 3], [1, 2], [1, 2, 3])
    tally.add([4, 5], [4, 6], [4, 5])
    summary = tally.summary()
    assert summary["number_accuracy"] == 0.0
    assert summary["count_accuracy"] == 0.5
    assert summary["digit_accuracy"] == pytest.approx(1 / 5)
    assert summary["single_digit_accuracy"] == 1.0


def test_stroke_digits_compose_into_a_readable_number():
    source = numbers.stroke_source()
    rng = np.random.default_rng(11)
    drawings, labels = zip(*(source(rng) for _ in range(4)))
    assert all(0 <= label <= 9 for label in labels)
    for drawing in drawings:
        assert drawing.dtype == np.uint8 and drawing[0, 0] == 255 and drawing.min() == 0  # dark on white
    number = numbers.compose_number(drawings, labels, rng, numbers.SPACING_BANDS["clear"])
    assert len(segment(number.canvas)) == 4


def test_stroke_drawings_compose_with_their_strokes_on_the_number():
    """Composed from strokes, the number's canvas is its strokes drawn with one pen, and each
    digit's strokes lie on that digit's place, left to right."""
    source = numbers.stroke_source(with_strokes=True)
    rng = np.random.default_rng(12)
    drawings, labels = zip(*(source(rng) for _ in range(3)))
    assert all(isinstance(drawing, numbers.StrokeDrawing) for drawing in drawings)
    number = numbers.compose_number(drawings, labels, rng, numbers.SPACING_BANDS["clear"])
    assert number.strokes is not None
    assert np.array_equal(number.canvas, number.strokes.canvas(number.canvas.shape))
    assert len(number.strokes.strokes) == sum(len(drawing.strokes) for drawing in drawings)
    points = np.concatenate(number.strokes.strokes)
    height, width = number.canvas.shape
    assert points[:, 0].min() >= 0 and points[:, 0].max() < width and points[:, 1].max() < height
    starts = np.cumsum([0] + [len(drawing.strokes) for drawing in drawings])
    centres = [
        np.concatenate(number.strokes.strokes[a:b])[:, 0].mean() for a, b in zip(starts[:-1], starts[1:])
    ]
    assert centres == sorted(centres)
    assert len(segment(number.canvas, number.strokes.strokes, pen_width=number.strokes.pen_width)) == 3


def test_the_single_digit_benchmark_counts_every_drawing(tiny_model):
    source = numbers.stroke_source(with_strokes=True)
    result = numbers.single_digit_benchmark(source, tiny_model, seed=5, count=12)
    assert set(result) == set(numbers.READ_PATHS)
    for cell in result.values():
        assert cell["digits"] == 12
        assert sum(drawn for _, drawn in cell["several_by_digit"].values()) == 12
        several = sum(count for count, _ in cell["several_by_digit"].values())
        assert cell["several_share"] == pytest.approx(several / 12)
        assert 0.0 <= cell["accuracy"] <= 1.0


def test_whole_number_accuracy_counts_every_band_and_the_touching_numbers():
    result = {
        "bands": {
            "clear": {"numbers": 10, "number_accuracy": 0.9},
            "tight": {"numbers": 5, "number_accuracy": 0.6},
        },
        "touching": {
            "clear": {"numbers": 0, "number_accuracy": None},
            "tight": {"numbers": 5, "number_accuracy": 0.2},
        },
    }
    found = numbers.whole_number_accuracy(result)
    assert found["numbers"] == 20
    assert found["accuracy"] == pytest.approx((9 + 3 + 1) / 20)
