"""Synthetic stand-ins for MNIST images, shared by the fixtures and tests that need raw data."""

from __future__ import annotations

import numpy as np


def synthetic_mnist(n_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random digits-like data: images (n, 28, 28) uint8 with some blank background and
    some saturated ink, labels (n,) uint8 covering every class with unequal frequencies."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    images[images < 150] = 0
    images[:, :4, :] = 0
    labels = rng.choice(10, size=n_images, p=np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum()).astype(
        np.uint8
    )
    labels[:10] = np.arange(10)
    return images, labels
