"""/metrics over real HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import REFERENCE_STATS

from serving.metrics import METRIC_NAMES


def scrape(client) -> dict[str, list]:
    """{sample name: [(labels, value), ...]} from one GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name, **labels) -> float:
    matching = [v for sample_labels, v in samples.get(name, []) if sample_labels == labels]
    assert len(matching) <= 1
    return matching[0] if matching else 0.0


def test_metrics_route_answers_directly_without_redirect(client):
    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert "doodle_http_requests_total" in response.text


def test_every_declared_metric_is_exported(client, model):
    families = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    # The parser names counters without the _total suffix.
    exported = families | {f"{name}_total" for name in families}
    assert set(METRIC_NAMES) <= exported
    samples = scrape(client)
    assert value(samples, "doodle_model_info", version=model.version, sha256=model.sha256) == 1.0
    assert value(samples, "doodle_model_loaded") == 1.0


def test_predictions_are_counted_by_digit_route_and_status(client, model, digit_images):
    before = scrape(client)
    vectors = [image.tolist() for image in digit_images[:6]]
    for vec in vectors:
        assert client.post("/predict", json={"image_vector": vec}).status_code == 200
    assert client.post("/predict/", json={"image_vector": vectors[0]}).status_code == 200
    assert client.post("/predict/batch", json={"image_vectors": vectors}).status_code == 200
    assert client.post("/predict", json={"image_vector": [2.0] * 784}).status_code == 422
    after = scrape(client)

    digits = model.predict(digit_images[:6])[0].tolist()
    expected = {d: 2 * digits.count(d) + (d == digits[0]) for d in range(10)}
    for digit in range(10):
        delta = value(after, "doodle_predictions_total", digit=str(digit)) - value(
            before, "doodle_predictions_total", digit=str(digit)
        )
        assert delta == expected[digit]
    route = {"route": "/predict", "method": "POST"}
    assert (
        value(after, "doodle_http_requests_total", status="200", **route)
        - value(before, "doodle_http_requests_total", status="200", **route)
        == 7
    )  # /predict and /predict/ share one route label
    assert (
        value(after, "doodle_http_requests_total", status="422", **route)
        - value(before, "doodle_http_requests_total", status="422", **route)
        == 1
    )
    assert (
        value(after, "doodle_inference_seconds_count") - value(before, "doodle_inference_seconds_count") == 8
    )
    assert (
        value(after, "doodle_prediction_confidence_count")
        - value(before, "doodle_prediction_confidence_count")
        == 13
    )
    assert value(after, "doodle_http_request_duration_seconds_count", route="/predict/batch") >= 1


def test_unknown_paths_share_one_route_label(client):
    for i in range(25):
        assert client.get(f"/fuzz/{i}/x").status_code == 404
    samples = scrape(client)
    routes = {labels["route"] for labels, _ in samples["doodle_http_requests_total"]}
    assert not any(route.startswith("/fuzz") for route in routes)
    assert value(samples, "doodle_http_requests_total", route="unmatched", method="GET", status="404") >= 25


def test_oversized_bodies_are_counted_under_their_route(client):
    raw = b'{"image_vector": [' + b"0," * 400_000 + b"0]}"
    before = scrape(client)
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    after = scrape(client)
    labels = {"route": "/predict", "method": "POST", "status": "413"}
    assert (
        value(after, "doodle_http_requests_total", **labels)
        - value(before, "doodle_http_requests_total", **labels)
        == 1
    )


def test_drift_score_is_the_larger_z_of_mean_intensity_and_ink_fraction(client):
    image = np.zeros(784)
    image[:392] = 0.6  # mean 0.3 and half the pixels ink: far from MNIST-like images
    assert client.post("/predict", json={"image_vector": image.tolist()}).status_code == 200
    samples = scrape(client)
    z_mean = (0.3 - REFERENCE_STATS["image_mean_mean"]) / REFERENCE_STATS["image_mean_std"]
    z_ink = (0.5 - REFERENCE_STATS["ink_fraction_mean"]) / REFERENCE_STATS["ink_fraction_std"]
    assert value(samples, "doodle_input_drift_score") == pytest.approx(max(abs(z_mean), abs(z_ink)))
    drifted = value(samples, "doodle_drifted_requests_total")
    assert drifted >= 1

    typical = np.zeros(784)
    typical[:94] = 1.0
    typical[94:114] = 0.396  # mean 0.13, ink fraction 0.1199: right at the reference
    assert client.post("/predict", json={"image_vector": typical.tolist()}).status_code == 200
    samples = scrape(client)
    assert value(samples, "doodle_input_drift_score") < 0.1
    assert value(samples, "doodle_drifted_requests_total") == drifted
