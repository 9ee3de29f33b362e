"""Helpers for the API tests: a tiny seeded model, its settings, a real uvicorn server in a
subprocess on a free loopback port (`support.servers`), and drawings to upload."""

from __future__ import annotations

import io
import json
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from doodle.model import mlp, model_io
from support.servers import UvicornServer, free_port, http_client  # noqa: F401  (free_port: for the tests)

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_SIZES = [784, 32, 10]
TRAINING_METRICS = {"test_accuracy": 0.5, "validation_accuracy": 0.5}
# A small limit so the 413 tests send little; a batch of 64 images still fits easily.
TEST_MAX_BODY_BYTES = 256 * 1024
TEST_MAX_BATCH = 64
ANSWER_KEYS = {"Result", "probabilities", "confidence", "runner_up", "runner_up_confidence", "unsure"}
PREDICT_KEYS = ANSWER_KEYS | {"model_version"}  # /predict's answer
# A vertical stroke, a "1": the simplest valid image that is not blank (blank ones get a 422).
_stroke = np.zeros((28, 28), dtype=np.float32)
_stroke[4:24, 13:15] = 1.0
DIGIT_VECTOR: list[float] = _stroke.reshape(-1).tolist()
# Statistics shaped like the prepare stage's reference numbers (MNIST-like values).
REFERENCE_STATS = {
    "image_mean_mean": 0.13,
    "image_mean_std": 0.04,
    "ink_fraction_mean": 0.12,
    "ink_fraction_std": 0.04,
    "pixel_mean": 0.13,
    "pixel_std": 0.31,
}


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    feedback_db: Path
    model_dir: Path
    log_path: Path

    def client(self, **kwargs) -> httpx.Client:
        return http_client(self.url, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def assert_runner_up(body: dict, expected: np.ndarray, unsure_margin: float) -> None:
    """The runner-up is the second most probable digit; unsure when the top two are close."""
    order = np.argsort(expected)[::-1]
    assert body["runner_up"] == int(order[1]) != body["Result"]
    assert body["runner_up_confidence"] == pytest.approx(float(expected[order[1]]), abs=1e-6)
    assert body["unsure"] is bool(expected[order[0]] - expected[order[1]] < unsure_margin)


def write_model(directory: Path, seed: int = 0, unsure_margin: float | None = None) -> model_io.Model:
    params = mlp.init_params(LAYER_SIZES, seed=seed)
    metadata = {"metrics": TRAINING_METRICS}
    if unsure_margin is not None:
        metadata["unsure_margin"] = unsure_margin
    return model_io.save_model(
        directory,
        params,
        normalization={"mean": 0.1307, "std": 0.3081},
        metadata=metadata,
    )


@contextmanager
def run_server(workdir: Path, model_dir: Path | str | None, **extra_env: str):
    """Start ``uvicorn serving.main:create_app --factory`` on a free port; stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**server_env(workdir, model_dir), **extra_env}
    log_path = workdir / "server.log"
    with UvicornServer(env=env, log_path=log_path) as uvicorn:
        yield RunningServer(
            url=uvicorn.url,
            process=uvicorn.process,
            feedback_db=Path(env["DOODLE_FEEDBACK_DB"]),
            model_dir=Path(env["DOODLE_MODEL_PATH"]),
            log_path=log_path,
        )


def server_env(workdir: Path, model_dir: Path | str | None) -> dict[str, str]:
    """The DOODLE_* settings of a test server whose files all live in ``workdir``."""
    reference = workdir / "prepare.json"
    reference.write_text(json.dumps(REFERENCE_STATS))
    return {
        "DOODLE_MODEL_PATH": str(model_dir) if model_dir is not None else str(workdir / "no-model"),
        "DOODLE_FEEDBACK_DB": str(workdir / "feedback.sqlite"),
        "DOODLE_REFERENCE_STATS": str(reference),
        "DOODLE_MAX_BODY_BYTES": str(TEST_MAX_BODY_BYTES),
        "DOODLE_MAX_BATCH": str(TEST_MAX_BATCH),
    }


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def drawing(size: int = 280, mode: str = "RGBA") -> np.ndarray:
    """A canvas-like drawing: black strokes of a '7' on white, ``(size, size, 4)`` uint8."""
    canvas = Image.new(mode, (size, size), "white")
    pen = ImageDraw.Draw(canvas)
    width = max(2, size // 14)
    pen.line(
        [(size * 0.25, size * 0.2), (size * 0.75, size * 0.2), (size * 0.4, size * 0.85)],
        fill="black",
        width=width,
    )
    return np.asarray(canvas)
