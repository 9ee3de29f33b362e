"""Fixtures for the API tests: a tiny seeded model in tmp_path, served two ways with the same
settings: in-process through FastAPI's `TestClient` (`app_client`: fast, for schemas and error
cases) and by a real uvicorn in a subprocess on a free loopback port (`server`, `client`: for what
needs real HTTP, processes and time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import run_server, server_env, write_model

from doodle.model import model_io
from serving.config import Settings
from serving.main import create_app


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, digit_images) -> Path:
    directory = tmp_path_factory.mktemp("model")
    # An unsure margin in the middle of the test images' margins: some answers are unsure, some not.
    margins = model_io.top_two(write_model(directory).predict_proba(digit_images)).margins
    write_model(directory, unsure_margin=float(np.median(margins)))
    return directory


@pytest.fixture(scope="session")
def model(model_dir) -> model_io.Model:
    """The served model as the test loads it itself, to compute expected answers."""
    return model_io.load_model(model_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    """One server per test module (tests that count things use deltas or their own server)."""
    with run_server(tmp_path_factory.mktemp("server"), model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, model_dir):
    """The app in this process (lifespan run: model loaded), settings as the real server's."""
    settings = Settings.from_env(server_env(tmp_path_factory.mktemp("in-process"), model_dir))
    with TestClient(create_app(settings), base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="module")
def client(server):
    with server.client() as http:
        yield http


@pytest.fixture(scope="session")
def digit_images() -> np.ndarray:
    """``(16, 784)`` float32 in [0, 1]: varied stroke images, deterministic."""
    rng = np.random.default_rng(7)
    images = np.zeros((16, 28, 28), dtype=np.float32)
    for i, image in enumerate(images):
        row = 6 + i % 10
        image[row : row + 3, 6:22] = rng.uniform(0.6, 1.0)
        col = 8 + (i * 3) % 12
        image[5:23, col : col + 2] = 1.0
    return images.reshape(16, 784)
