"""Tests of doodle.model.train: learning, determinism, early stopping, configuration errors."""

import numpy as np
import pytest

from doodle.model import mlp, train


def _toy_data(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten fixed random prototypes plus noise, as (N, 784) uint8 images and (N,) labels."""
    prototypes = np.random.default_rng(1234).random((10, 784)) < 0.15
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    noisy = prototypes[labels] ^ (rng.random((count, 784)) < 0.1)
    return (noisy * 255).astype(np.uint8), labels


def _config(**overrides) -> train.TrainConfig:
    values = dict(seed=3, hidden_sizes=[32], epochs=3, batch_size=20, learning_rate=3e-3)
    values.update(augment=False, label_smoothing=0.0, patience=0, stroke_share=0.0)
    values.update(overrides)
    return train.TrainConfig(**values)


def test_loss_falls_on_200_samples():
    data = _toy_data(200, seed=0)
    result = train.train(_config(epochs=4), data, _toy_data(100, seed=1), progress=False)
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[-1].val_accuracy > 0.8


def test_same_seed_gives_identical_weights_with_augmentation():
    data, val = _toy_data(200, seed=0), _toy_data(50, seed=1)
    config = _config(augment=True, elastic_alpha=20.0, stroke_prob=0.5)
    first = train.train(config, data, val, progress=False)
    second = train.train(config, data, val, progress=False)
    other = train.train(_config(augment=True, elastic_alpha=20.0, seed=4), data, val, progress=False)
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], second.params[key])
    assert not np.array_equal(first.params["W1"], other.params["W1"])
    assert [r.val_loss for r in first.history] == [r.val_loss for r in second.history]


def test_early_stopping_keeps_the_best_epochs_weights():
    # Far too high a learning rate on a tiny set: validation loss soon rises, and training stops.
    data, val = _toy_data(100, seed=0), _toy_data(100, seed=1)
    seen: list[train.EpochRecord] = []
    result = train.train(
        _config(epochs=30, learning_rate=0.05, lr_schedule="constant", patience=2, hidden_sizes=[64]),
        data,
        val,
        callbacks=[seen.append],
        progress=False,
    )
    losses = [record.val_loss for record in result.history]
    assert result.stopped_early and result.epochs_run < 30
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.epochs_run == result.best_epoch + 2
    assert seen == result.history
    # The returned weights are the best epoch's: they reproduce its validation loss.
    x_val = (
        train.as_float_images(val[0]).reshape(-1, 784) - result.normalization["mean"]
    ) / result.normalization["std"]
    loss, _ = train.evaluate_loss_accuracy(result.params, x_val.astype(np.float32), val[1])
    assert loss == pytest.approx(result.best.val_loss, rel=1e-5)


def test_normalisation_comes_from_the_training_pixels():
    images, labels = _toy_data(50, seed=0)
    result = train.train(_config(epochs=1), (images, labels), _toy_data(20, seed=1), progress=False)
    pixels = images.astype(np.float64) / 255
    assert result.normalization["mean"] == pytest.approx(pixels.mean(), rel=1e-6)
    assert result.normalization["std"] == pytest.approx(pixels.std(), rel=1e-6)
    assert mlp.layer_sizes_of(result.params) == [784, 32, 10]
    assert list(result.history_columns()) == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "seconds",
    ]


def test_float_and_square_images_give_the_same_run_as_uint8():
    images, labels = _toy_data(60, seed=0)
    val = _toy_data(20, seed=1)
    as_uint8 = train.train(_config(epochs=1), (images, labels), val, progress=False)
    as_float = train.train(
        _config(epochs=1), (images.reshape(-1, 28, 28) / 255.0, labels), val, progress=False
    )
    np.testing.assert_allclose(as_uint8.params["W1"], as_float.params["W1"], atol=1e-6)


def test_configuration_errors_are_explained():
    with pytest.raises(ValueError, match="unknown training parameters: colour"):
        train.TrainConfig.from_dict({"epochs": 2, "colour": "red"})
    with pytest.raises(ValueError, match=train.EPOCHS_MUST_BE_POSITIVE):
        train.TrainConfig(epochs=0)
    images, labels = _toy_data(10, seed=0)
    with pytest.raises(ValueError, match=train.LABELS_OUT_OF_RANGE):
        train.train(_config(), (images, labels + 10), (images, labels), progress=False)
    with pytest.raises(ValueError, match="different lengths"):
        train.train(_config(), (images, labels[:5]), (images, labels), progress=False)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        train.train(_config(lr_schedule="wavy"), (images, labels), (images, labels), progress=False)


def test_config_defaults_are_params_yaml_and_the_notebook_takes_no_hyper_parameter():
    """TrainConfig's defaults equal params.yaml, lists travel as lists, and the train notebook
    and the long run name no hyper-parameter that TrainConfig does not declare."""
    import ast
    import json

    import yaml

    from doodle.paths import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    from_file = train.TrainConfig.from_params_file(ROOT / "params.yaml")
    assert from_file == train.TrainConfig()
    assert set(params["train"]) == set(train.TrainConfig.__dataclass_fields__) - {"seed"}
    assert from_file.seed == params["base"]["seed"]
    assert isinstance(params["train"]["hidden_sizes"], list)

    notebook = json.loads((ROOT / "notebooks" / "03_train.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    names = {
        node.target.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.AnnAssign)
    }
    assert not names & set(train.TrainConfig.__dataclass_fields__)
    long_run = yaml.safe_load((ROOT / "params-long.yaml").read_text())
    assert set(long_run) <= names
    long_config = train.TrainConfig.from_params_file(ROOT / "params.yaml", long_run["overrides"])
    assert (
        long_config.hidden_sizes == [1024, 1024] and long_config.label_smoothing == from_file.label_smoothing
    )


def test_config_from_a_params_file_with_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("base:\n  seed: 7\ntrain:\n  epochs: 3\n  hidden_sizes: [16, 8]\n")
    config = train.TrainConfig.from_params_file(path, {"batch_size": 32})
    assert (config.seed, config.epochs, config.hidden_sizes, config.batch_size) == (7, 3, [16, 8], 32)
    assert config.learning_rate == train.TrainConfig().learning_rate
    path.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ValueError, match="unknown training parameters: epochz"):
        train.TrainConfig.from_params_file(path)


def test_a_diverged_run_raises_instead_of_returning_untrained_weights():
    data, val = _toy_data(100, seed=0), _toy_data(50, seed=1)
    with pytest.raises(
        FloatingPointError, match=r"training diverged in epoch 1: .*\(try a lower learning_rate\)"
    ):
        with np.errstate(all="ignore"):
            train.train(_config(learning_rate=1e30, lr_schedule="constant"), data, val, progress=False)


def test_empty_validation_set_and_zero_batch_size_are_refused():
    data = _toy_data(50, seed=0)
    empty = (data[0][:0], data[1][:0])
    with pytest.raises(ValueError, match=train.EMPTY_VALIDATION_SET):
        train.train(_config(), data, empty, progress=False)
    with pytest.raises(ValueError, match=train.BATCH_SIZE_MUST_BE_POSITIVE):
        _config(batch_size=0)


def test_stroke_digits_take_their_share_of_every_epoch():
    """With stroke_share, each epoch holds the training set plus pool digits (labels 0..9 in
    turn), the run is deterministic, and the pool is made of training writers' digits."""
    images, labels = _toy_data(90, seed=0)
    config = _config(stroke_share=0.25, stroke_pool=40, epochs=2)
    pool = train.stroke_pool(config)
    assert pool.shape == (40, 28, 28) and pool.dtype == np.float32
    assert 0.0 <= pool.min() and pool.max() == 1.0
    data = train.EpochData(train.as_float_images(images), labels, config, {"mean": 0.0, "std": 1.0}, pool)
    try:
        x_epoch, y_epoch = data.next_epoch(prefetch=False)
    finally:
        data.close()
    assert len(x_epoch) == 90 + 30 and len(y_epoch) == 120
    # Every stroke row of the epoch is a pool digit, with that digit's label.
    pool_labels = {image.tobytes(): index % 10 for index, image in enumerate(pool.reshape(-1, 784))}
    pairs = [
        (pool_labels[row.tobytes()], label)
        for row, label in zip(x_epoch, y_epoch)
        if row.tobytes() in pool_labels
    ]
    assert len(pairs) == 30 and all(expected == label for expected, label in pairs)
    first = train.train(config, (images, labels), (images, labels), progress=False)
    again = train.train(config, (images, labels), (images, labels), progress=False)
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], again.params[key])
    with pytest.raises(ValueError, match="stroke_share"):
        _config(stroke_share=1.0)
