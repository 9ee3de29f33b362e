"""Helpers for the API tests: a tiny seeded model, a real uvicorn server in a subprocess on a
free loopback port, and drawings to upload."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from doodle import mlp, model_io

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_SIZES = [784, 32, 10]
TRAINING_METRICS = {"test_accuracy": 0.5, "validation_accuracy": 0.5}
# A small limit so the 413 tests send little; a batch of 64 images still fits easily.
TEST_MAX_BODY_BYTES = 256 * 1024
TEST_MAX_BATCH = 64
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    feedback_db: Path
    model_dir: Path
    log_path: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


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
    reference = workdir / "prepare.json"
    reference.write_text(json.dumps(REFERENCE_STATS))
    port = free_port()
    env = {
        **os.environ,
        "DOODLE_MODEL_PATH": str(model_dir) if model_dir is not None else str(workdir / "no-model"),
        "DOODLE_FEEDBACK_DB": str(workdir / "feedback.sqlite"),
        "DOODLE_REFERENCE_STATS": str(reference),
        "DOODLE_MAX_BODY_BYTES": str(TEST_MAX_BODY_BYTES),
        "DOODLE_MAX_BATCH": str(TEST_MAX_BATCH),
        **extra_env,
    }
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "serving.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = RunningServer(
        url=f"http://127.0.0.1:{port}",
        process=process,
        feedback_db=workdir / "feedback.sqlite",
        model_dir=Path(model_dir) if model_dir is not None else workdir / "no-model",
        log_path=log_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not alive after 60 s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()




def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def drawing(size: int = 280, mode: str = "RGBA") -> np.ndarray:
    """A canvas-like drawing: black strokes of a '7' on white, ``(size, size, 4)`` uint8."""
    canvas = Image.new(mode, (size, size), "white")
    pen = ImageDraw.Draw(canvas)
    width = max(2, size // 14)
    pen.line([(size * 0.25, size * 0.2), (size * 0.75, size * 0.2), (size * 0.4, size * 0.85)],
             fill="black", width=width)
    return np.asarray(canvas)
