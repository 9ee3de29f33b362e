"""doodle.model.inputs.standardize is the one way raw images become network inputs: training's epochs
and validation, the model file, MLflow's pyfunc and the dashboard's predictions all give the
same numbers, bit for bit."""

from types import SimpleNamespace

import numpy as np
import pytest

from doodle import constants
from doodle.model import inputs, mlp, model_io, train

NORMALIZATION = {"mean": 0.1307, "std": 0.3081}


@pytest.fixture
def raw_images() -> np.ndarray:
    """``(12, 784)`` uint8 with every byte value present, so rounding differences would show."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (12, constants.N_PIXELS), dtype=np.uint8)
    images[0, :256] = np.arange(256, dtype=np.uint8)
    return images


def test_standardize_is_the_formula(raw_images):
    x = inputs.standardize(raw_images, NORMALIZATION)
    expected = (raw_images.astype(np.float64) / 255.0 - NORMALIZATION["mean"]) / NORMALIZATION["std"]
    assert x.shape == (12, 784) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)


def test_float_images_put_bytes_on_the_unit_interval(raw_images):
    images = inputs.as_float_images(raw_images)
    assert images.shape == (12, 28, 28) and images.dtype == np.float32
    assert images[0, 0, 0] == 0.0 and images[0, 9, 3] == 1.0  # bytes 0 and 255
    np.testing.assert_allclose(images.reshape(12, -1), raw_images / 255.0, rtol=1e-6, atol=0)
    assert np.array_equal(inputs.as_float_images(images), images)  # the [0, 1] scale passes through


def test_every_image_layout_gives_the_same_inputs(raw_images):
    reference = inputs.standardize(raw_images, NORMALIZATION)
    floats = inputs.as_float_images(raw_images)  # (N, 28, 28) float32 in [0, 1]
    layouts = {
        "uint8 (N, 28, 28)": raw_images.reshape(-1, 28, 28),
        "float32 (N, 28, 28)": floats,
        "float32 (N, 784)": floats.reshape(-1, 784),
        "float64 (N, 784)": floats.reshape(-1, 784).astype(np.float64),
    }
    for name, images in layouts.items():
        assert np.array_equal(inputs.standardize(images, NORMALIZATION), reference), name
    out = np.full((12, 784), np.nan, dtype=np.float32)
    assert inputs.standardize(raw_images, NORMALIZATION, out=out) is out
    assert np.array_equal(out, reference)


def test_training_model_file_and_pyfunc_read_the_same_inputs(raw_images, tmp_path):
    reference = inputs.standardize(raw_images, NORMALIZATION)
    params = mlp.init_params([784, 16, 10], seed=1)

    # Training's epochs: unaugmented, in a shuffled order; labels carry each row's position.
    config = train.TrainConfig(seed=5, hidden_sizes=[16], epochs=1, augment=False)
    epochs = train.EpochData(inputs.as_float_images(raw_images), np.arange(12), config, NORMALIZATION)
    try:
        x_epoch, order = epochs.next_epoch(prefetch=False)
    finally:
        epochs.close()
    assert not np.array_equal(order, np.arange(12))  # shuffled, so the check below is not trivial
    assert np.array_equal(x_epoch, reference[order])

    # Validation and evaluation (logits_of) and the saved model.
    model = model_io.save_model(tmp_path, params, normalization=NORMALIZATION)
    assert np.array_equal(model.normalize(raw_images), reference)
    assert np.array_equal(
        model_io.load_model(tmp_path).normalize(inputs.as_float_images(raw_images)), reference
    )
    logits = mlp.forward(params, reference)
    assert np.array_equal(train.logits_of(params, NORMALIZATION, raw_images), logits)
    assert np.array_equal(model.predict_proba(raw_images), mlp.softmax(logits))

    # MLflow's pyfunc gets rows of floats in [0, 1], as a client sends them.
    from doodle.loop.tracking import DoodleMLP

    pyfunc = DoodleMLP()
    pyfunc.load_context(SimpleNamespace(artifacts={"weights": str(tmp_path)}))
    floats = inputs.as_float_images(raw_images).reshape(-1, 784)
    assert pyfunc.predict(None, floats) == logits.argmax(axis=1).tolist()


@pytest.mark.parametrize("shape", [(3, 783), (3, 28, 27), (784,), (2, 2, 784)])
def test_wrong_pixel_count_is_a_clear_error(shape):
    with pytest.raises(ValueError, match="expected 784 pixels per image"):
        inputs.standardize(np.zeros(shape, np.float32), NORMALIZATION)


def test_out_must_fit():
    with pytest.raises(ValueError, match="out must be"):
        inputs.standardize(np.zeros((2, 784), np.uint8), NORMALIZATION, out=np.empty((3, 784), np.float32))
