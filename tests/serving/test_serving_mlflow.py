"""Serving a model named by an MLflow registry URI, from a real MLflow store in tmp_path."""

from __future__ import annotations

import pytest
from serving_helpers import DIGIT_VECTOR, run_server, write_model

MODEL_NAME = "doodle-mlp"


@pytest.mark.slow
def test_server_loads_a_registered_model_by_alias(tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    tracking_uri = mlflow_uri
    client = MlflowClient(tracking_uri=tracking_uri)  # no global MLflow state is touched
    artifacts = (tmp_path / "artifacts").as_uri()
    experiment = client.create_experiment("serving-test", artifact_location=artifacts)
    run = client.create_run(experiment)
    model = write_model(tmp_path / "model", seed=3)
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(
        MODEL_NAME, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)

    uri = f"models:/{MODEL_NAME}@champion"
    mlflow_env = {"MLFLOW_TRACKING_URI": tracking_uri}
    with run_server(tmp_path / "run", uri, **mlflow_env) as server, server.client() as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, server.log()
        assert ready.json()["model_version"] == model.version
        info = http.get("/model").json()
        assert info["sha256"] == model.sha256
        assert info["source"] == uri
        assert http.post("/predict", json={"image_vector": DIGIT_VECTOR}).status_code == 200

    with run_server(tmp_path / "missing", f"models:/{MODEL_NAME}@nobody", **mlflow_env) as server:
        with server.client() as http:
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert "nobody" in ready.json()["reason"]


@pytest.mark.slow
def test_server_follows_the_champion_alias_when_it_moves(tmp_path, mlflow_uri):
    import time

    from mlflow import MlflowClient

    tracking_uri = mlflow_uri
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("serving-test", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model(MODEL_NAME)
    models, versions = [], []
    for seed in (3, 4):
        run = client.create_run(experiment)
        models.append(write_model(tmp_path / f"model-{seed}", seed=seed))
        client.log_artifacts(run.info.run_id, str(tmp_path / f"model-{seed}"), artifact_path="model")
        client.set_terminated(run.info.run_id)
        versions.append(
            client.create_model_version(
                MODEL_NAME, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            ).version
        )
    client.set_registered_model_alias(MODEL_NAME, "champion", versions[0])
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "DOODLE_MODEL_POLL_SECONDS": "0.3"}
    with (
        run_server(tmp_path / "run", f"models:/{MODEL_NAME}@champion", **env) as server,
        server.client() as http,
    ):
        assert http.get("/model").json()["version"] == models[0].version
        client.set_registered_model_alias(MODEL_NAME, "champion", versions[1])
        deadline = time.monotonic() + 60
        while http.get("/model").json()["version"] != models[1].version and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http.get("/model").json()["version"] == models[1].version, server.log()
        assert http.get("/readyz").status_code == 200
