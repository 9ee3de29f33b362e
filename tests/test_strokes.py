"""Tests of doodle.canvas.strokes: the parametric pen-stroke digit generator and its benchmark."""

import numpy as np
import pytest

from doodle.canvas import preprocess, strokes
from doodle.canvas.drawing import render_strokes


def test_same_seed_gives_the_same_digits_and_another_seed_others():
    labels = np.arange(20) % 10
    first = strokes.generate(labels, seed=5)
    again = strokes.generate(labels, seed=5)
    other = strokes.generate(labels, seed=6)
    np.testing.assert_array_equal(first.images, again.images)
    assert list(first.styles) == list(again.styles)
    assert np.abs(first.images - other.images).mean() > 0.02


def test_every_class_and_style_renders_inside_the_pad_at_thin_and_thick_pens():
    for digit, styles in strokes.STYLES.items():
        for style in styles:
            for pen, height in ((6.0, 0.9), (30.0, 0.3), (34.0, 0.9)):
                rng = np.random.default_rng([digit, int(pen)])
                writer = strokes.TRAINING_WRITERS.sample(rng)
                pad_strokes = strokes.draw_strokes(
                    digit, style, writer, rng, pen_width=pen, height_fraction=height
                )
                points = np.concatenate(pad_strokes)
                assert points.min() >= pen / 2 and points.max() <= strokes.CANVAS_SIZE - pen / 2, (
                    digit,
                    style,
                    pen,
                )
                pad = render_strokes(pad_strokes, strokes.CANVAS_SIZE, pen)
                assert pad.shape == (280, 280) and pad.dtype == np.uint8
                # Ink, and none on the pad's outermost ring (the drawing stays inside).
                assert pad.max() == 255 and pad[[0, -1]].max() == 0 and pad[:, [0, -1]].max() == 0
                model_input = preprocess.canvas_to_input(pad)
                assert model_input.shape == (28, 28) and model_input.max() == pytest.approx(1.0)


def test_generated_set_shapes_labels_and_metadata():
    labels = np.repeat(np.arange(10), 3)
    digits, pads = strokes.generate(labels, seed=1, canvases=True)
    assert digits.images.shape == (30, 28, 28) and digits.images.dtype == np.float32
    assert 0.0 <= digits.images.min() and digits.images.max() <= 1.0
    np.testing.assert_array_equal(digits.labels, labels)
    assert pads.shape == (30, 280, 280)
    assert all(style in strokes.STYLES[label] for style, label in zip(digits.styles, labels))
    assert ((digits.pen_widths >= 4) & (digits.pen_widths <= 34)).all()
    assert ((digits.heights > 0.3 * 280 * 0.9) & (digits.heights <= 280)).all()


def test_clean_pads_give_exactly_what_canvas_to_input_gives():
    labels = np.arange(10)
    digits, pads = strokes.generate(labels, seed=2, canvases=True, clean_pads=True)
    for image, pad in zip(digits.images, pads):
        np.testing.assert_array_equal(image, preprocess.canvas_to_input(pad))


def test_held_out_writers_share_no_slant_width_or_tremor_with_training_writers():
    rng = np.random.default_rng(0)
    train_writers = [strokes.TRAINING_WRITERS.sample(rng) for _ in range(2000)]
    held_out = [strokes.HELD_OUT_WRITERS.sample(rng) for _ in range(2000)]

    def inside(value, bands):
        return any(low <= value <= high for low, high in bands)

    for writer in held_out:
        assert not any(low < writer.slant < high for low, high in strokes.TRAINING_WRITERS.slant_bands)
        assert not any(low < writer.width < high for low, high in strokes.TRAINING_WRITERS.width_bands)
        assert writer.tremor >= strokes.TRAINING_WRITERS.tremor[1]
    for writer in train_writers:
        assert inside(writer.slant, strokes.TRAINING_WRITERS.slant_bands)
        assert inside(writer.width, strokes.TRAINING_WRITERS.width_bands)
        assert writer.tremor <= strokes.TRAINING_WRITERS.tremor[1]


def test_benchmark_is_balanced_over_classes_and_pen_widths():
    bench = strokes.benchmark(seed=3, per_class=1, writer_count=4)
    widths = strokes.BENCHMARK_PEN_WIDTHS
    assert len(bench.labels) == 10 * len(widths)
    for digit in range(10):
        assert sorted(bench.pen_widths[bench.labels == digit]) == sorted(widths)
    assert set(bench.writers) <= set(range(4))


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="digits 0..9"):
        strokes.generate([3, 10], seed=0)
    with pytest.raises(ValueError, match="pen widths"):
        strokes.generate([3, 4], seed=0, pen_widths=[6.0])
