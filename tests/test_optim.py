"""Optimizers against steps computed by hand, learning-rate schedules at known steps, and
weight decay's effect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodle.model import optim


def _params(dtype=np.float64):
    return {
        "W1": np.array([[1.0, -2.0], [0.5, 0.0]], dtype=dtype),
        "b1": np.array([0.1, -0.1], dtype=dtype),
    }


def _grads(dtype=np.float64):
    return {
        "W1": np.array([[0.5, 0.25], [-1.0, 2.0]], dtype=dtype),
        "b1": np.array([1.0, -0.5], dtype=dtype),
    }


def test_sgd_plain_step():
    params = _params()
    optim.SGD(params, lr=0.1, momentum=0.0).step(params, _grads())
    np.testing.assert_allclose(params["W1"], [[0.95, -2.025], [0.6, -0.2]])
    np.testing.assert_allclose(params["b1"], [0.0, -0.05])


def test_sgd_momentum_two_steps():
    params = _params()
    optimizer = optim.SGD(params, lr=0.1, momentum=0.9)
    optimizer.step(params, _grads())
    optimizer.step(params, _grads())
    # v1 = g, v2 = 0.9 g + g = 1.9 g; p = p0 - 0.1 g - 0.19 g = p0 - 0.29 g.
    np.testing.assert_allclose(params["W1"], [[0.855, -2.0725], [0.79, -0.58]])
    np.testing.assert_allclose(params["b1"], [-0.19, 0.045])


def test_sgd_nesterov_two_steps():
    params = _params()
    optimizer = optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    optimizer.step(params, _grads())
    optimizer.step(params, _grads())
    # Step 1: v = g, update g + 0.9 g = 1.9 g. Step 2: v = 1.9 g, update g + 1.71 g = 2.71 g.
    np.testing.assert_allclose(params["b1"], [0.1 - 0.1 * 4.61 * 1.0, -0.1 + 0.1 * 4.61 * 0.5])


def test_sgd_l2_weight_decay_on_weights_only():
    params = _params()
    optim.SGD(params, lr=0.1, momentum=0.0, weight_decay=0.5).step(params, _grads())
    # W -= 0.1 * (g + 0.5 W); biases take the plain step.
    np.testing.assert_allclose(params["W1"], [[0.9, -1.925], [0.575, -0.2]])
    np.testing.assert_allclose(params["b1"], [0.0, -0.05])


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match=optim.NESTEROV_NEEDS_MOMENTUM):
        optim.SGD(_params(), momentum=0.0, nesterov=True)


def test_adam_first_step_moves_each_weight_by_lr():
    params = _params()
    optim.Adam(params, lr=0.01, eps=0.0).step(params, _grads())
    # After bias correction m_hat = g and v_hat = g^2: the step is lr * sign(g).
    np.testing.assert_allclose(params["W1"], [[0.99, -2.01], [0.51, -0.01]], rtol=1e-12)
    np.testing.assert_allclose(params["b1"], [0.09, -0.09], rtol=1e-12)


def test_adam_two_steps_by_hand():
    params = {"W1": np.array([[1.0]]), "b1": np.array([0.0])}
    optimizer = optim.Adam(params, lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    optimizer.step(params, {"W1": np.array([[2.0]]), "b1": np.array([0.0])})
    optimizer.step(params, {"W1": np.array([[-1.0]]), "b1": np.array([0.0])})
    m = 0.9 * (0.1 * 2.0) + 0.1 * -1.0  # 0.08
    v = 0.99 * (0.01 * 4.0) + 0.01 * 1.0  # 0.0496
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.99**2)
    first_step = 0.1 * 2.0 / (2.0 + 1e-8)  # m_hat = 2, sqrt(v_hat) = 2
    expected = 1.0 - first_step - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert params["W1"][0, 0] == pytest.approx(expected, rel=1e-12)
    assert params["b1"][0] == 0.0


def test_adamw_decay_is_decoupled_and_spares_biases():
    params = _params()
    zero = {key: np.zeros_like(value) for key, value in params.items()}
    optimizer = optim.Adam(params, lr=0.1, weight_decay=0.5)
    optimizer.step(params, zero)
    # With zero gradients only the decoupled decay acts: W *= 1 - lr * wd.
    np.testing.assert_allclose(params["W1"], _params()["W1"] * 0.95, rtol=1e-12)
    np.testing.assert_array_equal(params["b1"], _params()["b1"])


def test_weight_decay_shrinks_weights_over_training():
    rng = np.random.default_rng(0)
    for name in ("sgd", "adam"):
        norms = {}
        for decay in (0.0, 0.1):
            params = {"W1": np.ones((4, 4)), "b1": np.zeros(4)}
            optimizer = optim.make_optimizer(name, params, lr=0.01, weight_decay=decay)
            for _ in range(50):
                grads = {"W1": rng.standard_normal((4, 4)) * 0.01, "b1": np.zeros(4)}
                optimizer.step(params, grads)
            norms[decay] = np.linalg.norm(params["W1"])
        assert norms[0.1] < norms[0.0], name


@pytest.mark.parametrize("name", ["sgd", "adam", "SGD", "Adam"])
def test_steps_update_in_place_and_keep_float32(name):
    params = _params(np.float32)
    before = {key: id(value) for key, value in params.items()}
    optimizer = optim.make_optimizer(name, params, lr=0.1, weight_decay=0.01)
    optimizer.step(params, _grads(np.float32), lr=0.05)
    assert {key: id(value) for key, value in params.items()} == before
    assert all(value.dtype == np.float32 for value in params.values())
    assert optimizer.step_count == 1


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError) as error:
        optim.make_optimizer("rmsprop", _params())
    assert str(error.value) == optim.UNKNOWN_OPTIMIZER.format(name="rmsprop")


@pytest.mark.slow  # importing torch alone takes several seconds
def test_adam_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4)}
    tensors = {key: torch.tensor(value.copy(), requires_grad=True) for key, value in params.items()}
    torch_optimizer = torch.optim.AdamW(
        [{"params": [tensors["W1"]], "weight_decay": 0.1}, {"params": [tensors["b1"]], "weight_decay": 0.0}],
        lr=0.01,
    )
    optimizer = optim.Adam(params, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        grads = {key: rng.standard_normal(value.shape) for key, value in params.items()}
        for key, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[key])
        torch_optimizer.step()
        optimizer.step(params, grads)
    for key in params:
        np.testing.assert_allclose(params[key], tensors[key].detach().numpy(), rtol=1e-12)


def test_constant_schedule():
    assert [optim.lr_at(step, 100, 0.1, "constant") for step in (0, 50, 99)] == [0.1, 0.1, 0.1]


def test_cosine_schedule_values():
    assert optim.lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert optim.lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert optim.lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0, abs=1e-15)
    assert optim.lr_at(25, 100, 0.1, "cosine", min_lr=0.02) == pytest.approx(
        0.02 + 0.08 * (1 + math.cos(math.pi / 4)) / 2
    )


def test_warmup_is_linear_then_schedule_starts_at_base():
    values = [optim.lr_at(step, 110, 0.1, "cosine", warmup_steps=10) for step in (0, 4, 9, 10, 60)]
    assert values == pytest.approx([0.01, 0.05, 0.1, 0.1, 0.05])


def test_step_schedule_drops_by_gamma():
    values = [optim.lr_at(step, 90, 1.0, "step") for step in (0, 29, 30, 59, 60, 89)]
    assert values == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert optim.lr_at(25, 100, 1.0, "step", step_every=10, step_gamma=0.5) == pytest.approx(0.25)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError) as error:
        optim.lr_at(0, 10, 0.1, "linear")
    assert str(error.value) == optim.UNKNOWN_SCHEDULE.format(name="linear")


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_thread_count_does_not_change_the_result(name):
    # Larger than one block, so the update is really split between threads.
    shape = (optim.BLOCK_SIZE // 256 + 3, 512)
    rng = np.random.default_rng(2)
    start = {"W1": rng.standard_normal(shape).astype(np.float32), "b1": np.zeros(512, np.float32)}
    results = []
    for threads in (1, 2, 3):
        params = {key: value.copy() for key, value in start.items()}
        optimizer = optim.make_optimizer(name, params, lr=0.01, weight_decay=0.01, threads=threads)
        for seed in range(3):
            grads_rng = np.random.default_rng(seed)
            grads = {
                key: grads_rng.standard_normal(value.shape).astype(np.float32)
                for key, value in params.items()
            }
            optimizer.step(params, grads)
        results.append(params)
    assert not np.array_equal(results[0]["W1"], start["W1"])
    for other in results[1:]:
        for key in start:
            np.testing.assert_array_equal(results[0][key], other[key])
