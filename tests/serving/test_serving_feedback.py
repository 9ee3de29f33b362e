"""Feedback over real HTTP: stored before it is acknowledged, counted right, durable under kill -9."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import run_server

from doodle.loop.feedback import FeedbackStore
from serving import messages


def feedback_body(i: int) -> dict:
    image = np.zeros(784)
    image[i % 784] = 1.0
    # Every third row is a correction (predicted != actual); the rest confirm the prediction.
    return {
        "image_vector": image.tolist(),
        "predicted_digit": i % 10,
        "actual_digit": (i + 1) % 10 if i % 3 == 0 else i % 10,
    }


def counter_samples(client, name: str) -> dict[tuple[str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                counts[(sample.labels["predicted"], sample.labels["actual"])] = sample.value
    return counts


@pytest.mark.parametrize("path", ["/feedback", "/feedback/"])
def test_feedback_is_stored_before_the_answer(server, client, model, path):
    body = feedback_body(3)
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"message", "id"}
    assert answer["message"] == messages.FEEDBACK_STORED
    row = next(r for r in FeedbackStore(server.feedback_db).recent(50) if r.id == answer["id"])
    assert row.source == "api"
    assert (row.predicted_digit, row.actual_digit, row.is_error) == (3, 4, True)
    assert row.model_version == model.version
    np.testing.assert_array_equal(row.image.reshape(-1), np.asarray(body["image_vector"], dtype=np.float32))


SEVEN = [[[60.0, 50.0], [220.0, 50.0], [120.0, 240.0]], [[100.0, 140.0], [190.5, 140.25]], [[30.0, 30.0]]]


def test_a_correction_sent_with_its_strokes_keeps_them(server, client):
    response = client.post("/feedback", json={**feedback_body(7), "strokes": SEVEN})
    assert response.status_code == 200, response.text
    without = client.post("/feedback", json=feedback_body(8)).json()["id"]
    rows = {row.id: row for row in FeedbackStore(server.feedback_db).recent(50)}
    assert [stroke.tolist() for stroke in rows[response.json()["id"]].strokes] == SEVEN
    assert rows[without].strokes is None


BAD_STROKES = [
    ("no strokes", {"strokes": []}, messages.NO_STROKES),
    ("an empty stroke", {"strokes": [[[1, 2]], []]}, messages.EMPTY_STROKE.format(index=1)),
    ("three numbers", {"strokes": [[[1, 2, 3]]]}, messages.NOT_A_POINT.format(index=0, point=0)),
    ("not a list", {"strokes": "a seven"}, messages.STROKES_NOT_A_LIST),
    (
        "far off the pad",
        {"strokes": [[[10, 10], [5000, 10]]]},
        messages.FAR_OUTSIDE_PAD.format(index=0, point=1, x=5000, y=10, width=280, height=280),
    ),
    (
        "far off a smaller pad",
        {"strokes": [[[10, 10], [200, 10]]], "width": 100, "height": 100},
        messages.FAR_OUTSIDE_PAD.format(index=0, point=1, x=200, y=10, width=100, height=100),
    ),
    (
        "too many points",
        {"strokes": [[[float(i % 200), 5.0] for i in range(1500)]] * 3},
        messages.TOO_MANY_POINTS.format(count=4500, limit=4000),
    ),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD_STROKES, ids=[b[0] for b in BAD_STROKES])
def test_bad_strokes_refuse_the_correction_as_predict_strokes_does(server, client, what, change, message):
    before = FeedbackStore(server.feedback_db).count()
    response = client.post("/feedback", json={**feedback_body(1), **change})
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": message}
    assert FeedbackStore(server.feedback_db).count() == before


def test_nan_in_strokes_is_refused_by_name(server, client):
    image = json.dumps(feedback_body(1)["image_vector"])
    raw = '{"image_vector": ' + image + ', "predicted_digit": 1, "actual_digit": 2, "strokes": [[[10, NaN]]]}'
    response = client.post("/feedback", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "finite numbers" in response.json()["detail"] and "strokes" in response.json()["detail"]


def test_the_strokes_field_and_its_errors_are_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/feedback"]["post"]
    assert "far outside the pad" in operation["responses"]["422"]["description"]
    request = schema["components"]["schemas"]["FeedbackRequest"]
    assert {"strokes", "width", "height"} <= set(request["properties"])
    assert set(request["required"]) == {"image_vector", "predicted_digit", "actual_digit"}


BAD_FEEDBACK = [
    ("digit 10", {"actual_digit": 10}, messages.DIGIT_INVALID.format(field="actual_digit")),
    ("negative digit", {"predicted_digit": -1}, messages.DIGIT_INVALID.format(field="predicted_digit")),
    ("digit as string", {"actual_digit": "3"}, messages.DIGIT_INVALID.format(field="actual_digit")),
    ("digit as float", {"predicted_digit": 3.5}, messages.DIGIT_INVALID.format(field="predicted_digit")),
    ("digit as bool", {"predicted_digit": True}, messages.DIGIT_INVALID.format(field="predicted_digit")),
    ("missing digit", {"actual_digit": None}, messages.MISSING_FIELD.format(field="actual_digit")),
    ("short image", {"image_vector": [0.0] * 10}, messages.WRONG_LENGTH.format(field="image_vector")),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD_FEEDBACK, ids=[b[0] for b in BAD_FEEDBACK])
def test_bad_feedback_is_refused_and_not_stored(server, client, what, change, message):
    before = FeedbackStore(server.feedback_db).count()
    body = {**feedback_body(1), **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = client.post("/feedback", json=body)
    assert response.status_code == 422
    assert response.json() == {"detail": message}
    assert FeedbackStore(server.feedback_db).count() == before


def test_integral_floats_are_integers_as_json_schema_says(server, client):
    response = client.post(
        "/feedback", json={**feedback_body(2), "predicted_digit": 2.0, "actual_digit": 5.0}
    )
    assert response.status_code == 200, response.text
    row = next(r for r in FeedbackStore(server.feedback_db).recent(50) if r.id == response.json()["id"])
    assert (row.predicted_digit, row.actual_digit) == (2, 5)


@pytest.mark.slow
def test_one_thousand_concurrent_feedback_posts(tmp_path, model_dir):
    with (
        run_server(tmp_path, model_dir) as server,
        server.client(max_connections=64, max_keepalive_connections=None) as client,
    ):
        bodies = [feedback_body(i) for i in range(1000)]
        with ThreadPoolExecutor(max_workers=64) as pool:
            responses = list(pool.map(lambda body: client.post("/feedback", json=body), bodies))
        assert [r.status_code for r in responses] == [200] * 1000
        ids = [r.json()["id"] for r in responses]
        assert len(set(ids)) == 1000

        store = FeedbackStore(server.feedback_db)
        assert store.count() == 1000
        expected_errors = sum(b["predicted_digit"] != b["actual_digit"] for b in bodies)
        assert store.count(errors_only=True) == expected_errors == 334

        totals = counter_samples(client, "doodle_feedback_total")
        errors = counter_samples(client, "doodle_feedback_errors_total")
        assert sum(totals.values()) == 1000
        assert sum(errors.values()) == expected_errors
        assert all(predicted != actual for predicted, actual in errors)
        for (predicted, actual), count in errors.items():
            assert totals[(predicted, actual)] == count


@pytest.mark.slow
def test_every_acknowledged_feedback_survives_kill_9(tmp_path, model_dir):
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    with run_server(tmp_path, model_dir) as server:

        def post_until_stopped(worker: int) -> None:
            with server.client() as client:
                i = worker
                while not stop.is_set():
                    try:
                        response = client.post("/feedback", json=feedback_body(i))
                    except httpx.TransportError:
                        return  # the server died mid-request: this one was never acknowledged
                    if response.status_code == 200:
                        with lock:
                            acknowledged.append(response.json()["id"])
                    i += 8

        threads = [threading.Thread(target=post_until_stopped, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with lock:
                if len(acknowledged) >= 300:
                    break
            stop.wait(0.01)
        else:
            stop.set()
            pytest.fail(f"only {len(acknowledged)} feedback posts acknowledged in 120 s")
        server.process.kill()  # SIGKILL, mid-load: no shutdown, no flush
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    conn = sqlite3.connect(server.feedback_db)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM feedback")}
    finally:
        conn.close()
    assert len(acknowledged) >= 300
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged rows lost"
