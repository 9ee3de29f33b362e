"""Tests of doodle.model.augment: geometry conventions, stroke width, range, shapes and determinism."""

import numpy as np
import pytest

from doodle.model import augment


def _digits(count: int = 6, seed: int = 0) -> np.ndarray:
    """Blocky synthetic strokes well inside the frame: ``(count, 28, 28)`` float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.float32)
    for image in images:
        for _ in range(3):
            row, col = rng.integers(8, 18, size=2)
            length = rng.integers(4, 8)
            if rng.random() < 0.5:
                image[row : row + 2, col : col + length] = rng.uniform(0.6, 1.0)
            else:
                image[row : row + length, col : col + 2] = rng.uniform(0.6, 1.0)
    return images


def _centre_of_mass(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:28, 0:28]
    mass = images.sum(axis=(1, 2))
    return (images * rows).sum(axis=(1, 2)) / mass, (images * cols).sum(axis=(1, 2)) / mass


@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (0, -3), (1.5, 0.5), (-2.25, 1.0)])
def test_shift_moves_the_centre_of_mass_by_the_shift(dx, dy):
    images = _digits()
    row0, col0 = _centre_of_mass(images)
    row1, col1 = _centre_of_mass(augment.shift(images, dx, dy))
    np.testing.assert_allclose(col1 - col0, dx, atol=1e-3)
    np.testing.assert_allclose(row1 - row0, dy, atol=1e-3)


def test_rotate_90_degrees_equals_rot90():
    images = _digits()
    np.testing.assert_allclose(augment.rotate(images, 90), np.rot90(images, k=1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(augment.rotate(images, -90), np.rot90(images, k=-1, axes=(1, 2)), atol=1e-5)


def test_small_rotation_keeps_ink_and_turns_a_bar():
    bar = np.zeros((1, 28, 28), dtype=np.float32)
    bar[0, 13:15, 6:22] = 1.0  # horizontal
    turned = augment.rotate(bar, 30)
    assert turned.sum() == pytest.approx(bar.sum(), rel=0.05)
    rows, cols = np.nonzero(turned[0] > 0.5)
    slope = np.polyfit(cols, rows, 1)[0]
    # Counter-clockwise on screen: the right end rises, so rows fall as columns grow.
    assert slope == pytest.approx(-np.tan(np.deg2rad(30)), abs=0.1)


def test_scale_changes_the_spread_of_ink():
    images = _digits()
    row, col = np.mgrid[0:28, 0:28]

    def spread(batch):
        mass = batch.sum(axis=(1, 2))
        return np.sqrt((batch * ((row - 13.5) ** 2 + (col - 13.5) ** 2)).sum(axis=(1, 2)) / mass)

    ratio = spread(augment.scale(images, 1.25)) / spread(images)
    np.testing.assert_allclose(ratio, 1.25, rtol=0.06)
    assert (spread(augment.scale(images, 0.8)) < spread(images)).all()


def test_stroke_width_thickens_and_thins():
    images = _digits()
    ink = images.sum(axis=(1, 2))
    thicker = augment.stroke_width(images, 1).sum(axis=(1, 2))
    thinner = augment.stroke_width(images, -1).sum(axis=(1, 2))
    half = augment.stroke_width(images, 0.5).sum(axis=(1, 2))
    assert (thicker > ink * 1.3).all()
    assert (thinner < ink).all()
    assert ((half > ink) & (half < thicker)).all()
    np.testing.assert_array_equal(augment.stroke_width(images, 0), images)


def test_per_image_parameters_match_one_at_a_time():
    images = _digits(3)
    together = augment.affine(images, degrees=[0, 10, -20], factor=[1, 0.9, 1.1], dx=[1, 0, -1], dy=[0, 2, 0])
    one = augment.affine(images[1:2], degrees=10, factor=0.9, dx=0, dy=2)
    np.testing.assert_allclose(together[1:2], one, atol=1e-6)


def test_random_augment_is_deterministic_in_range_and_keeps_shape():
    images = _digits(40)
    options = dict(max_rotation=15, max_shift=3, scale_range=(0.8, 1.2), elastic_alpha=34.0, stroke_prob=0.7)
    first = augment.random_augment(images, np.random.default_rng(7), **options)
    second = augment.random_augment(images, np.random.default_rng(7), **options)
    other = augment.random_augment(images, np.random.default_rng(8), **options)
    assert first.shape == images.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, images)


@pytest.mark.parametrize(
    "transform",
    [
        lambda x: augment.rotate(x, 17),
        lambda x: augment.shift(x, 1.3, -0.7),
        lambda x: augment.scale(x, 1.2),
        lambda x: augment.stroke_width(x, 1.5),
        lambda x: augment.stroke_width(x, -0.7),
        lambda x: augment.elastic(x, np.random.default_rng(0), alpha=34.0, sigma=4.0),
        lambda x: augment.random_augment(x, np.random.default_rng(0)),
    ],
)
def test_outputs_stay_float32_in_unit_range(transform):
    images = _digits() * 1.0
    images[0, 5:9, 5:9] = 1.0
    out = transform(images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_elastic_moves_ink_a_little():
    images = _digits()
    bent = augment.elastic(images, np.random.default_rng(3), alpha=34.0, sigma=4.0)
    assert 0.5 < bent.sum() / images.sum() < 1.5
    assert np.abs(bent - images).max() > 0.1


def test_bad_shapes_and_factors_are_rejected():
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\)"):
        augment.rotate(np.zeros((2, 784), dtype=np.float32), 10)
    with pytest.raises(ValueError, match="positive"):
        augment.scale(_digits(2), 0.0)
    with pytest.raises(ValueError, match="one value per image"):
        augment.shift(_digits(2), [1, 2, 3], 0)


def test_one_warp_for_the_batch_equals_per_image_warps():
    images = _digits(4)
    shared = augment.affine(images, degrees=12.0, factor=0.9, dx=1.5, dy=-2.0)
    per_image = augment.affine(images, degrees=[12.0] * 4, factor=[0.9] * 4, dx=[1.5] * 4, dy=[-2.0] * 4)
    np.testing.assert_allclose(shared, per_image, atol=1e-5)
