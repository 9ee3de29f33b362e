"""The promotion rule, the installation of a promoted model, and the promote notebook against a
real MLflow registry and a real server polling the served folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from doodle import feedback_data, mlp, model_io, promotion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
from serving_helpers import run_server  # noqa: E402


def scores(version, val, holdout):
    return promotion.Scores(version=version, val_accuracy=val, holdout_accuracy=holdout)


@pytest.mark.parametrize(
    "candidate, champion, promoted, reason",
    [
        (scores("new", 0.98, None), None, True, "first champion"),
        (scores("new", 0.990, 0.50), scores("old", 0.992, 0.40), True, "replaces old"),  # within the margin
        (scores("new", 0.990, 0.50), scores("old", 0.990, 0.50), True, "replaces old"),  # equal is enough
        (scores("new", 0.990, None), scores("old", 0.991, None), True, "feedback holdout empty"),
        (scores("new", 0.985, 0.90), scores("old", 0.990, 0.40), False, "worse on MNIST validation"),
        (scores("new", 0.995, 0.45), scores("old", 0.990, 0.50), False, "fewer feedback holdout drawings"),
        (scores("old", 0.995, 0.45), scores("old", 0.990, 0.50), False, "same weights"),
    ],
)
def test_the_rule(candidate, champion, promoted, reason):
    decision = promotion.decide(candidate, champion, max_val_drop=0.003, holdout_rows=20)
    assert decision.promote is promoted
    assert reason in decision.reason
    assert json.loads(json.dumps(decision.to_dict()))["promote"] is promoted


def test_the_margin_must_be_a_non_negative_number():
    with pytest.raises(ValueError, match="max_val_drop"):
        promotion.decide(scores("a", 1, None), None, max_val_drop=float("nan"))


@pytest.mark.parametrize(
    "candidate_val, holdout, promoted, reason",
    [
        (0.9920, (0.5, 0.5), True, "beyond the noise margin 0.05%"),  # +0.10 points, margin 0.05
        (0.9914, (0.5, 0.5), False, "not more than the noise margin"),  # +0.04 points: noise
        (0.9915, (0.5, 0.5), False, "not more than the noise margin"),  # exactly the margin is not past it
        (0.9905, (0.5, 0.5), False, "not more than the noise margin"),  # within the retraining drop, still kept
        (0.9930, (0.4, 0.5), False, "fewer feedback holdout drawings"),
    ],
)
def test_a_challenger_must_beat_the_champion_by_more_than_the_margin(candidate_val, holdout, promoted, reason):
    decision = promotion.decide(
        scores("long", candidate_val, holdout[0]), scores("old", 0.9910, holdout[1]),
        max_val_drop=0.003, holdout_rows=10, min_val_gain=0.0005,
    )
    assert decision.promote is promoted
    assert reason in decision.reason
    assert decision.to_dict()["min_val_gain"] == 0.0005


def test_the_study_margin_is_read_from_the_experiments_metrics(tmp_path):
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"seeds": 5, "champion_margin_val_accuracy": 0.00042, "default": {}}))
    margin = promotion.study_margin(path)
    assert (margin.value, margin.seeds, margin.source) == (0.00042, 5, str(path))
    assert "over 5 seeds" in margin.describe() and "2.1 of 5,000 images" in margin.describe(5000)
    with pytest.raises(ValueError, match="no seed study results"):
        promotion.study_margin(tmp_path / "missing.json")
    for bad in (None, float("nan"), -0.001, "0.001"):
        path.write_text(json.dumps({"seeds": 1, "champion_margin_val_accuracy": bad}))
        with pytest.raises(ValueError, match="at least 2 seeds"):
            promotion.study_margin(path)
    with pytest.raises(ValueError, match="min_val_gain"):
        promotion.decide(scores("a", 1, None), scores("b", 1, None), min_val_gain=-0.1)


def save(directory: Path, seed: int) -> model_io.Model:
    return model_io.save_model(
        directory, mlp.init_params([784, 16, 10], seed=seed), normalization={"mean": 0.13, "std": 0.3}
    )


def test_install_copies_a_checked_model_and_refuses_a_corrupt_one(tmp_path):
    served = save(tmp_path / "models", seed=0)
    candidate = save(tmp_path / "candidate", seed=1)
    installed = promotion.install_model(tmp_path / "candidate", tmp_path / "models")
    assert installed.sha256 == candidate.sha256 != served.sha256
    assert not list((tmp_path / "models").glob(".*tmp"))
    weights = tmp_path / "candidate" / model_io.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(model_io.ModelFileError):
        promotion.install_model(tmp_path / "candidate", tmp_path / "models")
    assert model_io.load_model(tmp_path / "models").sha256 == candidate.sha256


def split_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "index": pa.array(np.arange(len(labels)), pa.int64()),
            "label": pa.array(labels, pa.int32()),
            "pixels": pa.array([row.tobytes() for row in images], pa.binary()),
            "predicted": pa.array(np.zeros(len(labels)), pa.int32()),
            "model_version": pa.array(["x"] * len(labels), pa.string()),
            "source": pa.array(["api"] * len(labels), pa.string()),
            "created_at": pa.array(np.zeros(len(labels)), pa.float64()),
        },
        schema=feedback_data.SPLIT_SCHEMA,
    )


def two_models(tmp_path: Path, candidate_better: bool) -> tuple[model_io.Model, model_io.Model]:
    """A champion in models/ and a candidate in data/candidate/ that agree on the validation
    images and disagree on the feedback holdout, whose labels say which one is right there."""
    champion = save(tmp_path / "models", seed=0)
    rng = np.random.default_rng(0)
    nudged = {name: value + rng.normal(0, value.std() / 2, value.shape).astype(np.float32)
              for name, value in champion.params.items()}
    candidate = model_io.save_model(tmp_path / "data" / "candidate", nudged, normalization={"mean": 0.13, "std": 0.3})
    pool = rng.integers(0, 256, size=(4000, 784), dtype=np.uint8)
    said_by_champion, said_by_candidate = champion.predict(pool)[0], candidate.predict(pool)[0]
    agree = np.flatnonzero(said_by_champion == said_by_candidate)[:200]
    disagree = np.flatnonzero(said_by_champion != said_by_candidate)[:40]
    assert len(agree) == 200 and len(disagree) == 40
    holdout_labels = (said_by_candidate if candidate_better else said_by_champion)[disagree]
    feedback_data.write_table(split_table(pool[agree], said_by_champion[agree]), tmp_path / "data/prepared/validation.parquet")
    feedback_data.write_table(split_table(pool[disagree], holdout_labels), tmp_path / "data/feedback/holdout.parquet")
    return champion, candidate


@pytest.mark.slow
@pytest.mark.parametrize("candidate_better", [False, True], ids=["worse-on-holdout", "better-on-holdout"])
def test_promote_notebook_moves_alias_and_served_model_only_for_a_better_candidate(tmp_path, mlflow_uri, candidate_better):
    champion, candidate = two_models(tmp_path, candidate_better)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    register = f"""
import json, sys
from doodle import tracking
tracking.setup()
for folder, promote in (("models", True), ("data/candidate", False)):
    logged = tracking.log_training(params={{}}, history=[], metrics={{tracking.SELECTION_METRIC: 0.5}},
                                   model_dir=folder, promote=promote)
    print(logged.version)
json.dump({{"run_id": logged.run_id, "version": logged.version}}, open("data/candidate/registered.json", "w"))
"""
    subprocess.run([sys.executable, "-c", register], cwd=tmp_path, env=env, check=True, capture_output=True)

    with run_server(tmp_path / "server", tmp_path / "models", DOODLE_MODEL_POLL_SECONDS="0.2") as server, server.client() as client:
        assert client.get("/model").json()["version"] == champion.version
        subprocess.run(
            [sys.executable, "-m", "papermill", str(ROOT / "notebooks/05_promote.ipynb"), str(tmp_path / "out.ipynb"),
             "-p", "max_val_drop", "0.003"],
            cwd=tmp_path, env=env, check=True, capture_output=True,
        )
        decision = json.loads((tmp_path / "reports/metrics/promotion.json").read_text())
        expected = candidate.version if candidate_better else champion.version
        assert decision["promoted"] is candidate_better
        assert decision["served_version"] == expected
        assert decision["candidate"]["val_accuracy"] == decision["champion"]["val_accuracy"] == 1.0
        assert decision["candidate"]["holdout_accuracy"] == (1.0 if candidate_better else 0.0)
        assert model_io.load_model(tmp_path / "models").version == expected
        deadline = time.monotonic() + 30
        while client.get("/model").json()["version"] != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a few more polls: a kept champion must stay
        assert client.get("/model").json()["version"] == expected
        assert "refused" not in server.log()

    check = """
from mlflow.tracking import MlflowClient
from doodle import tracking
tracking.setup()
client = MlflowClient()
champion = client.get_model_version_by_alias(tracking.REGISTERED_MODEL_NAME, tracking.CHAMPION_ALIAS)
run = client.get_run(client.get_model_version(tracking.REGISTERED_MODEL_NAME, "2").run_id)
print(champion.version, run.data.tags["promotion_decision"][:4], run.data.metrics["promotion_holdout_accuracy"])
"""
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    version, verdict, holdout = out.stdout.split()
    assert version == ("2" if candidate_better else "1")
    assert verdict == ("prom" if candidate_better else "kept")
    assert float(holdout) == (1.0 if candidate_better else 0.0)
    shutil.rmtree(tmp_path / "mlartifacts", ignore_errors=True)


@pytest.mark.slow
def test_a_challenger_equal_on_validation_stays_out_and_no_study_stops_the_notebook(tmp_path, mlflow_uri):
    """The candidate reads the holdout better and ties on validation: the retraining rule would
    promote it, a challenger (the long run) must beat the champion by the study's margin and does
    not. Without the study's results the notebook stops before anything moves."""
    champion, candidate = two_models(tmp_path, candidate_better=True)
    study = tmp_path / "experiments.json"
    study.write_text(json.dumps({"seeds": 5, "champion_margin_val_accuracy": 0.0004}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    promote = [sys.executable, "-m", "papermill", str(ROOT / "notebooks/05_promote.ipynb"), str(tmp_path / "out.ipynb"),
               "-p", "metrics_path", "long/promotion.json", "-p", "champion_margin_file"]
    subprocess.run([*promote, str(study)], cwd=tmp_path, env=env, check=True, capture_output=True)
    decision = json.loads((tmp_path / "long/promotion.json").read_text())
    assert decision["promoted"] is False and decision["served_version"] == champion.version
    assert "not more than the noise margin 0.04%" in decision["decision"]
    assert decision["min_val_gain"] == 0.0004 and decision["noise_margin_seeds"] == 5
    assert "over 5 seeds" in decision["noise_margin"]
    assert model_io.load_model(tmp_path / "models").version == champion.version

    (tmp_path / "long/promotion.json").unlink()
    failed = subprocess.run([*promote, str(tmp_path / "none.json")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "no seed study results" in failed.stdout + failed.stderr
    assert not (tmp_path / "long/promotion.json").exists()
    assert model_io.load_model(tmp_path / "models").version == champion.version != candidate.version
