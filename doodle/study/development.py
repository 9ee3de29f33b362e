"""The development sets: the doodle benchmark and the robustness curves' digits, built from a
stratified random sample of MNIST validation digits (`development_sample`).

Choices are tuned against these figures, so they never come from MNIST test, which is touched once
per reported result. `04_evaluate` and the seed study (`doodle.study.experiments.load_benchmarks`) both
call `development_sets`, so the notebook and the study measure the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doodle.canvas import doodles
from doodle.model.inputs import as_float_images


@dataclass(frozen=True)
class DevelopmentSets:
    """Rows are indices into the validation split (sorted int64); images ``(N, 28, 28)`` float32
    in [0, 1]; labels ``(N,)`` int64."""

    doodle_rows: np.ndarray
    doodle_images: np.ndarray  # the sampled digits redrawn with a round pen (doodle.canvas.doodles)
    doodle_labels: np.ndarray
    robust_rows: np.ndarray
    robust_images: np.ndarray  # the sampled digits as they are, for the transforms of doodle.model.augment
    robust_labels: np.ndarray


def development_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of a stratified random sample of ``count`` items of ``labels``, sorted: ``(N,)``
    integer labels -> ``(count,)`` int64.

    The development benchmarks (doodles, robustness curves) are drawn this way from the
    validation split, so tuning never looks at MNIST test, and no ordering of the source
    (the first test digits are harder than the last) leaks into a figure. Each class gets its
    share of ``count`` (largest remainders break ties); the choice depends only on the labels,
    ``count`` and ``seed``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    if not 0 < count <= labels.size:
        raise ValueError(f"count must be in 1..{labels.size}, got {count}")
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * (count / labels.size)
    quota = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - quota), kind="stable")
    quota[remainder_order[: count - int(quota.sum())]] += 1
    rng = np.random.default_rng([int(seed), 17])
    chosen = [rng.permutation(np.flatnonzero(labels == value))[:take] for value, take in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def development_sets(
    val_uint8: np.ndarray, val_labels: np.ndarray, doodle_count: int, robustness_count: int, seed: int
) -> DevelopmentSets:
    """The doodle and robustness sets from the validation split: ``(N, 784)`` uint8 images and
    ``(N,)`` labels, the evaluate section's ``doodle_count`` and ``robustness_count``, ``base.seed``.
    Each sample is stratified by digit and depends only on the labels, its count and the seed;
    doodle ``i`` of the sample is drawn with the pen, size and place of ``(seed, i)``."""
    val_uint8 = np.asarray(val_uint8)
    val_labels = np.asarray(val_labels)
    if len(val_uint8) != len(val_labels):
        raise ValueError(f"{len(val_uint8)} validation images for {len(val_labels)} labels")
    doodle_rows = development_sample(val_labels, int(doodle_count), seed)
    robust_rows = development_sample(val_labels, int(robustness_count), seed)
    return DevelopmentSets(
        doodle_rows=doodle_rows,
        doodle_images=doodles.make_doodles(val_uint8[doodle_rows], seed),
        doodle_labels=val_labels[doodle_rows],
        robust_rows=robust_rows,
        robust_images=as_float_images(val_uint8[robust_rows]),
        robust_labels=val_labels[robust_rows],
    )
