"""The multilayer perceptron in NumPy alone: parameters, forward pass and probabilities.

Parameters are a plain dict of arrays named as in `notebooks/02_derive.ipynb`:
``W1, b1, W2, b2, ..., WL, bL`` with ``W_l`` of shape ``(fan_in, fan_out)`` and ``b_l`` of
shape ``(fan_out,)``. A hidden layer is ``h_l = relu(h_{l-1} @ W_l + b_l)``; the last layer
gives logits. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

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


class OneImageMLP(NamedTuple):
    """The network rearranged for one image at a time (`fold_for_one_image`, `one_image_probabilities`).

    The input standardisation ``(x - mean) / std`` is folded into the first layer, so that a
    background pixel (0) stays 0 and its weight row is never read, and the softmax temperature
    into the last. Same maths as `forward` after the standardisation, other rounding (float32,
    another order of the sums): probabilities within about 1e-6 of `forward`'s.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]


def fold_for_one_image(params: Params, mean: float, std: float, temperature: float = 1.0) -> OneImageMLP:
    """``params`` with ``W1 / std``, ``b1 - (mean / std) * W1.sum(axis=0)`` and the last layer
    divided by ``temperature``, computed in float64 and stored in the parameters' dtype; hidden
    layers in between are the same arrays, not copies."""
    count = n_layers(params)
    weights = [params[f"W{i}"] for i in range(1, count + 1)]
    biases = [params[f"b{i}"] for i in range(1, count + 1)]
    dtype = weights[0].dtype
    first = weights[0].astype(np.float64)
    biases[0] = (biases[0] - (mean / std) * first.sum(axis=0)).astype(dtype)
    weights[0] = (first / std).astype(dtype)
    weights[-1] = (weights[-1].astype(np.float64) / temperature).astype(dtype)
    biases[-1] = (biases[-1].astype(np.float64) / temperature).astype(dtype)
    return OneImageMLP(tuple(np.ascontiguousarray(w) for w in weights), tuple(biases))


def one_image_probabilities(folded: OneImageMLP, x: np.ndarray) -> np.ndarray:
    """``(784,)`` raw pixels (the scale the normalisation was fitted on) -> ``(10,)`` probabilities.

    Each hidden layer reads only the weight rows of its nonzero inputs: the ink of a digit (a fifth
    of MNIST's pixels) and the active ReLU units (about a fifth of a trained hidden layer). One image
    multiplies a vector by each matrix, which costs the bytes of the matrix read, so gathering the
    rows that count reads a fraction of the 2.6 MB of a 784-512-512-10 network; with half the
    inputs or more nonzero the whole matrix is read as `forward` does, and so is the output layer's
    (ten numbers a row: gathering costs more than it saves).
    """
    h = x
    last = len(folded.weights) - 1
    for layer, (W, b) in enumerate(zip(folded.weights, folded.biases)):
        if layer < last:
            rows = h.nonzero()[0]
            z = h[rows] @ W.take(rows, axis=0) if 2 * rows.size < h.size else h @ W
            z += b
            np.maximum(z, 0, out=z)
        else:
            z = h @ W
            z += b
        h = z
    h -= h.max()
    np.exp(h, out=h)
    h /= h.sum()
    return h


Cache = dict[str, np.ndarray]


class Workspace:
    """Arrays reused from one training step to the next, so the hot path allocates nothing.

    Pass one to :func:`forward_train`, :func:`backward` or :func:`loss_and_grads`: their
    results (activations, ``dlogits``, gradients) are then written into buffers kept here,
    keyed by name and shape (a smaller last batch gets its own set). Each call overwrites what
    the previous call with the same workspace returned, so copy anything you want to keep.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``, the same one on every call."""
        key = (name, tuple(shape), np.dtype(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buffer


def _buffer(workspace: Workspace | None, name: str, shape: tuple[int, ...], dtype: np.dtype):
    return None if workspace is None else workspace.get(name, shape, dtype)


def forward_train(
    params: Params, x: np.ndarray, workspace: Workspace | None = None
) -> tuple[np.ndarray, Cache]:
    """Forward pass that keeps what :func:`backward` needs.

    ``x``: ``(N, 784)`` in the dtype of the parameters (float32 in training, float64 in
    gradient checks). Returns ``logits`` ``(N, 10)`` and ``cache`` with ``h0 = x`` and the
    hidden activations ``h1 .. h{L-1}``, each ``(N, fan_out)`` in the same dtype. The
    pre-activations ``z_l`` are not kept: ``h_l > 0`` exactly where ``z_l > 0``, so the ReLU
    mask can be read off ``h_l`` and one array per layer is saved.
    """
    count = n_layers(params)
    cache: Cache = {"h0": x}
    h = x
    for i in range(1, count + 1):
        W, b = params[f"W{i}"], params[f"b{i}"]
        name = "logits" if i == count else f"h{i}"
        # z_l = h_{l-1} @ W_l + b_l, then ReLU in place: z_l's buffer becomes h_l.
        z = np.matmul(h, W, out=_buffer(workspace, name, (x.shape[0], W.shape[1]), W.dtype))
        z += b
        if i == count:
            return z, cache
        np.maximum(z, 0, out=z)
        cache[name] = h = z
    raise AssertionError("unreachable")


def softmax_cross_entropy(
    logits: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``softmax(logits)`` against labels, and its gradient.

    ``logits``: ``(N, K)`` float; ``y``: ``(N,)`` integer labels in ``[0, K)``. With label
    smoothing ``eps`` the target is ``(1 - eps) * onehot(y) + eps / K``. Returns the loss as
    a Python float and ``dlogits = (softmax(logits) - target) / N``, ``(N, K)`` in the dtype of
    ``logits`` (a new array; ``logits`` is left unchanged). Stable for any logits: the row
    maximum is subtracted before ``exp``.
    """
    n, k = logits.shape
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_sum_exp = np.log(sum_exp)
    # log p = shifted - log_sum_exp, computed only where the loss needs it.
    loss = float(log_sum_exp.sum() - shifted[rows, y].sum()) * (1.0 - label_smoothing)
    if label_smoothing:
        mean_log_p = shifted.mean(axis=1, keepdims=True) - log_sum_exp
        loss -= float(mean_log_p.sum()) * label_smoothing
    loss /= n
    # dlogits = (p - target) / N, built in the exp buffer.
    dlogits = exp
    dlogits *= 1.0 / n / sum_exp
    dlogits[rows, y] -= (1.0 - label_smoothing) / n
    if label_smoothing:
        dlogits -= label_smoothing / k / n
    return loss, dlogits


def backward(params: Params, cache: Cache, dlogits: np.ndarray, workspace: Workspace | None = None) -> Params:
    """Gradients of the loss with respect to every parameter.

    ``dlogits``: ``(N, 10)``, the gradient of the (already batch-averaged) loss with respect to
    the logits, as :func:`softmax_cross_entropy` returns it; ``cache`` from
    :func:`forward_train`. Returns ``{"W1": dW1, "b1": db1, ...}`` with the shapes and dtype of
    ``params``. The cache's hidden activations are overwritten (they become ``dz_l``), so a
    cache serves one backward pass; ``cache["h0"]``, the input batch, is left unchanged.
    """
    count = n_layers(params)
    grads: Params = {}
    dz = dlogits
    n = dlogits.shape[0]
    for i in range(count, 0, -1):
        W = params[f"W{i}"]
        h_prev = cache[f"h{i - 1}"]
        # dW_l = h_{l-1}^T dz_l, db_l = sum of dz_l over the batch.
        grads[f"W{i}"] = np.matmul(h_prev.T, dz, out=_buffer(workspace, f"dW{i}", W.shape, W.dtype))
        grads[f"b{i}"] = dz.sum(axis=0, out=_buffer(workspace, f"db{i}", W.shape[1:], W.dtype))
        if i == 1:
            break
        # dh_{l-1} = dz_l W_l^T, then through ReLU: dz_{l-1} = dh_{l-1} * (h_{l-1} > 0).
        # h_{l-1} is not needed after this, so its buffer receives dz_{l-1}.
        dh = np.matmul(dz, W.T, out=_buffer(workspace, f"dh{i - 1}", (n, W.shape[0]), W.dtype))
        np.multiply(dh, h_prev > 0, out=h_prev)
        dz = h_prev
    return grads


def input_gradient(params: Params, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
    """Gradient of a score of the logits with respect to the input batch.

    ``x``: ``(N, 784)``; ``dlogits``: ``(N, 10)``, the gradient of the score with respect to the
    logits (e.g. ``+1`` at one class and ``-1`` at another for the margin between them). Returns
    ``dx = dz_1 W_1^T`` ``(N, 784)`` in the dtype of ``params``: the backward pass of
    :func:`backward` carried one step further, from the first layer's ``dz_1`` to its input.
    """
    count = n_layers(params)
    _, cache = forward_train(params, x)
    dz = dlogits.astype(params["W1"].dtype, copy=False)
    for i in range(count, 0, -1):
        # dh_{l-1} = dz_l W_l^T; below the first layer dh_0 is the input's gradient.
        dh = dz @ params[f"W{i}"].T
        if i == 1:
            return dh
        dz = dh * (cache[f"h{i - 1}"] > 0)
    raise AssertionError("unreachable")


def weight_decay_penalty(params: Params, weight_decay: float) -> float:
    """``0.5 * weight_decay * sum_l ||W_l||^2`` (weights only, biases are not decayed)."""
    total = 0.0
    for key, value in params.items():
        if key.startswith("W"):
            flat = value.ravel()
            total += float(np.dot(flat, flat))
    return 0.5 * weight_decay * total


class Step(NamedTuple):
    """What one training step computes: ``loss`` (float), ``grads`` (like ``params``) and the
    batch's ``logits`` ``(N, 10)`` (for the running training accuracy)."""

    loss: float
    grads: Params
    logits: np.ndarray


def loss_and_grads(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    workspace: Workspace | None = None,
) -> Step:
    """Loss, gradients and logits for one batch: ``x`` ``(N, 784)``, ``y`` ``(N,)`` int.

    The one training step's maths: `forward_train` -> `softmax_cross_entropy` -> `backward`, as
    `doodle.model.train` runs it every step, the derivation notebook checks it and the throughput
    benchmark times it. The loss is the mean cross-entropy (optionally label-smoothed) plus the
    L2 term ``0.5 * weight_decay * sum ||W_l||^2`` (weights only), whose gradient
    ``weight_decay * W_l`` is added to ``dW_l`` (training passes 0 and lets AdamW decay the
    weights). Gradients have the shapes and dtype of ``params``. With a :class:`Workspace` no
    large array is allocated, and the returned gradients and logits are overwritten by the next
    call.
    """
    logits, cache = forward_train(params, x, workspace)
    loss, dlogits = softmax_cross_entropy(logits, y, label_smoothing)
    grads = backward(params, cache, dlogits, workspace)
    if weight_decay:
        loss += weight_decay_penalty(params, weight_decay)
        for key, value in params.items():
            if key.startswith("W"):
                grads[key] += weight_decay * value
    return Step(loss, grads, logits)
