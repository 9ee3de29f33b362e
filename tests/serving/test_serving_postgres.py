"""The API with its feedback in PostgreSQL (``DOODLE_FEEDBACK_URL``), in-process on a real server:
corrections land in the database, and a bad setting stops the server or makes it unready with the
reason, never writing to the SQLite file instead; a registry without the champion is named as such."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient
from serving_helpers import DIGIT_VECTOR, server_env

from serving.config import FEEDBACK_URL_ENV, Settings
from serving.main import create_app
from support.servers import free_port

CORRECTION = {"image_vector": DIGIT_VECTOR, "predicted_digit": 7, "actual_digit": 1}


def _client(tmp_path, model_dir, feedback_url):
    env = {
        **server_env(tmp_path, model_dir),
        FEEDBACK_URL_ENV: feedback_url,
        "DOODLE_MODEL_POLL_SECONDS": "0",
    }
    return TestClient(create_app(Settings.from_env(env)), base_url="http://testserver")


def test_corrections_are_committed_to_postgres_and_not_to_sqlite(tmp_path, model_dir, postgres_url):
    with _client(tmp_path, model_dir, postgres_url) as http:
        assert http.get("/readyz").status_code == 200
        ids = [http.post("/feedback", json=CORRECTION).json()["id"] for _ in range(3)]
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT id, predicted_digit, actual_digit, source FROM feedback ORDER BY id"
        ).fetchall()
    assert stored == [(row_id, 7, 1, "api") for row_id in ids]
    assert not (tmp_path / "feedback.sqlite").exists()


@pytest.mark.parametrize("problem", ["wrong password", "nothing listening"])
def test_an_unusable_database_makes_the_server_unready_with_the_reason(
    tmp_path, model_dir, postgres_server, postgres_url, problem
):
    dbname = postgres_url.rsplit("/", 1)[1]
    if problem == "wrong password":
        url, reason = (
            postgres_server.url(dbname, password="wrong"),
            'password authentication failed for user "doodle"',
        )
    else:
        url, reason = postgres_server.url(dbname, port=free_port()), "refused"
    with _client(tmp_path, model_dir, url) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith(
            "feedback store unavailable: FeedbackDatabaseError: cannot open"
        )
        assert reason in ready.json()["reason"]
        assert "wrong" not in ready.json()["reason"] and "doodle-test-password" not in ready.json()["reason"]
        refused = http.post("/feedback", json=CORRECTION)
        assert refused.status_code == 503 and reason in refused.json()["detail"]
        assert http.post("/predict", json={"image_vector": DIGIT_VECTOR}).status_code == 200  # still predicts
    assert not (tmp_path / "feedback.sqlite").exists()


@pytest.mark.parametrize(
    "value", ["sqlite:///data/feedback.sqlite", "data/feedback.sqlite", "mysql://db/doodle"]
)
def test_a_feedback_url_that_is_not_postgres_stops_the_server_at_start(value):
    with pytest.raises(ValueError, match="DOODLE_FEEDBACK_URL must be a postgresql:// URL"):
        Settings.from_env({FEEDBACK_URL_ENV: value})


def test_unset_feedback_url_keeps_the_sqlite_file(tmp_path, model_dir):
    settings = Settings.from_env(server_env(tmp_path, model_dir))
    assert settings.feedback_url is None
    with TestClient(create_app(settings), base_url="http://testserver") as http:
        assert http.post("/feedback", json=CORRECTION).status_code == 200
    assert (tmp_path / "feedback.sqlite").exists()


def test_a_registry_without_the_model_or_the_alias_is_named(tmp_path, mlflow_uri, monkeypatch):
    from mlflow import MlflowClient

    from doodle.model.model_io import ModelFileError
    from serving.model_source import resolve_alias

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    client = MlflowClient(mlflow_uri)
    client.create_registered_model("doodle-mlp")
    for uri, name in (
        ("models:/doodle-mlp@champion", "doodle-mlp"),
        ("models:/elsewhere@champion", "elsewhere"),
    ):
        with pytest.raises(ModelFileError, match=f"has no version of '{name}' with the alias 'champion'"):
            resolve_alias(uri)
    version = client.create_model_version("doodle-mlp", source=(tmp_path / "model").as_uri()).version
    client.set_registered_model_alias("doodle-mlp", "champion", version)
    assert resolve_alias("models:/doodle-mlp@champion") == f"models:/doodle-mlp/{version}"
