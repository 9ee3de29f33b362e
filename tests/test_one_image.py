"""The one-image forward pass that answers `/predict` (`doodle.model.mlp.one_image_probabilities`,
`Model.predict_one_proba`) against the batch forward pass (`Model.predict_proba`) and the same
network in float64: the same digits, probabilities within a stated tolerance, on seeded models and
on the pipeline's model over the whole MNIST test split; and `top_two_of_one` against `top_two`."""

import numpy as np
import pytest

from doodle.model import mlp, model_io
from doodle.model.model_io import top_two, top_two_of_one
from doodle.sources.data import PreparedDataError, load_split

NORMALIZATION = {"mean": 0.13, "std": 0.31}
# Probabilities of the one-image pass against the batch pass's float32 (other rounding, other order
# of the sums) and against float64: measured up to 1.8e-6 on the pipeline's model.
TOLERANCE = 1e-5


def float64_probabilities(model: model_io.Model, images: np.ndarray) -> np.ndarray:
    """The model's probabilities with every number in float64: the reference both passes round from."""
    params = {name: array.astype(np.float64) for name, array in model.params.items()}
    norm = model.metadata["normalization"]
    x = (images.reshape(len(images), -1).astype(np.float64) - norm["mean"]) / norm["std"]
    return mlp.softmax(mlp.forward(params, x) / model.temperature)


def one_by_one(model: model_io.Model, images: np.ndarray) -> np.ndarray:
    return np.stack([model.predict_one_proba(image) for image in images.reshape(len(images), -1)])


@pytest.fixture
def model(tmp_path):
    params = mlp.init_params([784, 64, 32, 10], seed=5)
    rng = np.random.default_rng(5)
    for name in ("b1", "b2", "b3"):
        params[name] += rng.normal(0.0, 0.3, params[name].shape).astype(np.float32)  # biases that matter
    return model_io.save_model(tmp_path, params, normalization=NORMALIZATION, temperature=1.7)


def test_one_image_pass_equals_the_batch_pass_on_ink_and_on_dense_images(model):
    rng = np.random.default_rng(0)
    ink = rng.random((40, 784)) < 0.2  # a digit's share of ink: the sparse rows
    sparse = np.where(ink, rng.random((40, 784)), 0.0).astype(np.float32)
    dense = rng.random((10, 784), dtype=np.float32)  # every pixel nonzero: the whole matrix
    dense[:, ::3] = 0.0
    binary = (rng.random((10, 784)) < 0.15).astype(np.float32)  # integer pixels as clients send them
    images = np.concatenate([sparse, dense, binary])
    one = one_by_one(model, images)
    batch = model.predict_proba(images)
    assert one.dtype == np.float32 and one.shape == (60, 10)
    np.testing.assert_allclose(one, batch, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(one, float64_probabilities(model, images), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(one.argmax(axis=1), batch.argmax(axis=1))
    # The temperature is applied once: without it the answers would be sharper.
    assert not np.allclose(one, mlp.softmax(mlp.forward(model.params, model.normalize(images))), atol=1e-3)


def test_one_image_pass_leaves_the_image_and_the_weights_alone(model):
    image = np.zeros(784, dtype=np.float32)
    image[300:340] = 0.8
    before = {name: array.copy() for name, array in model.params.items()}
    first = model.predict_one_proba(image)
    second = model.predict_one_proba(image.reshape(28, 28))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError):
        model.predict_one_proba(image[:700])
    assert np.count_nonzero(image) == 40 and image.max() == np.float32(0.8)
    for name, array in model.params.items():
        np.testing.assert_array_equal(array, before[name])


def test_pipeline_model_reads_mnist_test_the_same_one_image_at_a_time(trained_model):
    """All 10,000 MNIST test digits: the digit of every one equal to the batch pass's and to
    float64's, every probability within the tolerance (an equivalence check, not an accuracy gate)."""
    try:
        images, _ = load_split("test")
    except PreparedDataError as error:
        pytest.skip(f"the prepared MNIST test split is missing (run `make pipeline`): {error}")
    images = images.astype(np.float32) / np.float32(255.0)
    one = one_by_one(trained_model, images)
    batch = trained_model.predict_proba(images)
    exact = float64_probabilities(trained_model, images)
    assert len(one) == 10_000
    assert int((one.argmax(axis=1) != batch.argmax(axis=1)).sum()) == 0
    assert int((one.argmax(axis=1) != exact.argmax(axis=1)).sum()) == 0
    np.testing.assert_allclose(one, batch, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(one, exact, rtol=0, atol=TOLERANCE)


def test_top_two_of_one_agrees_with_top_two_ties_included():
    rng = np.random.default_rng(1)
    rows = mlp.softmax(rng.normal(0.0, 2.0, (200, 10))).astype(np.float32)
    rows[0] = 0.1  # all tied: 0 then 1, as argmax takes them
    rows[1] = [0.0, 0.3, 0.0, 0.3, 0.4, 0, 0, 0, 0, 0]  # a tie for second place
    rows[2] = [0.0, 0.45, 0.0, 0.1, 0.45, 0, 0, 0, 0, 0]  # a tie for first place
    margin = 0.05
    expected = top_two(rows, margin)
    for i, row in enumerate(rows):
        digit, runner_up, gap, unsure = top_two_of_one(row.tolist(), margin)
        assert (digit, runner_up) == (expected.digits[i], expected.runner_ups[i])
        assert gap == expected.margins[i] and unsure == expected.unsure[i]
    assert top_two_of_one(rows[2].tolist())[:2] == (1, 4)
    assert {bool(u) for u in expected.unsure} == {True, False}


def test_the_served_model_has_its_one_image_weights_before_the_first_request(model, tmp_path):
    from serving.model_source import load_served_model

    served = load_served_model(str(tmp_path))
    assert "one_image" in vars(served)  # made while loading, not by the first /predict
    assert "one_image" not in vars(model_io.load_model(tmp_path))  # other readers never pay for it
    folded = served.one_image
    assert folded.weights[1] is served.params["W2"]  # hidden layers shared, not copied
    np.testing.assert_allclose(
        folded.weights[0], served.params["W1"] / np.float32(NORMALIZATION["std"]), rtol=1e-6
    )
