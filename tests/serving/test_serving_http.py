"""The API over real HTTP (uvicorn in a subprocess): the wire format end to end, and request-size
limits, which depend on how a real server receives a body (Content-Length, chunked streaming)."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import DIGIT_VECTOR, PREDICT_KEYS, TEST_MAX_BODY_BYTES, assert_runner_up

from serving import messages


@pytest.mark.parametrize("path", ["/predict", "/predict/"])
def test_predict_wire_format_with_and_without_slash(client, model, digit_images, path):
    for image in digit_images[:4]:
        response = client.post(path, json={"image_vector": image.tolist()})
        assert response.status_code == 200, response.text  # no redirect either way
        body = response.json()
        assert set(body) == PREDICT_KEYS
        expected = model.predict_proba(image[None])[0]
        assert body["Result"] == int(np.argmax(expected))
        assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)
        assert body["confidence"] == pytest.approx(float(expected.max()), abs=1e-6)
        assert_runner_up(body, expected, model.unsure_margin)
        assert body["model_version"] == model.version


def test_body_over_the_limit_declared_by_content_length(client):
    raw = b'{"image_vector": [' + b"0," * (TEST_MAX_BODY_BYTES // 2) + b"0]}"
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": messages.BODY_TOO_LARGE.format(limit=TEST_MAX_BODY_BYTES)}
    assert client.get("/healthz").status_code == 200


def test_body_over_the_limit_while_streaming_without_content_length(client):
    chunk = b"0," * 8192

    def chunks():
        yield b'{"image_vector": ['
        for _ in range(TEST_MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk
        yield b"0]}"

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"detail": messages.BODY_TOO_LARGE.format(limit=TEST_MAX_BODY_BYTES)}
    assert client.post("/predict", json={"image_vector": DIGIT_VECTOR}).status_code == 200
