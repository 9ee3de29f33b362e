"""Tests of doodle.loop.tracking against a real MLflow SQLite store in tmp_path."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from doodle.loop import tracking
from doodle.model import model_io, train


@pytest.fixture
def store(mlflow_uri, monkeypatch):
    """A fresh tracking store; the URI comes from the environment, as an operator would set it."""
    uri = mlflow_uri
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    experiment_id = tracking.setup()
    yield MlflowClient(uri), experiment_id
    mlflow.set_tracking_uri(None)


def _tiny_training(tmp_path, seed: int, epochs: int = 2):
    rng = np.random.default_rng(seed)
    images = (rng.random((120, 784)) < 0.2).astype(np.uint8) * 255
    labels = rng.integers(0, 10, 120)
    config = train.TrainConfig(
        seed=seed, hidden_sizes=[8], epochs=epochs, batch_size=40, augment=False, patience=0, stroke_share=0.0
    )
    result = train.train(config, (images[:80], labels[:80]), (images[80:], labels[80:]), progress=False)
    model_dir = tmp_path / f"model-{seed}"
    model_io.save_model(model_dir, result.params, normalization=result.normalization, metadata={"seed": seed})
    history = [{k: v for k, v in record.items() if k != "seconds"} for record in map(vars, result.history)]
    return config, history, model_dir, images[:5] / 255.0


def _log(tmp_path, seed: int, val_accuracy: float) -> tuple[tracking.LoggedRun, np.ndarray, object]:
    config, history, model_dir, sample = _tiny_training(tmp_path, seed)
    figure = tmp_path / "curves.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    logged = tracking.log_training(
        params=config.to_dict(),
        history=history,
        metrics={"model_val_accuracy": val_accuracy, "test_accuracy": 0.5},
        model_dir=model_dir,
        artifacts=[figure],
        run_name=f"seed-{seed}",
    )
    return logged, sample, model_dir


@pytest.mark.slow
def test_run_holds_params_epoch_metrics_and_artifacts(tmp_path, store):
    client, experiment_id = store
    logged, _, _ = _log(tmp_path, seed=1, val_accuracy=0.4)
    run = client.get_run(logged.run_id)
    assert run.info.experiment_id == experiment_id
    assert run.data.params["hidden_sizes"] == "[8]"
    assert run.data.params["epochs"] == "2"
    assert run.data.metrics["model_val_accuracy"] == 0.4
    val_loss = client.get_metric_history(logged.run_id, "val_loss")
    assert sorted(metric.step for metric in val_loss) == [1, 2]
    artifacts = {item.path for item in client.list_artifacts(logged.run_id)}
    assert {"curves.png", "model_files"} <= artifacts
    model_files = {item.path for item in client.list_artifacts(logged.run_id, "model_files")}
    assert model_files == {"model_files/mlp.npz", "model_files/mlp.json"}
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == tracking.EXPERIMENT_NAME
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()


@pytest.mark.slow
def test_champion_moves_only_on_better_validation_accuracy(tmp_path, store):
    client, _ = store
    first, _, _ = _log(tmp_path, seed=1, val_accuracy=0.5)
    assert first.champion_moved and first.version == "1"
    worse, _, _ = _log(tmp_path, seed=2, val_accuracy=0.4)
    assert not worse.champion_moved and worse.version == "2"
    assert worse.message == tracking.CHAMPION_KEPT.format(
        old_version="1", metric="model_val_accuracy", new=0.4, old=0.5
    )
    assert (
        str(
            client.get_model_version_by_alias(tracking.REGISTERED_MODEL_NAME, tracking.CHAMPION_ALIAS).version
        )
        == "1"
    )
    better, _, _ = _log(tmp_path, seed=3, val_accuracy=0.6)
    assert better.champion_moved and better.version == "3"
    assert (
        str(
            client.get_model_version_by_alias(tracking.REGISTERED_MODEL_NAME, tracking.CHAMPION_ALIAS).version
        )
        == "3"
    )
    assert client.get_run(better.run_id).data.tags["champion_decision"] == better.message
    versions = client.search_model_versions(f"name='{tracking.REGISTERED_MODEL_NAME}'")
    assert len(versions) == 3


@pytest.mark.slow
def test_champion_pyfunc_predicts_as_model_io(tmp_path, store):
    logged, sample, model_dir = _log(tmp_path, seed=5, val_accuracy=0.7)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL_NAME}@{tracking.CHAMPION_ALIAS}")
    assert pyfunc.metadata.run_id == logged.run_id
    expected, _ = model_io.load_model(model_dir).predict(sample)
    assert list(pyfunc.predict(sample.astype(np.float32))) == expected.tolist()
    assert list(pyfunc.predict(sample.tolist())) == expected.tolist()
    # The weights travel as the verified model files, not as a pickle.
    local = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "dl")))
    assert (
        json.loads((local / "artifacts" / "mlp.json").read_text())["sha256"]
        == model_io.load_model(model_dir).sha256
    )
    assert not list(local.rglob("*.pkl"))


@pytest.mark.slow
def test_logged_requirements_are_what_mlflow_infers_from_the_pyfunc(tmp_path, store):
    """The requirements are given, not inferred (inference loads the model in a subprocess for
    every logged run); MLflow's own inference must still name the same distributions."""
    logged, _, model_dir = _log(tmp_path, seed=6, val_accuracy=0.7)
    local = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "dl")))
    given = (local / "requirements.txt").read_text().split()
    assert given == tracking.pyfunc_requirements()
    with mlflow.start_run():
        inferred_info = mlflow.pyfunc.log_model(
            name="inferred",
            python_model=str(tracking.PYFUNC_CODE),
            artifacts={
                "weights": str(model_dir / model_io.WEIGHTS_NAME),
                "metadata": str(model_dir / model_io.METADATA_NAME),
            },
        )
    inferred = Path(
        mlflow.artifacts.download_artifacts(inferred_info.model_uri, dst_path=str(tmp_path / "inferred"))
    )
    names = {line.split("==")[0] for line in (inferred / "requirements.txt").read_text().split()}
    assert names == set(tracking.PYFUNC_PACKAGES)


def test_default_store_is_the_repo_sqlite_database(monkeypatch):
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    uri = tracking.tracking_uri()
    assert uri.startswith("sqlite:///") and uri.endswith("/mlflow.db")
    assert tracking.default_artifact_location(uri).endswith("/mlartifacts")
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, "sqlite:///elsewhere.db")
    assert tracking.tracking_uri() == "sqlite:///elsewhere.db"


def test_selection_metric_is_required(tmp_path, store):
    with pytest.raises(ValueError, match="model_val_accuracy"):
        tracking.log_training(params={}, history=[], metrics={"test_accuracy": 0.9}, model_dir=tmp_path)
    with pytest.raises(ValueError, match="per-epoch names: val_loss"):
        tracking.log_training(
            params={},
            history=[{"epoch": 1, "val_loss": 0.3}],
            metrics={"model_val_accuracy": 0.9, "val_loss": 0.3},
            model_dir=tmp_path,
        )


def _add_path_model(model_dir, pixel_sha256: str, seed: int = 7):
    from doodle.model import mlp, path_features

    return model_io.save_path_model(
        model_dir,
        mlp.init_params([path_features.feature_size(8), 12, 10], seed=seed),
        points=8,
        temperature=0.7,
        pool_weight=0.6,
        pixel_sha256=pixel_sha256,
    )


@pytest.mark.slow
def test_the_registered_version_holds_the_path_model_and_serves_both_views(tmp_path, store):
    """A replica serving ``models:/doodle-mlp@champion`` gets the pair: both views, one version."""
    from doodle.model import path_io
    from serving.model_source import load_served_model

    config, history, model_dir, _ = _tiny_training(tmp_path, seed=11)
    pixel = model_io.load_model(model_dir)
    path_file = _add_path_model(model_dir, pixel.sha256)
    logged = tracking.log_training(
        params=config.to_dict(), history=history, metrics={"model_val_accuracy": 0.5}, model_dir=model_dir
    )
    served = load_served_model(f"models:/{tracking.REGISTERED_MODEL_NAME}@{tracking.CHAMPION_ALIAS}")
    assert path_io.pair_identity(served) == (pixel.sha256, path_file.sha256)
    assert served.path.pool_weight == 0.6
    drawing = [np.array([[50.0, 50.0], [60.0, 200.0]])]
    reading = path_io.read_views(served, np.zeros((1, 784), np.float32), [drawing])
    assert reading.views == ["pixels", "path"]
    # The pyfunc loads the same pair.
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    assert path_io.pair_identity(pyfunc.unwrap_python_model().model) == (pixel.sha256, path_file.sha256)

    # A folder whose path model names another pixel model is not logged at all.
    other_dir = tmp_path / "mismatched"
    other_dir.mkdir()
    for name in (model_io.WEIGHTS_NAME, model_io.METADATA_NAME):
        (other_dir / name).write_bytes((model_dir / name).read_bytes())
    _add_path_model(other_dir, "0" * 64)
    runs_before = len(mlflow.search_runs())
    with pytest.raises(model_io.ModelFileError, match="pixel"):
        tracking.log_training(params={}, history=[], metrics={"model_val_accuracy": 0.9}, model_dir=other_dir)
    assert len(mlflow.search_runs()) == runs_before


@pytest.mark.slow
def test_a_version_whose_pair_does_not_belong_together_is_refused(tmp_path, store):
    """Files logged around `log_training`: a path model naming another pixel model's SHA-256, or
    path files outside the pixel model's folder, refuse the version instead of serving half of it."""
    from serving.model_source import load_served_model

    client, _ = store
    _, _, model_dir, _ = _tiny_training(tmp_path, seed=12)
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    for name in (model_io.WEIGHTS_NAME, model_io.METADATA_NAME):
        (mismatched / name).write_bytes((model_dir / name).read_bytes())
    _add_path_model(mismatched, "0" * 64)
    apart = tmp_path / "apart"
    apart.mkdir()
    _add_path_model(apart, model_io.load_model(model_dir).sha256)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(mismatched), artifact_path="mismatched")
        mlflow.log_artifacts(str(model_dir), artifact_path="split/pixels")
        mlflow.log_artifacts(str(apart), artifact_path="split/path")
    with pytest.raises(model_io.ModelFileError, match="pixel"):
        load_served_model(f"runs:/{run.info.run_id}/mismatched")
    with pytest.raises(model_io.ModelFileError, match="outside the pixel model's folder"):
        load_served_model(f"runs:/{run.info.run_id}/split")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
