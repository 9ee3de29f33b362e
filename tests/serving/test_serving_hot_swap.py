"""A new model at the served source is picked up without a restart: switched between requests
under load with no failed request, a corrupt file refused while the old model serves, the
switch and the live accuracy exported to Prometheus."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import DIGIT_VECTOR, run_server, write_model

from doodle.model import model_io

POLL = "0.2"  # seconds between polls of the model source in these tests


def samples(client: httpx.Client) -> dict[str, list]:
    """{sample name: [(labels, value), ...]} from /metrics, read by Prometheus's own parser."""
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_new_model_is_switched_to_under_load_without_a_failed_request(tmp_path, model_dir):
    served = tmp_path / "models"
    shutil.copytree(model_dir, served)
    old = model_io.load_model(served)
    with (
        run_server(tmp_path / "run", served, DOODLE_MODEL_POLL_SECONDS=POLL) as server,
        server.client() as client,
    ):
        assert client.get("/model").json()["version"] == old.version
        started_at = samples(client)["doodle_model_switch_timestamp_seconds"][0][1]
        stop = threading.Event()
        statuses: Counter = Counter()
        versions: Counter = Counter()
        lock = threading.Lock()

        def load() -> None:
            with server.client() as http:
                while not stop.is_set():
                    answer = http.post("/predict", json={"image_vector": DIGIT_VECTOR})
                    with lock:
                        statuses[answer.status_code] += 1
                        if answer.status_code == 200:
                            versions[answer.json()["model_version"]] += 1

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: sum(statuses.values()) > 50, what="load before the switch")
            before_write = time.time()
            new = write_model(served, seed=5)
            assert new.version != old.version
            wait_for(lambda: client.get("/model").json()["version"] == new.version, what="the switch")
            seen = sum(statuses.values())
            wait_for(lambda: sum(statuses.values()) > seen + 50, what="load after the switch")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert set(statuses) == {200}, statuses
        assert set(versions) == {old.version, new.version}
        assert client.get("/readyz").json() == {"ready": True, "model_version": new.version, "reason": None}
        assert (
            client.post("/predict", json={"image_vector": DIGIT_VECTOR}).json()["model_version"]
            == new.version
        )
        found = samples(client)
        assert found["doodle_model_switches_total"] == [({}, 1.0)]
        switched_at = found["doodle_model_switch_timestamp_seconds"][0][1]
        assert switched_at >= before_write > started_at
        assert [labels["version"] for labels, value in found["doodle_model_info"] if value == 1] == [
            new.version
        ]
        assert client.get("/model").json()["switched_at"] == switched_at
        assert f"switched model {old.version} -> {new.version}" in server.log()


def test_a_corrupt_model_file_is_refused_and_the_old_model_keeps_serving(tmp_path, model_dir):
    served = tmp_path / "models"
    shutil.copytree(model_dir, served)
    old = model_io.load_model(served)
    with (
        run_server(tmp_path / "run", served, DOODLE_MODEL_POLL_SECONDS=POLL) as server,
        server.client() as client,
    ):
        weights = served / model_io.WEIGHTS_NAME
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum no longer matches
        weights.write_bytes(bytes(data))
        wait_for(lambda: "new model refused" in server.log(), what="the refusal in the log")
        assert "SHA-256 mismatch" in server.log()
        assert client.get("/readyz").status_code == 200
        assert client.get("/model").json()["version"] == old.version
        answer = client.post("/predict", json={"image_vector": DIGIT_VECTOR})
        assert answer.status_code == 200 and answer.json()["model_version"] == old.version
        found = samples(client)
        assert found["doodle_model_load_failures_total"] == [({}, 1.0)]
        assert found["doodle_model_switches_total"] == [({}, 0.0)]
        assert found["doodle_model_loaded"] == [({}, 1.0)]
        # Garbage in place of the metadata is refused the same way.
        (served / model_io.METADATA_NAME).write_text("{not json")
        wait_for(
            lambda: samples(client)["doodle_model_load_failures_total"] == [({}, 2.0)], what="second refusal"
        )
        assert client.get("/readyz").status_code == 200
        # A good model written over the broken files is then served.
        new = write_model(served, seed=9)
        wait_for(lambda: client.get("/model").json()["version"] == new.version, what="the switch")


def test_live_accuracy_comes_from_feedback_on_the_served_version(tmp_path, model_dir):
    with run_server(tmp_path, model_dir, DOODLE_MODEL_POLL_SECONDS=POLL) as server, server.client() as client:
        assert str(samples(client)["doodle_live_accuracy"][0][1]) == "nan"
        for predicted, actual in ((1, 7), (2, 2), (3, 8), (4, 4)):
            body = {"image_vector": DIGIT_VECTOR, "predicted_digit": predicted, "actual_digit": actual}
            assert client.post("/feedback", json=body).status_code == 200
        wait_for(lambda: samples(client)["doodle_live_accuracy_rows"] == [({}, 4.0)], what="the live window")
        assert samples(client)["doodle_live_accuracy"] == [({}, 0.5)]
