"""The input gradient and the attribution map against central finite differences (float64,
tiny network), and the facts the dashboard and the API rely on."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.model import mlp
from doodle.model.model_io import save_model, top_two
from doodle.reading.explain import (
    attribution,
    explain,
    first_layer_activations,
    margin_gradient,
    unit_pattern,
)


def finite_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = f(x)
        x[index] = old - eps
        down = f(x)
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("sizes", [[784, 10], [784, 16, 10], [784, 16, 12, 10]])
def test_input_gradient_matches_finite_differences(sizes):
    rng = np.random.default_rng(1)
    params = mlp.init_params(sizes, seed=2, dtype=np.float64)
    for key in params:
        if key.startswith("b"):
            params[key] = rng.normal(0, 0.1, params[key].shape)  # nonzero biases: ReLU kinks move
    x = rng.normal(size=(3, 784))
    c = rng.normal(size=(3, 10))  # score = sum(c * logits): any linear read-out of the logits

    def score(x_: np.ndarray) -> float:
        return float((c * mlp.forward(params, x_)).sum())

    analytic = mlp.input_gradient(params, x, c)
    assert analytic.shape == x.shape and analytic.dtype == np.float64
    numeric = finite_difference(score, x.copy())
    relative = np.abs(analytic - numeric).max() / max(np.abs(numeric).max(), 1e-12)
    assert relative < 1e-7


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    params = mlp.init_params([784, 24, 16, 10], seed=5, dtype=np.float64)
    rng = np.random.default_rng(0)
    params = {k: (v if k.startswith("W") else rng.normal(0, 0.05, v.shape)) for k, v in params.items()}
    return save_model(tmp_path_factory.mktemp("m"), params, normalization={"mean": 0.13, "std": 0.31})


@pytest.fixture
def image() -> np.ndarray:
    picture = np.zeros((28, 28))
    picture[5:23, 12:15] = 1.0
    picture[5:8, 8:20] = 0.7
    return picture.reshape(784)


def test_margin_gradient_is_the_pixel_scale_finite_difference(model, image):
    second = top_two(model.predict_proba(image[None]))
    guess, runner_up = second.digits, second.runner_ups

    def margin(pixels: np.ndarray) -> float:
        logits = mlp.forward(model.params, model.normalize(pixels[None]).astype(np.float64))[0]
        return float(logits[guess[0]] - logits[runner_up[0]])

    analytic = margin_gradient(model, image[None], guess, runner_up)[0]
    pixels = np.flatnonzero(image)[::7].tolist() + [0, 400, 783]  # some ink, some background
    numeric = []
    for i in pixels:
        step = np.zeros(784)
        step[i] = 1e-3
        numeric.append((margin(image + step) - margin(image - step)) / 2e-3)
    np.testing.assert_allclose(analytic[pixels], numeric, rtol=1e-3, atol=1e-4)


def test_attribution_is_gradient_times_input_and_zero_on_background(model, image):
    second = top_two(model.predict_proba(image[None]))
    guess, runner_up = second.digits, second.runner_ups
    a = attribution(model, image[None], guess, runner_up)[0]
    assert a.shape == (784,) and a.dtype == np.float32
    assert np.all(a[image == 0] == 0) and np.any(a[image > 0] != 0)
    g = margin_gradient(model, image[None], guess, runner_up)[0]
    np.testing.assert_allclose(a, image * g, rtol=1e-6)
    # Swapping the two digits flips every sign.
    np.testing.assert_allclose(attribution(model, image[None], runner_up, guess)[0], -a, rtol=1e-6)


def test_explain_one_image(model, image):
    why = explain(model, image.reshape(28, 28), top_units=5)
    digits, probs = model.predict(image[None])
    assert why.digit == int(digits[0]) and why.runner_up != why.digit
    np.testing.assert_allclose(why.probabilities, probs[0])
    h1 = first_layer_activations(model, image[None])[0]
    assert h1.shape == (24,)
    assert why.units.tolist() == np.argsort(-h1, kind="stable")[:5].tolist()
    np.testing.assert_allclose(why.activations, h1[why.units], rtol=1e-6)
    assert list(why.activations) == sorted(why.activations, reverse=True)
    pattern = unit_pattern(model, int(why.units[0]))
    assert pattern.shape == (28, 28)
    np.testing.assert_allclose(pattern.reshape(-1), model.params["W1"][:, why.units[0]], rtol=1e-6)
