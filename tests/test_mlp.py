"""The MLP's maths: gradients against central finite differences in float64, determinism,
numerical stability and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.model import mlp
from doodle.model.optim import Adam

# (layer sizes, weight decay, label smoothing): one hidden layer, two, three, with and
# without the extra loss terms.
GRADCHECK_CASES = [
    ([7, 5, 3], 0.0, 0.0),
    ([6, 5, 4, 3], 0.0, 0.0),
    ([6, 5, 4, 3], 0.03, 0.1),
    ([5, 4, 4, 3, 4], 0.01, 0.0),
]


def _tiny_problem(sizes, seed=0, n=9):
    rng = np.random.default_rng(seed)
    params = mlp.init_params(sizes, seed, dtype=np.float64)
    # Non-zero biases so the bias gradients and the ReLU kinks are exercised away from 0.
    for key in params:
        params[key] += 0.1 * rng.standard_normal(params[key].shape)
    x = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    return params, x, y


def _numeric_grad(params, key, x, y, weight_decay, label_smoothing, eps=1e-6):
    grad = np.zeros_like(params[key])
    array = params[key]
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        loss_plus, _, _ = mlp.loss_and_grads(params, x, y, weight_decay, label_smoothing)
        array[index] = original - eps
        loss_minus, _, _ = mlp.loss_and_grads(params, x, y, weight_decay, label_smoothing)
        array[index] = original
        grad[index] = (loss_plus - loss_minus) / (2 * eps)
    return grad


@pytest.mark.parametrize(("sizes", "weight_decay", "label_smoothing"), GRADCHECK_CASES)
def test_gradients_match_finite_differences(sizes, weight_decay, label_smoothing):
    params, x, y = _tiny_problem(sizes)
    _, grads, _ = mlp.loss_and_grads(params, x, y, weight_decay, label_smoothing)
    assert set(grads) == set(params)
    for key in params:
        numeric = _numeric_grad(params, key, x, y, weight_decay, label_smoothing)
        scale = max(np.abs(numeric).max(), np.abs(grads[key]).max(), 1e-12)
        relative_error = np.abs(numeric - grads[key]).max() / scale
        assert relative_error < 1e-7, f"{key}: relative error {relative_error:.2e}"


def test_dlogits_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 10))
    y = np.array([0, 3, 9, 3, 1])
    loss, dlogits = mlp.softmax_cross_entropy(logits, y)
    probs = mlp.softmax(logits)
    expected = (probs - np.eye(10)[y]) / 5
    np.testing.assert_allclose(dlogits, expected, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(-np.log(probs[np.arange(5), y]).mean(), rel=1e-12)


def test_label_smoothing_target():
    logits = np.zeros((2, 10))
    y = np.array([4, 7])
    loss, dlogits = mlp.softmax_cross_entropy(logits, y, label_smoothing=0.1)
    # Uniform predictions: the loss is log(10) whatever the target; the gradient pulls the
    # labelled class up by (1 - 0.1 + 0.01 - 0.1) / 2 and pushes the others down.
    assert loss == pytest.approx(np.log(10.0), rel=1e-12)
    target = np.full((2, 10), 0.01)
    target[[0, 1], y] = 0.91
    np.testing.assert_allclose(dlogits, (0.1 - target) / 2, atol=1e-15)


def test_backward_leaves_the_input_batch_unchanged():
    params, x, y = _tiny_problem([6, 5, 4, 3])
    x_before = x.copy()
    mlp.loss_and_grads(params, x, y)
    np.testing.assert_array_equal(x, x_before)


def test_forward_train_matches_forward():
    params = mlp.init_params([784, 32, 16, 10], seed=3)
    x = np.random.default_rng(3).random((20, 784), dtype=np.float32)
    logits, cache = mlp.forward_train(params, x)
    np.testing.assert_allclose(logits, mlp.forward(params, x), rtol=1e-6, atol=1e-6)
    assert sorted(cache) == ["h0", "h1", "h2"]
    assert cache["h1"].shape == (20, 32) and cache["h2"].shape == (20, 16)


def _separable_digits(n, seed):
    """Ten noisy prototypes in 784 dimensions: a problem an MLP learns in a few steps."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    x = prototypes[y] + 0.3 * rng.standard_normal((n, 784)).astype(np.float32)
    return x.astype(np.float32), y


def test_loss_falls_on_200_samples():
    x, y = _separable_digits(200, seed=4)
    params = mlp.init_params([784, 64, 10], seed=4)
    optimizer = Adam(params, lr=1e-3)
    losses = []
    for _ in range(10):
        loss, grads, _ = mlp.loss_and_grads(params, x, y)
        optimizer.step(params, grads)
        losses.append(loss)
    assert losses[-1] < 0.5 * losses[0]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))


def _train(seed):
    x, y = _separable_digits(64, seed=5)
    params = mlp.init_params([784, 32, 16, 10], seed=seed)
    optimizer = Adam(params, lr=1e-3, weight_decay=1e-2)
    for _ in range(3):
        _, grads, _ = mlp.loss_and_grads(params, x, y, weight_decay=0.0)
        optimizer.step(params, grads)
    return params


def test_same_seed_gives_identical_weights():
    first, second = _train(seed=6), _train(seed=6)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = _train(seed=7)
    assert not np.array_equal(first["W1"], other["W1"])


def test_softmax_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], dtype=np.float32)
    probs = mlp.softmax(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    loss, dlogits = mlp.softmax_cross_entropy(logits, np.array([1, 2]))
    # Row 0 puts all mass on class 0 while the label is 1: the loss is 1e4 (logit gap), finite.
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    assert loss == pytest.approx((1e4 + np.log(3.0)) / 2, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_throughout(dtype):
    params = mlp.init_params([784, 24, 10], seed=8, dtype=dtype)
    x = np.random.default_rng(8).random((6, 784)).astype(dtype)
    y = np.arange(6)
    logits, cache = mlp.forward_train(params, x)
    assert logits.dtype == dtype and logits.shape == (6, 10)
    loss, dlogits = mlp.softmax_cross_entropy(logits, y, label_smoothing=0.1)
    assert isinstance(loss, float) and dlogits.dtype == dtype
    grads = mlp.backward(params, cache, dlogits)
    for key, value in params.items():
        assert grads[key].dtype == dtype and grads[key].shape == value.shape
    _, grads, _ = mlp.loss_and_grads(params, x, y, weight_decay=1e-4)
    assert all(grad.dtype == dtype for grad in grads.values())


def test_workspace_gives_the_same_numbers_and_reuses_its_buffers():
    x, y = _separable_digits(32, seed=9)
    params = mlp.init_params([784, 24, 16, 10], seed=9)
    loss, grads, _ = mlp.loss_and_grads(params, x, y, weight_decay=1e-3)
    workspace = mlp.Workspace()
    loss_ws, grads_ws, _ = mlp.loss_and_grads(params, x, y, weight_decay=1e-3, workspace=workspace)
    buffers = {key: id(value) for key, value in grads_ws.items()}
    assert loss_ws == loss
    for key in params:
        np.testing.assert_array_equal(grads_ws[key], grads[key])
    _, grads_again, _ = mlp.loss_and_grads(params, x, y, weight_decay=1e-3, workspace=workspace)
    assert {key: id(value) for key, value in grads_again.items()} == buffers
    for key in params:
        np.testing.assert_array_equal(grads_again[key], grads[key])


@pytest.mark.slow  # importing torch alone takes several seconds
def test_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    params, x, y = _tiny_problem([6, 5, 4, 3], seed=10)
    loss, grads, _ = mlp.loss_and_grads(params, x, y, weight_decay=0.02, label_smoothing=0.1)
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in params.items()}
    h = torch.tensor(x)
    for i in range(1, 4):
        h = h @ tensors[f"W{i}"] + tensors[f"b{i}"]
        if i < 3:
            h = torch.relu(h)
    torch_loss = torch.nn.functional.cross_entropy(h, torch.tensor(y), label_smoothing=0.1)
    torch_loss = torch_loss + 0.01 * sum((tensors[f"W{i}"] ** 2).sum() for i in range(1, 4))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for key in params:
        np.testing.assert_allclose(grads[key], tensors[key].grad.numpy(), rtol=1e-10, atol=1e-14)


def test_training_step_returns_the_logits_of_the_forward_pass():
    params, x, y = _tiny_problem([6, 5, 4, 3], seed=11, n=10)
    step = mlp.loss_and_grads(params, x, y, label_smoothing=0.1, workspace=mlp.Workspace())
    np.testing.assert_allclose(step.logits, mlp.forward(params, x), rtol=1e-12)
    loss, _ = mlp.softmax_cross_entropy(mlp.forward(params, x), y, 0.1)
    assert step.loss == pytest.approx(loss, rel=1e-12)
