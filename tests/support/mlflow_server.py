"""A real MLflow tracking server for tests: ``mlflow server`` on a database backend (PostgreSQL
here) with an artifact folder it serves itself, on a free loopback port, in its own session,
stopped with its whole process group (its gunicorn/uvicorn workers too) on exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.servers import HOST, free_port, stop_process_group

START_TIMEOUT_S = 120.0  # the first start creates MLflow's tables in the database


class MlflowServer:
    """``with MlflowServer(backend_uri, artifacts_dir, log_path=...) as server:``; ``server.url``
    is the tracking URI clients use (``MLFLOW_TRACKING_URI``)."""

    def __init__(
        self, backend_uri: str, artifacts_dir: Path, *, log_path: Path, env: dict[str, str] | None = None
    ):
        self.port = free_port()
        self.log_path = Path(log_path)
        # Without MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false, MLflow 3's server starts a job runner and
        # seven huey consumer processes (its GenAI jobs, unused here) that poll while it runs.
        self.env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **(env or {}),
        }
        self.command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            str(artifacts_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> MlflowServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_S:.0f} s:\n{self.log()}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def __exit__(self, *exc_info) -> None:
        self.stop()
