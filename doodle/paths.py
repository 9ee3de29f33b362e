"""Where the project's files live, relative to the repository root, each overridable by
an environment variable so tests, CI and operators can point elsewhere."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODEL_DIR_ENV = "DOODLE_MODEL_PATH"
FEEDBACK_DB_ENV = "DOODLE_FEEDBACK_DB"
FEEDBACK_URL_ENV = "DOODLE_FEEDBACK_URL"  # postgresql://...: the store replicas on several machines share
MNIST_DIR_ENV = "DOODLE_MNIST_DIR"


def model_path(environ: Mapping[str, str] | None = None) -> Path:
    """The model the dashboard and the API serve: a directory holding mlp.npz + mlp.json,
    or the .npz file itself (``environ``: the process environment unless given)."""
    env = os.environ if environ is None else environ
    return Path(env.get(MODEL_DIR_ENV) or ROOT / "models")


def feedback_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """The SQLite feedback store that the dashboard and the API share (``environ``: the process
    environment unless given)."""
    env = os.environ if environ is None else environ
    return Path(env.get(FEEDBACK_DB_ENV) or ROOT / "data" / "feedback.sqlite")


def feedback_url() -> str | None:
    """The PostgreSQL feedback store's URL when one is configured; None means the SQLite file."""
    return os.environ.get(FEEDBACK_URL_ENV) or None


def prepare_metrics_path() -> Path:
    """Reference statistics of the training data written by the `prepare` stage."""
    return ROOT / "reports" / "metrics" / "prepare.json"
