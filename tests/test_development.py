"""doodle.study.development: the doodle and robustness sets come from validation digits, stratified by
digit, the same for every caller with the same labels, counts and seed."""

import numpy as np
import pytest

from doodle.canvas import doodles
from doodle.model.inputs import as_float_images
from doodle.study.development import development_sample, development_sets
from support.synthetic import synthetic_mnist


@pytest.fixture(scope="module")
def validation():
    images, labels = synthetic_mnist(200, 5)
    return images.reshape(len(images), -1), labels.astype(np.int64)


def test_sets_are_stratified_samples_of_the_validation_digits(validation):
    images, labels = validation
    sets = development_sets(images, labels, 30, 80, seed=3)
    assert np.array_equal(sets.doodle_rows, development_sample(labels, 30, 3))
    assert np.array_equal(sets.robust_rows, development_sample(labels, 80, 3))
    assert np.array_equal(sets.doodle_labels, labels[sets.doodle_rows])
    assert np.array_equal(sets.robust_labels, labels[sets.robust_rows])
    assert np.array_equal(sets.robust_images, as_float_images(images[sets.robust_rows]))
    assert sets.robust_images.shape == (80, 28, 28) and sets.robust_images.dtype == np.float32
    assert sets.doodle_images.shape == (30, 28, 28) and sets.doodle_images.dtype == np.float32
    assert np.array_equal(sets.doodle_images, doodles.make_doodles(images[sets.doodle_rows], 3))
    # Every digit of the source keeps its share (within one image).
    share = np.bincount(labels, minlength=10) / len(labels)
    assert np.all(np.abs(np.bincount(sets.robust_labels, minlength=10) - 80 * share) < 1.0 + 1e-9)


def test_development_sample_is_stratified_seeded_and_sorted():
    labels = np.repeat(np.arange(10), [50, 60, 40, 55, 45, 50, 52, 48, 50, 50])
    rows = development_sample(labels, 100, seed=7)
    assert rows.size == 100 and np.all(np.diff(rows) > 0)
    shares = np.bincount(labels[rows], minlength=10)
    expected = np.bincount(labels, minlength=10) * 100 / labels.size
    assert np.all(np.abs(shares - expected) < 1)  # each class gets its share, to the nearest image
    assert np.array_equal(rows, development_sample(labels, 100, seed=7))
    assert not np.array_equal(rows, development_sample(labels, 100, seed=8))


@pytest.mark.parametrize("count", [0, 501])
def test_development_sample_refuses_impossible_counts(count):
    with pytest.raises(ValueError, match="count must be in 1..500"):
        development_sample(np.zeros(500, dtype=np.int64), count, seed=1)


def test_development_sample_refuses_labels_that_are_not_a_vector():
    with pytest.raises(ValueError, match="labels must be 1-D"):
        development_sample(np.zeros((10, 2), dtype=np.int64), 5, seed=1)


def test_same_inputs_same_sets_and_another_seed_another_sample(validation):
    images, labels = validation
    first = development_sets(images, labels, 20, 40, seed=9)
    again = development_sets(images, labels, 20, 40, seed=9)
    other = development_sets(images, labels, 20, 40, seed=10)
    assert np.array_equal(first.doodle_images, again.doodle_images)
    assert np.array_equal(first.robust_rows, again.robust_rows)
    assert not np.array_equal(first.robust_rows, other.robust_rows)


def test_mismatched_images_and_labels_are_refused(validation):
    images, labels = validation
    with pytest.raises(ValueError, match="199 validation images for 200 labels"):
        development_sets(images[:-1], labels, 10, 10, seed=1)
    with pytest.raises(ValueError, match="count must be in 1..200"):
        development_sets(images, labels, 201, 10, seed=1)
