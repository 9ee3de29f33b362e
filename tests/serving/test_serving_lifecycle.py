"""Start-up without a usable model, settings from the environment, and the model source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import run_server, write_model

from doodle import paths
from doodle.model.model_io import ModelFileError
from serving import messages
from serving.config import DEFAULT_CORS_ORIGINS, Settings
from serving.drift import DriftReference
from serving.main import create_app
from serving.model_source import find_model_dir, is_mlflow_uri

VALID = {"image_vector": [0.0] * 784}


def test_without_a_model_the_server_is_alive_but_not_ready(tmp_path):
    with run_server(tmp_path, model_dir=None) as server, server.client() as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        reason = ready.json()["reason"]
        assert ready.json()["ready"] is False
        assert reason.startswith("ModelFileError: model file not found")
        predict = client.post("/predict", json=VALID)
        assert predict.status_code == 503
        assert predict.json() == {"detail": messages.MODEL_NOT_LOADED.format(reason=reason)}
        assert (
            client.post("/predict/batch", json={"image_vectors": [VALID["image_vector"]]}).status_code == 503
        )
        assert client.get("/model").status_code == 503
        # Feedback does not need the model, and metrics still work.
        stored = client.post("/feedback", json={**VALID, "predicted_digit": 1, "actual_digit": 7})
        assert stored.status_code == 200
        assert "doodle_model_loaded 0.0" in client.get("/metrics").text


def test_a_tampered_model_is_refused_with_the_reason(tmp_path):
    model_dir = tmp_path / "model"
    write_model(model_dir)
    weights = model_dir / "mlp.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    weights.write_bytes(bytes(data))
    with run_server(tmp_path / "run", model_dir) as server, server.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "SHA-256 mismatch" in ready.json()["reason"]
        assert "SHA-256 mismatch" in client.post("/predict", json=VALID).json()["detail"]


def test_settings_from_environment():
    settings = Settings.from_env(
        {
            "DOODLE_MODEL_PATH": "models:/doodle-mlp@champion",
            "DOODLE_FEEDBACK_DB": "x/feedback.sqlite",
            "DOODLE_CORS_ORIGINS": "http://a.example, http://b.example",
            "DOODLE_MAX_BODY_BYTES": "1000",
            "DOODLE_MAX_BATCH": "8",
        }
    )
    assert settings.model_uri == "models:/doodle-mlp@champion"
    assert settings.feedback_db == Path("x/feedback.sqlite")
    assert settings.cors_origins == ("http://a.example", "http://b.example")
    assert (settings.max_body_bytes, settings.max_batch) == (1000, 8)
    defaults = Settings.from_env({})
    assert defaults.cors_origins == DEFAULT_CORS_ORIGINS
    assert defaults.model_uri.endswith("models")
    with pytest.raises(ValueError, match="DOODLE_MAX_BATCH"):
        Settings.from_env({"DOODLE_MAX_BATCH": "0"})


def test_create_app_loads_nothing_until_started(tmp_path):
    app = create_app(Settings(model_uri=str(tmp_path / "missing"), feedback_db=tmp_path / "f.sqlite"))
    assert app.state.serving.model is None
    assert app.state.serving.model_error == messages.MODEL_NOT_LOADED_YET
    assert not (tmp_path / "f.sqlite").exists()


def test_model_source_finds_the_one_model_folder(tmp_path):
    assert is_mlflow_uri("models:/doodle-mlp@champion")
    assert not is_mlflow_uri("models/mlp.npz")
    write_model(tmp_path / "artifacts" / "model" / "data")
    (tmp_path / "artifacts" / "MLmodel").write_text(json.dumps({}))
    assert find_model_dir(tmp_path) == tmp_path / "artifacts" / "model" / "data"
    write_model(tmp_path / "second")
    with pytest.raises(ModelFileError, match="found 2"):
        find_model_dir(tmp_path)


def test_drift_reference_reads_the_prepare_stage_metrics():
    path = paths.prepare_metrics_path()
    if not path.exists():
        pytest.skip("the prepare stage has not run")
    reference = DriftReference.from_prepare_metrics(path)
    assert 0 < reference.image_mean_std and 0 < reference.ink_fraction_std
    assert reference.score(np.zeros((1, 784), dtype=np.float32)) > 2  # a blank input is unusual
    assert reference.score(np.ones((1, 784), dtype=np.float32)) > 10


def test_drift_reference_refuses_a_zero_spread(tmp_path):
    stats = tmp_path / "prepare.json"
    stats.write_text(
        json.dumps(
            {"image_mean_mean": 0.1, "image_mean_std": 0.0, "ink_fraction_mean": 0.1, "ink_fraction_std": 0.1}
        )
    )
    with pytest.raises(ValueError, match="positive"):
        DriftReference.from_prepare_metrics(stats)
