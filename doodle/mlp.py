"""The multilayer perceptron in NumPy alone: parameters, forward pass and probabilities.

Parameters are a plain dict of arrays named as in `notebooks/02_derive.ipynb`:
``W1, b1, W2, b2, ..., WL, bL`` with ``W_l`` of shape ``(fan_in, fan_out)`` and ``b_l`` of
shape ``(fan_out,)``. A hidden layer is ``h_l = relu(h_{l-1} @ W_l + b_l)``; the last layer
gives logits. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Params = dict[str, np.ndarray]


def n_layers(params: Params) -> int:
    """Number of affine layers (hidden layers + the output layer)."""
    return sum(1 for key in params if key.startswith("W"))


def layer_sizes_of(params: Params) -> list[int]:
    """``[784, hidden..., 10]`` read off the weight shapes."""
    count = n_layers(params)
    sizes = [int(params["W1"].shape[0])]
    sizes += [int(params[f"W{i}"].shape[1]) for i in range(1, count + 1)]
    return sizes


def init_params(layer_sizes: Sequence[int], seed: int, dtype: np.dtype = np.float32) -> Params:
    """He-initialised weights and zero biases for ``layer_sizes = [784, h1, ..., 10]``.

    ``W_l ~ N(0, 2 / fan_in)`` keeps the variance of ReLU activations constant from layer to
    layer. Deterministic from ``seed``.
    """
    if len(layer_sizes) < 2 or any(int(size) < 1 for size in layer_sizes):
        raise ValueError(f"layer sizes must be >= 2 positive integers, got {list(layer_sizes)}")
    rng = np.random.default_rng(seed)
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        std = np.sqrt(2.0 / fan_in)
        params[f"W{i}"] = (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype)
        params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
    return params


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def forward(params: Params, x: np.ndarray) -> np.ndarray:
    """Logits for a batch: ``(N, 784) -> (N, 10)`` in the dtype of the parameters."""
    count = n_layers(params)
    h = x
    for i in range(1, count):
        h = relu(h @ params[f"W{i}"] + params[f"b{i}"])
    return h @ params[f"W{count}"] + params[f"b{count}"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits: ``(N, K) -> (N, K)``, rows sum to 1."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
