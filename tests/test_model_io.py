"""Model files: exact round trip, and every kind of tampering or malformation refused clearly."""

import hashlib
import io
import json

import numpy as np
import pytest

from doodle.model import mlp, model_io
from doodle.model.model_io import ModelFileError

NORMALIZATION = {"mean": 0.13, "std": 0.31}


@pytest.fixture
def saved(tmp_path):
    params = mlp.init_params([784, 16, 12, 10], seed=3)
    params["b1"] += np.float32(0.25)  # not all-zero, so a lost bias would show
    model = model_io.save_model(
        tmp_path, params, normalization=NORMALIZATION, temperature=0.8, metadata={"metrics": {"acc": 0.5}}
    )
    return tmp_path, params, model


def _rewrite_weights(directory, arrays, *, fix_checksum=True):
    """Write new arrays into mlp.npz; optionally record their checksum, as a careful forger would."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / "mlp.npz").write_bytes(buffer.getvalue())
    if fix_checksum:
        meta = json.loads((directory / "mlp.json").read_text())
        meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
        (directory / "mlp.json").write_text(json.dumps(meta))


def test_round_trip_is_exact(saved):
    directory, params, saved_model = saved
    loaded = model_io.load_model(directory)
    assert sorted(loaded.params) == sorted(params)
    for name, array in params.items():
        assert loaded.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[name], array)
    assert loaded.layer_sizes == [784, 16, 12, 10]
    assert loaded.version == saved_model.version == loaded.sha256[:12]
    assert loaded.metadata["metrics"] == {"acc": 0.5}
    assert loaded.temperature == pytest.approx(0.8)
    # The .npz path and the .json path name the same model.
    assert model_io.load_model(directory / "mlp.npz").sha256 == loaded.sha256
    assert model_io.load_model(directory / "mlp.json").sha256 == loaded.sha256


def test_predictions_apply_normalization_and_temperature(saved):
    directory, params, _ = saved
    model = model_io.load_model(directory)
    images = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    x = (images.reshape(5, -1) - np.float32(0.13)) / np.float32(0.31)
    expected = mlp.softmax(mlp.forward(params, x) / np.float32(0.8))
    probs = model.predict_proba(images)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    digits, _ = model.predict(images.reshape(5, 784))
    np.testing.assert_array_equal(digits, expected.argmax(axis=1))


def test_missing_files_are_named(tmp_path, saved):
    directory, _, _ = saved
    with pytest.raises(ModelFileError, match="model file not found: .*mlp.npz"):
        model_io.load_model(tmp_path / "elsewhere")
    (directory / "mlp.json").unlink()
    with pytest.raises(ModelFileError, match="model file not found: .*mlp.json"):
        model_io.load_model(directory)


def test_flipped_byte_in_weights_is_a_checksum_error(saved):
    directory, _, model = saved
    blob = bytearray((directory / "mlp.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (directory / "mlp.npz").write_bytes(bytes(blob))
    with pytest.raises(
        ModelFileError, match=f"SHA-256 mismatch, expected {model.sha256}, got [0-9a-f]{{64}}"
    ):
        model_io.load_model(directory)


def test_weights_changed_without_checksum_are_refused(saved):
    directory, params, _ = saved
    _rewrite_weights(directory, {**params, "W1": params["W1"] * 2}, fix_checksum=False)
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        model_io.load_model(directory)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: {k: v for k, v in p.items() if k != "b2"}, "arrays .* expected"),
        (lambda p: {**p, "W2": p["W2"][:, :5]}, "b2 has shape"),
        (lambda p: {**p, "W1": p["W1"][:700]}, r"W1 has shape \(700, 16\), expected \(784, n\)"),
        (lambda p: {**p, "W1": p["W1"].astype(np.float64)}, "W1 has dtype float64, expected float32"),
        (lambda p: {**p, "b1": np.full_like(p["b1"], np.nan)}, "b1 holds NaN or infinite values"),
        (lambda p: {**p, "extra": np.zeros(3, np.float32)}, "arrays .* expected"),
        (lambda p: {**p, "W3": p["W3"][:, :9], "b3": p["b3"][:9]}, "output layer has 9 units, expected 10"),
    ],
)
def test_malformed_weights_are_refused_even_with_a_matching_checksum(saved, change, message):
    directory, params, _ = saved
    _rewrite_weights(directory, change(params))
    with pytest.raises(ModelFileError, match=message):
        model_io.load_model(directory)


def test_pickled_object_arrays_are_never_loaded(saved):
    directory, params, _ = saved
    _rewrite_weights(directory, {**params, "W1": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(ModelFileError, match="unreadable weights archive"):
        model_io.load_model(directory)


def test_corrupt_archive_with_matching_checksum_is_refused(saved):
    directory, _, _ = saved
    (directory / "mlp.npz").write_bytes(b"PK\x03\x04 not really a zip")
    meta = json.loads((directory / "mlp.json").read_text())
    meta["sha256"] = hashlib.sha256(b"PK\x03\x04 not really a zip").hexdigest()
    (directory / "mlp.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="unreadable weights archive"):
        model_io.load_model(directory)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: "{not json", "not valid JSON"),
        (lambda m: json.dumps([1, 2]), "not a doodle-mlp metadata file"),
        (lambda m: json.dumps({**m, "format_version": 99}), "format_version 99, expected 1"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "sha256"}), "missing key 'sha256'"),
        (lambda m: json.dumps({**m, "normalization": {"mean": 0.1, "std": 0}}), "positive std"),
        (lambda m: json.dumps({**m, "temperature": -1}), "temperature must be a positive finite number"),
        (lambda m: json.dumps({**m, "layer_sizes": [784, 10]}), "do not match metadata"),
    ],
)
def test_malformed_metadata_is_refused(saved, edit, message):
    directory, _, _ = saved
    meta = json.loads((directory / "mlp.json").read_text())
    (directory / "mlp.json").write_text(edit(meta))
    with pytest.raises(ModelFileError, match=message):
        model_io.load_model(directory)


def test_save_refuses_bad_parameters_and_leaves_no_files(tmp_path):
    params = mlp.init_params([784, 8, 10], seed=0)
    params["W2"][0, 0] = np.inf
    with pytest.raises(ModelFileError, match="W2 holds NaN or infinite values"):
        model_io.save_model(tmp_path, params, normalization=NORMALIZATION)
    assert list(tmp_path.iterdir()) == []


def test_model_files_are_written_without_pickle(saved):
    directory, _, _ = saved
    with np.load(directory / "mlp.npz", allow_pickle=False) as archive:
        assert all(archive[name].dtype == np.float32 for name in archive.files)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_model_files_follow_the_umask_not_mkstemps_private_mode(tmp_path, umask, mode):
    """The umask in force when the model is saved, whatever it was when model_io was imported."""
    import os

    previous = os.umask(umask)
    try:
        model_io.save_model(tmp_path, mlp.init_params([784, 4, 10], seed=0), normalization=NORMALIZATION)
    finally:
        os.umask(previous)
    for name in ("mlp.npz", "mlp.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode


def test_uint8_images_are_read_on_the_0_255_scale(saved):
    directory, _, _ = saved
    model = model_io.load_model(directory)
    raw = np.random.default_rng(2).integers(0, 256, (3, 784), dtype=np.uint8)
    np.testing.assert_allclose(model.predict_proba(raw), model.predict_proba(raw / 255.0), rtol=1e-5)
