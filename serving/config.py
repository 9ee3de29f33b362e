"""Server settings, read from the environment once when the app is created.

Every setting has a default that works from a fresh clone after `make pipeline`; tests and
operators override them with the environment variables named below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from doodle import paths
from doodle.constants import DEFAULT_DASHBOARD_PORT, MAX_NUMBER_DIGITS
from doodle.loop.feedback import is_postgres_url

MODEL_ENV = paths.MODEL_DIR_ENV  # a directory / .npz path, or an MLflow URI `models:/name@alias`
FEEDBACK_DB_ENV = paths.FEEDBACK_DB_ENV
FEEDBACK_URL_ENV = (
    paths.FEEDBACK_URL_ENV
)  # postgresql://...: replaces the SQLite file, never falls back to it
CORS_ORIGINS_ENV = "DOODLE_CORS_ORIGINS"  # comma-separated
MAX_BODY_BYTES_ENV = "DOODLE_MAX_BODY_BYTES"
MAX_BATCH_ENV = "DOODLE_MAX_BATCH"
REFERENCE_STATS_ENV = "DOODLE_REFERENCE_STATS"  # the prepare stage's metrics JSON
DRIFT_THRESHOLD_ENV = "DOODLE_DRIFT_THRESHOLD"
BLAS_THREADS_ENV = "DOODLE_BLAS_THREADS"
MAX_NUMBER_DIGITS_ENV = "DOODLE_MAX_NUMBER_DIGITS"
MODEL_POLL_ENV = "DOODLE_MODEL_POLL_SECONDS"  # 0 turns the hot swap off
LIVE_WINDOW_ENV = "DOODLE_LIVE_ACCURACY_WINDOW"

# The Voilà drawing dashboard's origin: the one browser page that calls the API cross-origin.
DEFAULT_CORS_ORIGINS = (
    f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}",
    f"http://localhost:{DEFAULT_DASHBOARD_PORT}",
)
# A full batch of 1,024 images written with long decimals is about 13 MB of JSON; an image upload
# from a large canvas is a few MB. Anything bigger is a mistake or an attack.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 1024
# |z| above 3 is rare (< 0.3 %) for a normal statistic of the training images.
DEFAULT_DRIFT_THRESHOLD = 3.0
# One BLAS thread per server process: requests already run concurrently, and on a busy 2-core
# machine OpenBLAS's own threads made a 64-image forward pass an order of magnitude slower.
DEFAULT_BLAS_THREADS = 1
# Digits read from one drawing by /predict/number: the pad's limit.
DEFAULT_MAX_NUMBER_DIGITS = MAX_NUMBER_DIGITS
# How often the server looks for a new model: two stat calls (or one registry query for an
# alias), and a new model is loaded once it has been seen unchanged on two polls in a row.
DEFAULT_MODEL_POLL_SECONDS = 2.0
# Live accuracy: the newest feedback rows about the served model version that it is computed on.
DEFAULT_LIVE_WINDOW = 200


@dataclass(frozen=True)
class Settings:
    """What the server needs to know; `from_env()` builds it from the environment."""

    model_uri: str = field(default_factory=lambda: str(paths.model_path()))
    feedback_db: Path = field(default_factory=paths.feedback_db_path)
    # Unset: the SQLite file above. Kept out of repr: it may hold a password.
    feedback_url: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch: int = DEFAULT_MAX_BATCH
    reference_stats: Path = field(default_factory=paths.prepare_metrics_path)
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    blas_threads: int = DEFAULT_BLAS_THREADS
    max_number_digits: int = DEFAULT_MAX_NUMBER_DIGITS
    model_poll_seconds: float = DEFAULT_MODEL_POLL_SECONDS
    live_accuracy_window: int = DEFAULT_LIVE_WINDOW

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        origins = env.get(CORS_ORIGINS_ENV)
        return cls(
            model_uri=str(paths.model_path(env)),
            feedback_db=paths.feedback_db_path(env),
            feedback_url=_feedback_url(env),
            cors_origins=(
                tuple(o.strip() for o in origins.split(",") if o.strip())
                if origins is not None
                else DEFAULT_CORS_ORIGINS
            ),
            max_body_bytes=_positive_int(env, MAX_BODY_BYTES_ENV, DEFAULT_MAX_BODY_BYTES),
            max_batch=_positive_int(env, MAX_BATCH_ENV, DEFAULT_MAX_BATCH),
            reference_stats=Path(env.get(REFERENCE_STATS_ENV) or paths.prepare_metrics_path()),
            drift_threshold=float(env.get(DRIFT_THRESHOLD_ENV) or DEFAULT_DRIFT_THRESHOLD),
            blas_threads=_positive_int(env, BLAS_THREADS_ENV, DEFAULT_BLAS_THREADS),
            max_number_digits=_positive_int(env, MAX_NUMBER_DIGITS_ENV, DEFAULT_MAX_NUMBER_DIGITS),
            model_poll_seconds=_non_negative_float(env, MODEL_POLL_ENV, DEFAULT_MODEL_POLL_SECONDS),
            live_accuracy_window=_positive_int(env, LIVE_WINDOW_ENV, DEFAULT_LIVE_WINDOW),
        )


def _feedback_url(env: dict[str, str]) -> str | None:
    """``DOODLE_FEEDBACK_URL`` when set; anything but a postgresql:// URL stops the server at
    start-up, so a typo never leaves corrections in a local SQLite file."""
    raw = env.get(FEEDBACK_URL_ENV)
    if not raw:
        return None
    if not is_postgres_url(raw):
        scheme = raw.split("://", 1)[0] if "://" in raw else raw[:20]
        raise ValueError(
            f"{FEEDBACK_URL_ENV} must be a postgresql:// URL (postgresql://user:password@host:5432/dbname),"
            f" got one starting {scheme!r}; unset it to keep corrections in the SQLite file {FEEDBACK_DB_ENV}"
        )
    return raw


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    value = int(raw)
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _non_negative_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    value = float(raw)
    if not value >= 0:  # NaN too
        raise ValueError(f"{name} must be a number >= 0, got {raw!r}")
    return value
