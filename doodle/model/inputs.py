"""Raw images -> the network's inputs: the one standardisation that training, the model file
and every consumer (dashboard, API, evaluation, MLflow's pyfunc) apply.

Images arrive as MNIST bytes (uint8 0..255) or on the [0, 1] scale (float), as ``(N, 784)`` or
``(N, 28, 28)``; the network reads ``(N, 784)`` float32 ``(x - mean) / std`` with the mean and
standard deviation of the training pixels on the [0, 1] scale.
"""

from __future__ import annotations

import numpy as np

from doodle.constants import IMAGE_SIDE, N_PIXELS

WRONG_PIXEL_COUNT = "expected {expected} pixels per image, as (N, 784) or (N, 28, 28); got shape {shape}"
_BYTE_SCALE = np.float32(1.0 / 255.0)


def _flat(images: np.ndarray) -> np.ndarray:
    """Any array of N images -> a ``(N, 784)`` view (or copy) of it; `ValueError` otherwise."""
    array = np.asarray(images)
    if array.ndim < 2 or np.prod(array.shape[1:]) != N_PIXELS:
        raise ValueError(WRONG_PIXEL_COUNT.format(expected=N_PIXELS, shape=array.shape))
    return array.reshape(len(array), N_PIXELS)


def as_float_images(images: np.ndarray) -> np.ndarray:
    """``(N, 784)`` or ``(N, 28, 28)``, uint8 0..255 or float 0..1 -> ``(N, 28, 28)`` float32 in [0, 1]."""
    flat = _flat(images)
    scale = _BYTE_SCALE if flat.dtype == np.uint8 else np.float32(1.0)
    return (flat.astype(np.float32) * scale).reshape(len(flat), IMAGE_SIDE, IMAGE_SIDE)


def standardize(
    images: np.ndarray, normalization: dict[str, float], out: np.ndarray | None = None
) -> np.ndarray:
    """Network inputs: ``(N, 784)`` or ``(N, 28, 28)``, uint8 0..255 or float 0..1 -> ``(N, 784)``
    float32 ``(x - mean) / std``, ``normalization = {"mean": m, "std": s}`` on the [0, 1] scale.

    ``out``, an ``(N, 784)`` float32 array, receives the result (no temporary is allocated);
    either way the numbers are the same, bit for bit.
    """
    flat = _flat(images)
    if out is None:
        out = np.empty(flat.shape, dtype=np.float32)
    elif out.shape != flat.shape or out.dtype != np.float32:
        raise ValueError(f"out must be {flat.shape} float32, got {out.shape} {out.dtype}")
    if flat.dtype == np.uint8:
        np.multiply(flat, _BYTE_SCALE, out=out, dtype=np.float32)
    else:
        out[...] = flat
    np.subtract(out, np.float32(normalization["mean"]), out=out)
    np.divide(out, np.float32(normalization["std"]), out=out)
    return out
