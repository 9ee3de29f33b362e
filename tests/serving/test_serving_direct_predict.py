"""`DirectPredictMiddleware`: the direct path answers a well-formed ``POST /predict`` exactly as
the route does, and hands everything else to the route with the body it read replayed."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest
from serving_helpers import DIGIT_VECTOR

from serving.routes import PREDICT_ROUTE, DirectPredictMiddleware


def test_the_direct_answer_is_the_routes_answer(client, model, digit_images):
    """``/predict`` (the direct path) and ``/predict/`` (the same endpoint through FastAPI's
    route) give the same JSON for the same images, over real HTTP."""
    for image in digit_images[:6]:
        body = {"image_vector": image.tolist()}
        direct = client.post("/predict", json=body)
        routed = client.post("/predict/", json=body)
        assert direct.status_code == routed.status_code == 200
        assert direct.json() == routed.json()
        assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"
        assert direct.json()["Result"] == int(model.predict(image[None])[0][0])


def test_a_body_sent_in_chunks_is_read_whole(client, model):
    raw = orjson.dumps({"image_vector": DIGIT_VECTOR})
    chunks = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    response = client.post("/predict", content=iter(chunks), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["Result"] == int(model.predict(np.array([DIGIT_VECTOR], dtype=np.float32))[0][0])


class Route:
    """The app behind the middleware, as an ASGI app: records what reached it and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(app, state_app, body: bytes, content_type: bytes = b"application/json", path: str = "/predict"):
    """One request through ``app`` in chunks of 700 bytes; the status, the body and the scope."""
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", content_type)],
        "app": state_app,
    }

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), scope


@pytest.mark.parametrize(
    "what, body, content_type, path",
    [
        ("not JSON", b'{"image_vector": [0.5,', b"application/json", "/predict"),
        ("NaN", b'{"image_vector": [NaN]}', b"application/json", "/predict"),
        ("over 1", orjson.dumps({"image_vector": [2.0] * 784}), b"application/json", "/predict"),
        ("blank", orjson.dumps({"image_vector": [0.0] * 784}), b"application/json", "/predict"),
        ("no content type of JSON", orjson.dumps({"image_vector": DIGIT_VECTOR}), b"text/plain", "/predict"),
        ("another path", orjson.dumps({"image_vector": DIGIT_VECTOR}), b"application/json", "/predict/"),
    ],
)
def test_what_the_direct_path_does_not_answer_reaches_the_route_with_its_body(
    app_client, what, body, content_type, path
):
    route = Route()
    status, _, scope = call(DirectPredictMiddleware(route), app_client.app, body, content_type, path)
    assert status == 299 and route.bodies == [body], what
    assert "route" not in scope  # the router sets it, as for any request


def test_a_well_formed_request_is_answered_without_the_route(app_client, model):
    route = Route()
    body = orjson.dumps({"image_vector": DIGIT_VECTOR})
    status, answer, scope = call(
        DirectPredictMiddleware(route), app_client.app, body, b"application/json; charset=utf-8"
    )
    assert status == 200 and route.bodies == []
    assert scope["route"] is PREDICT_ROUTE  # the HTTP metrics label it /predict
    assert (
        orjson.loads(answer)
        == app_client.post("/predict/", content=body, headers={"Content-Type": "application/json"}).json()
    )


def test_without_a_model_the_route_answers(app_client):
    route = Route()
    state = app_client.app.state.serving
    served, state.model = state.model, None
    try:
        status, _, _ = call(
            DirectPredictMiddleware(route), app_client.app, orjson.dumps({"image_vector": DIGIT_VECTOR})
        )
    finally:
        state.model = served
    assert status == 299 and len(route.bodies) == 1
