"""The API in-process (FastAPI's TestClient, no sockets): every route, the schemas, every kind of
bad input and its message. What needs a real server is in test_serving_http.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from serving_helpers import (
    ANSWER_KEYS,
    DIGIT_VECTOR,
    PREDICT_KEYS,
    TEST_MAX_BATCH,
    assert_runner_up,
    drawing,
    png_bytes,
)

from doodle.canvas.preprocess import (
    BLANK_CANVAS_MESSAGE,
    IMAGE_TOO_LARGE_MESSAGE,
    canvas_to_input,
    decode_image,
)
from serving import messages


@pytest.fixture(scope="module")
def client(app_client):
    """This module talks to the app in-process."""
    return app_client


def vector(image: np.ndarray) -> list[float]:
    return [float(v) for v in image]


def test_explain_gives_the_runner_up_and_the_attribution_map(client, model, digit_images):
    from doodle.reading.explain import attribution

    for image in digit_images[:3]:
        response = client.post("/predict/explain", json={"image_vector": vector(image)})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == PREDICT_KEYS | {"attribution"}
        expected = model.predict_proba(image[None])[0]
        order = np.argsort(-expected, kind="stable")
        assert (body["Result"], body["runner_up"]) == (int(order[0]), int(order[1]))
        assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)
        assert len(body["attribution"]) == 784
        mine = attribution(model, image[None], order[:1], order[1:2])[0]
        np.testing.assert_allclose(body["attribution"], mine, rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(body["attribution"])[np.asarray(image) == 0] == 0)  # background says nothing
        assert np.any(np.asarray(body["attribution"]) != 0)


def test_explain_refuses_what_predict_refuses(client):
    response = client.post("/predict/explain", json={"image_vector": [0.0] * 784})
    assert response.status_code == 422 and response.json() == {"detail": messages.BLANK_CANVAS}
    assert client.post("/predict/explain", json={"image_vector": [0.5] * 10}).status_code == 422


def test_predict_accepts_integer_pixels_as_existing_clients_send(client, model):
    pixels = [0] * 784
    pixels[300:320] = [1] * 20
    response = client.post("/predict", json={"image_vector": pixels})
    assert response.status_code == 200
    expected = model.predict_proba(np.asarray(pixels, dtype=np.float32)[None])[0]
    assert response.json()["Result"] == int(np.argmax(expected))


def test_batch_predict_matches_single_predictions(client, model, digit_images):
    response = client.post("/predict/batch", json={"image_vectors": [vector(i) for i in digit_images]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == model.version
    expected = model.predict_proba(digit_images)
    assert [r["Result"] for r in body["results"]] == expected.argmax(axis=1).tolist()
    for result, probs in zip(body["results"], expected):
        assert set(result) == ANSWER_KEYS
        assert result["probabilities"] == pytest.approx(probs.tolist(), abs=1e-6)
        assert_runner_up(result, probs, model.unsure_margin)
    # The test model's margin sits among these images' margins: both answers occur.
    assert {result["unsure"] for result in body["results"]} == {True, False}


@pytest.mark.parametrize(
    ("fmt", "size", "mode"), [("PNG", 280, "RGBA"), ("PNG", 1000, "L"), ("JPEG", 333, "RGB")]
)
def test_image_upload_goes_through_the_shared_preprocessing(client, model, fmt, size, mode):
    data = png_bytes(drawing(size, mode), fmt)
    response = client.post("/predict/image", files={"file": (f"digit.{fmt.lower()}", data)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PREDICT_KEYS | {"image_vector"}
    expected_input = canvas_to_input(decode_image(data)).reshape(-1)
    assert body["image_vector"] == pytest.approx(expected_input.tolist(), abs=1e-6)
    expected = model.predict_proba(expected_input[None])[0]
    assert body["Result"] == int(np.argmax(expected))
    assert_runner_up(body, expected, model.unsure_margin)


def test_model_route_reports_the_served_model(client, model):
    body = client.get("/model").json()
    assert body["version"] == model.version
    assert body["sha256"] == model.sha256
    assert body["layer_sizes"] == [784, 32, 10]
    assert 0.0 < body["unsure_margin"] == model.unsure_margin
    assert body["metrics"] == {"test_accuracy": 0.5, "validation_accuracy": 0.5}


def test_health_and_readiness(client, model):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model_version": model.version, "reason": None}


def test_docs_and_openapi_are_served(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    for path in ("/predict", "/predict/batch", "/predict/image", "/feedback", "/model"):
        assert path in schema["paths"]
    for name in ("PredictResponse", "ImagePredictResponse"):
        properties = schema["components"]["schemas"][name]["properties"]
        assert {"runner_up", "runner_up_confidence", "unsure"} <= set(properties)
        assert "unsure margin" in properties["unsure"]["description"]


def body_with(pixels) -> bytes:
    return json.dumps({"image_vector": pixels}).encode()


VALID = DIGIT_VECTOR

NOT_A_NUMBER = messages.NOT_A_NUMBER.format(field="image_vector")

BAD_JSON_BODIES = [
    # (what, raw body, status, message)
    ("too short", body_with([0.0] * 783), 422, messages.WRONG_LENGTH.format(field="image_vector")),
    ("too long", body_with([0.0] * 785), 422, messages.WRONG_LENGTH.format(field="image_vector")),
    ("empty list", body_with([]), 422, messages.WRONG_LENGTH.format(field="image_vector")),
    (
        "NaN literal",
        b'{"image_vector": [NaN' + b", 0" * 783 + b"]}",
        422,
        messages.NOT_FINITE.format(field="image_vector"),
    ),
    (
        "Infinity literal",
        b'{"image_vector": [0' + b", 0" * 782 + b", -Infinity]}",
        422,
        messages.NOT_FINITE.format(field="image_vector"),
    ),
    ("above 1", body_with([0.0] * 783 + [1.5]), 422, messages.OUT_OF_RANGE.format(field="image_vector")),
    ("below 0", body_with([-0.1] + [0.0] * 783), 422, messages.OUT_OF_RANGE.format(field="image_vector")),
    (
        "huge number",
        b'{"image_vector": [1e400' + b", 0" * 783 + b"]}",
        422,
        messages.NOT_FINITE.format(field="image_vector"),
    ),
    ("string pixel", body_with(["0.5"] + [0.0] * 783), 422, NOT_A_NUMBER),
    ("boolean pixel", body_with([True] + [0.0] * 783), 422, NOT_A_NUMBER),
    ("null pixel", body_with([None] + [0.0] * 783), 422, NOT_A_NUMBER),
    ("nested list", body_with([[0.0]] * 784), 422, NOT_A_NUMBER),
    ("vector is a string", body_with("0,0,0"), 422, messages.NOT_A_LIST.format(field="image_vector")),
    ("vector is an object", body_with({"a": 1}), 422, messages.NOT_A_LIST.format(field="image_vector")),
    ("missing field", b'{"pixels": []}', 422, messages.MISSING_FIELD.format(field="image_vector")),
    ("body is a list", json.dumps(VALID).encode(), 422, messages.BODY_NOT_OBJECT),
    ("body is a number", b"3", 422, messages.BODY_NOT_OBJECT),
    ("not JSON", b"image_vector=1,2,3", 400, messages.INVALID_JSON),
    ("truncated JSON", body_with(VALID)[:-5], 400, messages.INVALID_JSON),
    ("empty body", b"", 422, messages.BODY_NOT_OBJECT),
]


@pytest.mark.parametrize(
    ("what", "raw", "status", "message"), BAD_JSON_BODIES, ids=[b[0] for b in BAD_JSON_BODIES]
)
def test_bad_predict_bodies_get_a_message_and_the_server_keeps_serving(client, what, raw, status, message):
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json() == {"detail": message}
    assert client.post("/predict", json={"image_vector": VALID}).status_code == 200


def test_wrong_content_type_is_rejected_with_a_message(client):
    response = client.post("/predict", content=body_with(VALID), headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BODY_NOT_OBJECT}


def test_batch_limits(client):
    too_many = {"image_vectors": [[0] * 784] * (TEST_MAX_BATCH + 1)}
    response = client.post("/predict/batch", json=too_many)
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BATCH_TOO_LARGE.format(limit=TEST_MAX_BATCH)}
    response = client.post("/predict/batch", json={"image_vectors": []})
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BATCH_EMPTY}
    response = client.post("/predict/batch", json={"image_vectors": [[0] * 784, [0] * 783]})
    assert response.status_code == 422
    assert response.json() == {"detail": messages.WRONG_LENGTH.format(field="image_vectors[1]")}
    response = client.post("/predict/batch", json={"image_vectors": [[0] * 784, [0] * 783 + [2]]})
    assert response.json() == {"detail": messages.OUT_OF_RANGE.format(field="image_vectors[1]")}


BAD_UPLOADS = [
    ("empty file", b"", 400, messages.EMPTY_UPLOAD),
    (
        "text file",
        b"this is not an image",
        415,
        messages.NOT_AN_IMAGE.format(reason="not a PNG or JPEG image"),
    ),
    ("truncated PNG", None, None, None),  # filled in below: status 415 or 422, message prefix
    ("blank canvas", png_bytes(np.full((280, 280), 255, dtype=np.uint8)), 422, messages.BLANK_CANVAS),
    (
        "blank transparent canvas",
        png_bytes(np.zeros((100, 100, 4), dtype=np.uint8)),
        422,
        messages.BLANK_CANVAS,
    ),
]


@pytest.mark.parametrize(("what", "data", "status", "message"), BAD_UPLOADS, ids=[u[0] for u in BAD_UPLOADS])
def test_bad_uploads_get_a_message(client, what, data, status, message):
    if data is None:
        data = png_bytes(drawing())[:200]
        response = client.post("/predict/image", files={"file": ("d.png", data)})
        assert response.status_code in (415, 422)
        assert response.json()["detail"].startswith(messages.NOT_AN_IMAGE.split("{")[0])
    else:
        response = client.post("/predict/image", files={"file": ("d.png", data)})
        assert response.status_code == status, response.text
        assert response.json() == {"detail": message}
    assert client.get("/readyz").status_code == 200


def test_blank_message_is_the_dashboards_words(client):
    assert messages.BLANK_CANVAS == BLANK_CANVAS_MESSAGE == "draw a digit first"


def test_upload_without_a_file_field(client):
    response = client.post("/predict/image", files={"other": ("d.png", png_bytes(drawing()))})
    assert response.status_code == 422
    assert response.json() == {"detail": messages.MISSING_FIELD.format(field="file")}


def test_unknown_paths_and_methods(client):
    assert client.get("/no/such/thing").status_code == 404
    assert client.get("/predict").status_code == 405
    assert client.get("/metrics").status_code == 200


def test_cors_allows_the_dashboard_origin_only(client):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/predict", headers={"Origin": "http://127.0.0.1:8866", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://127.0.0.1:8866"
    assert "access-control-allow-credentials" not in allowed.headers
    refused = client.options("/predict", headers={"Origin": "http://evil.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = client.post(
        "/predict", json={"image_vector": VALID}, headers={"Origin": "http://localhost:8866"}
    )
    assert simple.headers["access-control-allow-origin"] == "http://localhost:8866"
    other = client.post("/predict", json={"image_vector": VALID}, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_an_upload_with_too_many_pixels_is_refused_before_decoding(client):
    huge = png_bytes(np.full((2500, 2500), 255, dtype=np.uint8))  # compresses to a few kB
    response = client.post("/predict/image", files={"file": ("huge.png", huge)})
    assert response.status_code == 422
    reason = response.json()["detail"].removeprefix(messages.NOT_AN_IMAGE.format(reason=""))
    assert reason.startswith(IMAGE_TOO_LARGE_MESSAGE)


@pytest.mark.parametrize("route", ["/predict", "/predict/"])
def test_blank_vector_is_reported_not_guessed(client, route):
    almost_blank = [0.0] * 784
    almost_blank[400:405] = [1.0] * 5  # five pixels of ink are not a digit
    for pixels in ([0.0] * 784, almost_blank):
        response = client.post(route, json={"image_vector": pixels})
        assert response.status_code == 422
        assert response.json() == {"detail": messages.BLANK_CANVAS}


def test_batch_names_the_first_blank_image(client):
    response = client.post(
        "/predict/batch", json={"image_vectors": [DIGIT_VECTOR, DIGIT_VECTOR, [0.0] * 784]}
    )
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BLANK_IN_BATCH.format(index=2)}
    assert client.post("/predict/batch", json={"image_vectors": [DIGIT_VECTOR] * 2}).status_code == 200
