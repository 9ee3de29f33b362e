"""`canvas_to_input` and `ink_map` work at full resolution only in the ink's box, find specks
without labelling when they can, and skip numpy's wrappers: on a fixed set of drawings of every
kind they give what the whole-canvas recipe gives (`support.preprocess_reference`), and each
shortcut gives what the function it replaces gives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from doodle.canvas import preprocess
from doodle.canvas.preprocess import BlankCanvasError, canvas_to_input, ink_map
from support.preprocess_reference import (
    ReferenceBlank,
    reference_canvas_to_input,
    reference_drawings,
    reference_ink_map,
    reference_ink_to_input,
)

ONE_GREY_LEVEL = 1 / 255


def outcome(function, canvas, blank_error):
    """What ``function`` makes of ``canvas``: its array, or "blank" when it raises ``blank_error``."""
    try:
        return function(canvas)
    except blank_error:
        return "blank"


@pytest.fixture(scope="module")
def drawings() -> list[tuple[str, np.ndarray]]:
    return reference_drawings()


@pytest.fixture(scope="module")
def references(drawings) -> list[tuple[str, np.ndarray, np.ndarray | str, np.ndarray | str]]:
    """Each drawing with the reference's ink map and input, or "blank" for both."""
    out = []
    for name, canvas in drawings:
        ink = outcome(reference_ink_map, canvas, ReferenceBlank)
        image = ink if isinstance(ink, str) else outcome(reference_ink_to_input, ink, ReferenceBlank)
        out.append((name, canvas, ink, image))
    return out


def test_the_set_holds_every_kind_of_drawing(drawings):
    names = " ".join(name for name, _ in drawings)
    for kind in (
        "pad",
        "hand-drawn",
        "doodle",
        "upload",
        "noise and specks",
        "dark on light",
        "float",
        "rgb",
        "touching the edge",
        "tiny",
        "1000 px canvas",
    ):
        assert kind in names
    assert len(drawings) >= 200


def test_inputs_are_the_whole_canvas_recipes_within_one_grey_level(references):
    worst, blank = {}, []
    for name, canvas, _, expected in references:
        got = outcome(canvas_to_input, canvas, BlankCanvasError)
        if isinstance(expected, str) or isinstance(got, str):
            assert isinstance(expected, str) and isinstance(got, str), name
            blank.append(name)
            continue
        assert got.shape == (28, 28) and got.dtype == np.float32
        worst[name] = float(np.abs(got - expected).max())
    off = {name: difference for name, difference in worst.items() if difference > ONE_GREY_LEVEL}
    assert not off, off
    assert len(blank) <= 2, blank  # a 1 px line shrunk to a tiny drawing: too faint for both


def test_ink_maps_are_the_whole_canvas_recipes_within_one_grey_level(references):
    for name, canvas, expected, _ in references:
        got = outcome(ink_map, canvas, BlankCanvasError)
        if isinstance(expected, str) or isinstance(got, str):
            assert isinstance(expected, str) and isinstance(got, str), name
            continue
        assert got.shape == expected.shape and got.dtype == np.float32, name
        assert np.abs(got - expected).max() <= ONE_GREY_LEVEL, name


def test_the_shortcuts_are_taken_on_the_set(drawings, monkeypatch):
    """The set exercises both ways of finding specks: shown absent without labelling (most
    drawings), and labelled (specks, 1-2 px pens)."""
    outcomes = []
    check = preprocess._surely_no_specks

    def recording(mask, min_size):
        outcomes.append(check(mask, min_size))
        return outcomes[-1]

    monkeypatch.setattr(preprocess, "_surely_no_specks", recording)
    for _, canvas in drawings:
        outcome(canvas_to_input, canvas, BlankCanvasError)
    assert sum(outcomes) > len(outcomes) / 2
    assert not all(outcomes)


@pytest.mark.parametrize(
    "canvas",
    [
        np.zeros((280, 280), np.uint8),
        np.full((280, 280), 255, np.uint8),
        np.random.default_rng(0).normal(128, 20, (280, 280)).clip(0, 255).astype(np.uint8),
        np.pad(np.full((2, 2), 255, np.uint8), 139),
        np.pad(np.full((2, 2), 1.0, np.float32), 139),
    ],
    ids=["black", "white", "noise only", "one speck", "one speck, float"],
)
def test_blank_canvases_are_blank_for_both(canvas):
    with pytest.raises(ReferenceBlank):
        reference_canvas_to_input(canvas)
    with pytest.raises(BlankCanvasError):
        canvas_to_input(canvas)


def random_masks():
    rng = np.random.default_rng(3)
    for density in (0.02, 0.2, 0.5, 0.8):
        yield rng.random((60, 45)) < density
    blobs = ndimage.binary_dilation(rng.random((120, 90)) < 0.003, iterations=4)
    blobs[rng.random(blobs.shape) < 0.002] = True  # specks among thick strokes
    yield blobs
    lines = np.zeros((80, 80), bool)
    lines[10, 5:70] = True
    lines[20:70, 40] = True
    yield lines
    yield np.ones((30, 30), bool)
    yield np.zeros((30, 30), bool)


@pytest.mark.parametrize("min_size", [3, 7, 9, 12, 30])
def test_drop_specks_keeps_exactly_the_large_regions(min_size):
    for mask in random_masks():
        labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= min_size
        keep[0] = False
        np.testing.assert_array_equal(preprocess._drop_specks(mask, min_size), keep[labels])


def test_no_specks_is_only_claimed_when_true():
    for mask in random_masks():
        for min_size in (3, 7, 9, 12, 30):
            if preprocess._surely_no_specks(mask, min_size):
                labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
                assert count == 0 or np.bincount(labels.ravel())[1:].min() >= min_size


def test_grow_cross_is_binary_dilation():
    for mask in random_masks():
        for steps in (1, 2, 3):
            np.testing.assert_array_equal(
                preprocess._grow_cross(mask, steps), ndimage.binary_dilation(mask, iterations=steps)
            )


def test_median_and_percentile_are_numpys():
    rng = np.random.default_rng(4)
    for size in (1, 2, 3, 4, 5, 10, 11, 99, 100, 101, 1116, 4999):
        for values in (rng.random(size).astype(np.float32), rng.integers(0, 4, size).astype(np.float32) / 3):
            assert preprocess._median(values.copy()) == float(np.median(values))
            assert preprocess._percentile(values.copy(), 99) == float(np.percentile(values, 99))
            assert preprocess._percentile(values.copy(), 50) == float(np.percentile(values, 50))


def test_centre_of_mass_is_scipys():
    rng = np.random.default_rng(5)
    for shape in ((20, 20), (20, 7), (3, 20), (1, 1)):
        plane = rng.random(shape).astype(np.float32)
        plane[plane < 0.5] = 0
        plane.flat[0] = 1.0
        assert preprocess._centre_of_mass(plane) == ndimage.center_of_mass(plane)


def test_byte_thresholding_is_the_float_comparison():
    canvas = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for background in (0.0, 0.2, 0.5, 0.51, 0.8, 1.0):
        for polarity in (1.0, -1.0):
            for threshold in (0.1, 0.1234, 0.3, 0.9):
                grey = canvas.astype(np.float32) / np.float32(255.0)
                expected = polarity * (grey - np.float32(background)) > threshold
                got = preprocess._ink_mask(canvas, background, polarity, threshold)
                np.testing.assert_array_equal(got, expected)


def test_box_of_is_the_rows_and_columns_holding_true_pixels():
    corner = np.zeros((7, 9), bool)
    corner[-1, -1] = True
    for mask in [*random_masks(), corner, np.zeros((1, 1), bool), np.ones((1, 5), bool)]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        expected = None if rows.size == 0 else (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
        assert preprocess._box_of(mask) == expected
        assert preprocess._box_of(mask[:, 2:]) == preprocess._box_of(np.ascontiguousarray(mask[:, 2:]))


def test_byte_peak_is_the_percentile_whenever_it_answers():
    """A window of bytes, dark strokes (mostly 0, some grey) on white: the strongest byte's
    shortcut gives the sorted percentile exactly, and declines when that byte is too rare."""
    rng = np.random.default_rng(6)
    answered = declined = 0
    for solid in (0.0, 0.002, 0.01, 0.05, 0.5, 0.95):
        for _ in range(20):
            grey = np.full((40, 30), 255, np.uint8)
            ink = rng.random(grey.shape) < 0.3
            grey[ink] = rng.integers(1, 120, ink.sum())
            grey[ink & (rng.random(grey.shape) < solid)] = rng.integers(0, 3)
            background = float(rng.uniform(0.8, 1.0))
            signed = np.float32(background) - preprocess._BYTE_LEVELS
            mask = grey < 128
            got = preprocess._byte_peak(grey, -1.0, signed, int(np.count_nonzero(mask)))
            if got is None:
                declined += 1
                continue
            answered += 1
            assert got == preprocess._percentile(signed.take(grey[mask]), 99)
    assert answered and declined


def test_counting_inked_bytes_is_counting_the_looked_up_ink():
    rng = np.random.default_rng(7)
    for polarity in (1.0, -1.0):
        for _ in range(30):
            background, floor, peak = (float(value) for value in np.sort(rng.random(3)))
            if polarity < 0:
                background = 1.0 - background
            levels = preprocess._BYTE_LEVELS - np.float32(background)
            if polarity < 0:
                np.negative(levels, out=levels)
            levels -= floor
            levels /= max(peak - floor, 1e-6)
            np.clip(levels, 0.0, 1.0, out=levels)
            grey = rng.integers(0, 256, (23, 31)).astype(np.uint8)
            expected = np.count_nonzero(levels.take(grey))
            assert preprocess._count_inked_bytes(grey, levels, polarity) == expected
