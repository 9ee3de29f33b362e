"""Monitoring configuration: the Grafana dashboard asks only for what the app exports, the
provisioning files agree with each other, and a real Prometheus scrapes the app."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import REPO_ROOT, free_port, run_server

MONITORING = REPO_ROOT / "serving" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "doodle-api.json"
METRIC_IN_PROMQL = re.compile(r"\b(doodle_[a-z0-9_]+)\b(\{[^}]*\})?")
LABEL_IN_SELECTOR = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels Prometheus adds when scraping, on top of the app's own.
TARGET_LABELS = {"job", "instance"}


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def exported_series(client) -> dict[str, set[str]]:
    """{series name as PromQL sees it: its label names} from the app's own /metrics."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        if family.type == "counter":
            names = {f"{family.name}_total": labels}
        elif family.type == "histogram":
            names = {
                f"{family.name}_count": labels,
                f"{family.name}_sum": labels,
                f"{family.name}_bucket": labels | {"le"},
            }
        else:
            names = {family.name: labels}
        series.update(names)
    return series


def test_dashboard_panels_query_only_exported_metrics_and_labels(client, digit_images):
    # Give every labelled metric a child so its label names show in the exposition.
    client.post("/predict", json={"image_vector": digit_images[0].tolist()})
    client.post(
        "/feedback", json={"image_vector": digit_images[0].tolist(), "predicted_digit": 1, "actual_digit": 2}
    )
    series = exported_series(client)
    queries = dashboard_queries()
    assert len(queries) >= 10
    used = set()
    for title, expr in queries:
        found = METRIC_IN_PROMQL.findall(expr)
        assert found, f"{title}: {expr} names no doodle_ metric"
        metric_labels: set[str] = set()
        for name, selector in found:
            assert name in series, f"{title}: {name} is not exported by the app"
            used.add(name)
            metric_labels |= series[name]
            for label, _ in LABEL_IN_SELECTOR.findall(selector):
                assert label in series[name] | TARGET_LABELS, f"{title}: {name} has no label {label}"
        for group in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in group.split(","))):
                assert label in metric_labels | TARGET_LABELS, f"{title}: no label {label} to group by"
    # The panels the monitoring brief asks for are all there.
    for name in (
        "doodle_http_requests_total",
        "doodle_http_request_duration_seconds_bucket",
        "doodle_predictions_total",
        "doodle_prediction_confidence_bucket",
        "doodle_input_drift_score",
        "doodle_feedback_errors_total",
        "doodle_feedback_total",
    ):
        assert name in used
    quantiles = {
        float(q) for q in re.findall(r"histogram_quantile\(([0-9.]+)", " ".join(e for _, e in queries))
    }
    assert {0.5, 0.95, 0.99} <= quantiles


def test_provisioning_files_agree():
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
    positions = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]}
    assert len(positions) == len(dashboard["panels"])  # no two panels on top of each other
    providers = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/doodle.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    assert "DOODLE_DASHBOARDS_DIR" in providers["providers"][0]["options"]["path"]
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert any(source["url"] == "http://127.0.0.1:9090" for source in datasources["datasources"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed")
def test_real_prometheus_scrapes_the_app(tmp_path, model_dir, digit_images):
    with run_server(tmp_path / "app", model_dir) as server:
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = "1s"
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [server.url.removeprefix("http://")]
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        prometheus_url = f"http://127.0.0.1:{port}"
        log = open(tmp_path / "prometheus.log", "wb")
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with server.client() as client:
                for image in digit_images[:5]:
                    assert client.post("/predict", json={"image_vector": image.tolist()}).status_code == 200
            result = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    answer = httpx.get(
                        f"{prometheus_url}/api/v1/query",
                        params={"query": "sum(doodle_predictions_total)"},
                        timeout=5,
                    ).json()
                    result = answer["data"]["result"]
                    if result and float(result[0]["value"][1]) >= 5:
                        break
                except (httpx.TransportError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
            assert result, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert float(result[0]["value"][1]) == 5.0

            target = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": "up"}).json()
            assert target["data"]["result"][0]["metric"]["job"] == "doodle-api"
            # Every dashboard expression is valid PromQL that Prometheus evaluates.
            for title, expr in dashboard_queries():
                answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}).json()
                assert answer["status"] == "success", f"{title}: {expr}: {answer}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
