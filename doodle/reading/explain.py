"""Why the network read a digit the way it did: which pixels pushed it toward its guess rather
than the runner-up, and what the first hidden layer's most active units respond to.

Attribution is gradient x input of the margin ``logit[guess] - logit[runner_up]``, taken through
the NumPy backward pass (`doodle.model.mlp.input_gradient`) on the 0..1 pixel scale. Since background
is 0, ``attribution[i]`` is the first-order change of the margin if ink pixel ``i`` were erased,
with the sign flipped: positive pixels argue for the guess, negative ones for the runner-up, and
background pixels get 0. The derivation is in `notebooks/02_derive.ipynb`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doodle.constants import IMAGE_SIDE, N_PIXELS
from doodle.model import mlp
from doodle.model.model_io import Model


def margin_gradient(model: Model, images: np.ndarray, target: np.ndarray, versus: np.ndarray) -> np.ndarray:
    """Gradient of ``logit[target] - logit[versus]`` with respect to the pixels.

    ``images``: ``(N, 784)`` or ``(N, 28, 28)`` float in [0, 1] (0 = background);
    ``target``, ``versus``: ``(N,)`` int digits. Returns ``(N, 784)`` float32. The temperature
    is left out: it divides every logit alike, so it scales the margin, not its direction.
    """
    x = model.normalize(images)
    n = len(x)
    dlogits = np.zeros((n, model.layer_sizes[-1]), dtype=x.dtype)
    rows = np.arange(n)
    dlogits[rows, np.asarray(target)] += 1.0
    dlogits[rows, np.asarray(versus)] -= 1.0
    # x = (pixels - mean) / std, so d/dpixels = d/dx / std.
    return (mlp.input_gradient(model.params, x, dlogits) / np.float32(model.input_std)).astype(np.float32)


def attribution(model: Model, images: np.ndarray, target: np.ndarray, versus: np.ndarray) -> np.ndarray:
    """Gradient x input of the margin ``logit[target] - logit[versus]``: ``(N, 784)`` float32,
    signed, 0 on background. See the module docstring for how to read it."""
    pixels = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return pixels * margin_gradient(model, pixels, target, versus)


def first_layer_activations(model: Model, images: np.ndarray) -> np.ndarray:
    """``h1 = relu(x W1 + b1)`` for a batch: ``(N, 784)`` in [0, 1] -> ``(N, H1)`` float32."""
    x = model.normalize(images)
    return mlp.relu(x @ model.params["W1"] + model.params["b1"])


@dataclass(frozen=True)
class Explanation:
    """One image read and explained."""

    digit: int  # the guess
    runner_up: int  # the second most likely digit
    unsure: bool  # the two are closer than the model's unsure margin ("9 or 3?")
    probabilities: np.ndarray  # (10,) float32
    attribution: np.ndarray  # (784,) float32, gradient x input of logit[digit] - logit[runner_up]
    units: np.ndarray  # (k,) int: the k most active first-layer units, most active first
    activations: np.ndarray  # (k,) float32: their activations h1


def explain(model: Model, image: np.ndarray, top_units: int = 8) -> Explanation:
    """Read one image ``(784,)`` or ``(28, 28)`` float in [0, 1] and say why: the guess, the
    runner-up, the attribution map of one over the other and the ``top_units`` most active
    first-layer units."""
    pixels = np.asarray(image, dtype=np.float32).reshape(1, N_PIXELS)
    probabilities = model.predict_proba(pixels)
    second = model.top_two(probabilities)
    h1 = first_layer_activations(model, pixels)[0]
    units = np.argsort(-h1, kind="stable")[:top_units]
    return Explanation(
        digit=int(second.digits[0]),
        runner_up=int(second.runner_ups[0]),
        unsure=bool(second.unsure[0]),
        probabilities=probabilities[0],
        attribution=attribution(model, pixels, second.digits, second.runner_ups)[0],
        units=units,
        activations=h1[units].astype(np.float32),
    )


def unit_pattern(model: Model, unit: int) -> np.ndarray:
    """The 784 incoming weights of first-layer unit ``unit`` as a ``(28, 28)`` float32 image:
    what the unit looks for (positive) and against (negative) in the standardised input."""
    return model.params["W1"][:, unit].reshape(IMAGE_SIDE, IMAGE_SIDE).astype(np.float32)
