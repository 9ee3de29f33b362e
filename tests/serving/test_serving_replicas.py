"""Two API replicas sharing a real PostgreSQL feedback store and a real MLflow registry server.

The stack is what "Running on several machines" in the README describes, on loopback: Debian's
PostgreSQL in a temporary folder, ``mlflow server`` on a database of it with an artifact folder
it serves, and two uvicorn processes with ``DOODLE_FEEDBACK_URL`` and
``DOODLE_MODEL_PATH=models:/doodle-mlp@champion``. Models are registered and crowned by
`doodle.loop.tracking` in a separate process, exactly as the train and promote stages of
`make retrain` call it (a tiny seeded 784-32-10 model stands in for a trained one: the full
pipeline takes many minutes of CPU, and what is under test is the registry and the replicas).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from serving_helpers import DIGIT_VECTOR, REPO_ROOT, server_env, write_model

from doodle.loop import tracking
from support.mlflow_server import MlflowServer
from support.servers import UvicornServer, free_port, http_client

pytestmark = pytest.mark.slow

CHAMPION_URI = f"models:/{tracking.REGISTERED_MODEL_NAME}@{tracking.CHAMPION_ALIAS}"
CORRECTION_BODY = json.dumps({"image_vector": DIGIT_VECTOR, "predicted_digit": 7, "actual_digit": 1})
# What the train stage logs and the promote stage does, for a model folder given on the command line.
REGISTER_AND_CROWN = """
import sys
from doodle.loop import tracking
tracking.setup()
run = tracking.log_training(
    params={"hidden": [32]}, history=[{"epoch": 1, "train_loss": 1.0}], metrics={"model_val_accuracy": 0.5},
    model_dir=sys.argv[1], promote=False, run_name="replica-test",
)
print(run.message)
tracking.set_champion(run.version)
print("champion:", run.version)
"""


def register_and_crown(model_dir: Path, tracking_uri: str, log_dir: Path) -> None:
    env = {**os.environ, tracking.TRACKING_URI_ENV: tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-c", REGISTER_AND_CROWN, str(model_dir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (log_dir / "register.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]


class Stack:
    """The shared services and the replicas' settings; `replica(i)` starts or restarts replica i."""

    def __init__(self, root: Path, feedback_url: str, tracking_uri: str):
        self.root, self.feedback_url, self.tracking_uri = root, feedback_url, tracking_uri
        self.replicas: dict[int, UvicornServer] = {}

    def env(self, workdir: Path, **extra: str) -> dict[str, str]:
        return {
            **server_env(workdir, CHAMPION_URI),
            "DOODLE_FEEDBACK_URL": self.feedback_url,
            tracking.TRACKING_URI_ENV: self.tracking_uri,
            "DOODLE_MODEL_POLL_SECONDS": "0.5",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **extra,
        }

    def replica(self, index: int) -> UvicornServer:
        old = self.replicas.get(index)
        workdir = self.root / f"replica-{index}"
        workdir.mkdir(exist_ok=True)
        server = UvicornServer(
            env=self.env(workdir),
            log_path=workdir / f"server-{time.monotonic_ns()}.log",
            port=old.port if old else None,
        )
        server.__enter__()
        self.replicas[index] = server
        wait_until_ready(server)
        return server

    def rows(self, query: str = "SELECT count(*) FROM feedback", args: tuple = ()) -> int:
        with psycopg.connect(self.feedback_url) as conn:
            return conn.execute(query, args).fetchone()[0]


def wait_until_ready(server: UvicornServer, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/readyz", timeout=10).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"replica not ready: {httpx.get(server.url + '/readyz').text}\n{server.log()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server):
    root = tmp_path_factory.mktemp("replicas")
    feedback_url = postgres_server.create_database("replica_feedback")
    postgres_server.create_database("replica_mlflow")
    backend = postgres_server.url("replica_mlflow", driver="postgresql+psycopg")
    with MlflowServer(backend, root / "mlartifacts", log_path=root / "mlflow.log") as registry:
        write_model(root / "model-v1", seed=11)
        register_and_crown(root / "model-v1", registry.url, root)
        stack = Stack(root, feedback_url, registry.url)
        try:
            for index in (0, 1):
                stack.replica(index)
            yield stack
        finally:
            for server in stack.replicas.values():
                server.stop()


def post_correction(http: httpx.Client) -> int | None:
    """The row id a replica acknowledged, or None when the request failed."""
    try:
        response = http.post(
            "/feedback", content=CORRECTION_BODY, headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError:
        return None
    return response.json()["id"] if response.status_code == 200 else None


def client(server: UvicornServer) -> httpx.Client:
    """One connection pool shared by the test's threads (httpx clients are thread-safe)."""
    return http_client(server.url, max_connections=16, max_keepalive_connections=16)


def test_a_thousand_concurrent_corrections_across_two_replicas_make_a_thousand_rows(stack):
    before = stack.rows()
    with client(stack.replicas[0]) as first, client(stack.replicas[1]) as second:
        with ThreadPoolExecutor(max_workers=16) as pool:
            ids = list(pool.map(post_correction, [(first, second)[i % 2] for i in range(1000)]))
    assert None not in ids
    assert len(set(ids)) == 1000
    assert stack.rows() - before == 1000
    assert stack.rows("SELECT count(*) FROM feedback WHERE id = ANY(%s)", (ids,)) == 1000


def test_a_replica_killed_in_a_burst_loses_no_acknowledged_row(stack):
    victim = stack.replicas[1]
    acknowledged: list[int] = []
    lock = threading.Lock()

    def post(_: int) -> None:
        row_id = post_correction(http)
        if row_id is not None:
            with lock:
                acknowledged.append(row_id)

    with client(victim) as http, ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(post, i) for i in range(400)]
        while len(acknowledged) < 100 and not all(future.done() for future in futures):
            time.sleep(0.01)
        os.killpg(victim.process.pid, signal.SIGKILL)  # mid-burst: requests in flight are cut
        victim.process.wait(timeout=30)
        for future in futures:
            future.result()
    assert 100 <= len(acknowledged) < 400
    stored = stack.rows("SELECT count(*) FROM feedback WHERE id = ANY(%s)", (acknowledged,))
    assert stored == len(acknowledged)
    stack.replica(1)  # back for the next test, on the same port


def test_a_new_champion_reaches_both_replicas_with_no_failed_predict(stack):
    replicas = [stack.replicas[0], stack.replicas[1]]
    old = {httpx.get(server.url + "/model").json()["version"] for server in replicas}
    assert len(old) == 1
    calls, failures, stop = [0, 0], [], threading.Event()

    def hammer(index: int) -> None:
        with http_client(replicas[index].url) as http:
            while not stop.is_set():
                try:
                    response = http.post("/predict", json={"image_vector": DIGIT_VECTOR})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                calls[index] += 1
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")

    workers = [threading.Thread(target=hammer, args=(i % 2,)) for i in range(4)]
    for worker in workers:
        worker.start()
    try:
        new_model = write_model(stack.root / "model-v2", seed=12)
        register_and_crown(stack.root / "model-v2", stack.tracking_uri, stack.root)
        crowned = time.monotonic()
        served: dict[int, float] = {}
        while len(served) < 2 and time.monotonic() - crowned < 120:
            for index, server in enumerate(replicas):
                if (
                    index not in served
                    and httpx.get(server.url + "/model").json()["version"] == new_model.version
                ):
                    served[index] = time.monotonic() - crowned
            time.sleep(0.05)
        time.sleep(1.0)  # keep predicting on the new model a little
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert len(served) == 2, [server.log() for server in replicas]
    assert failures == []
    assert min(calls) > 0
    for server in replicas:
        info = httpx.get(server.url + "/model").json()
        assert (info["version"], info["sha256"]) == (new_model.version, new_model.sha256)
        assert httpx.get(server.url + "/readyz").status_code == 200
    print(
        f"switch after the alias moved: {', '.join(f'{served[i]:.2f} s' for i in sorted(served))};"
        f" /predict calls during it: {calls}"
    )


def test_a_registry_without_a_champion_or_out_of_reach_is_named_by_readyz(stack, tmp_path):
    cases = {
        "no champion": (
            {"DOODLE_MODEL_PATH": "models:/no-such-model@champion"},
            "has no version of 'no-such-model' with the alias 'champion'",
        ),
        "unreachable": (
            {tracking.TRACKING_URI_ENV: f"http://127.0.0.1:{free_port()}"},
            "cannot read the model registry at http://127.0.0.1",
        ),
    }
    for name, (extra, reason) in cases.items():
        workdir = tmp_path / name.replace(" ", "-")
        workdir.mkdir()
        with UvicornServer(env=stack.env(workdir, **extra), log_path=workdir / "server.log") as server:
            ready = httpx.get(server.url + "/readyz", timeout=30)
            assert ready.status_code == 503, server.log()
            assert reason in ready.json()["reason"], ready.json()
