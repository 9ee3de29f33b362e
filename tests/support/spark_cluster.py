"""A Spark standalone cluster (one master, one worker) started from the installed PySpark.

pip's PySpark has no ``sbin/start-*.sh`` scripts, but its ``bin/spark-class`` runs the
master and worker daemons. Both listen on loopback only, on free ports, and each runs in its own
process group, which is stopped as a whole on exit (the JVMs outlive a killed launcher
otherwise). Used by the cluster test and the scoring benchmark; also a quick way to try a
``spark://`` master on one machine:

    with standalone_cluster(Path("/tmp/cluster")) as cluster:
        spark = spark_session(cluster.master_url, "2g")
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from doodle.paths import ROOT

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0

NOT_STARTED_MESSAGE = "{what} did not start within {seconds:.0f} s; its log ({log}):\n{tail}"
EXITED_MESSAGE = "{what} exited with code {code}; its log ({log}):\n{tail}"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def project_java_options(conf_file: Path = ROOT / "conf" / "spark" / "spark-defaults.conf") -> str:
    """The JVM flags the project's spark-defaults.conf gives every driver (``spark.driver.defaultJavaOptions``)."""
    for line in conf_file.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "spark.driver.defaultJavaOptions":
            return value.strip()
    raise ValueError(f"{conf_file} sets no spark.driver.defaultJavaOptions")


def spark_home() -> Path:
    """The installed ``pyspark`` package folder, which holds ``bin/spark-class`` and ``jars/``."""
    import pyspark  # noqa: PLC0415

    return Path(pyspark.__file__).resolve().parent


@dataclass(frozen=True)
class Cluster:
    master_url: str  # spark://127.0.0.1:<port>
    web_url: str  # the master's web UI; its state as JSON at <web_url>/json/
    cores: int
    memory: str
    log_dir: Path

    def state(self) -> dict:
        """The master's JSON status: workers, cores, activeapps, completedapps, ..."""
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=10) as response:
            return json.load(response)

    def application_names(self) -> list[str]:
        """Names of the applications the master has registered, running or completed."""
        state = self.state()
        return [app["name"] for app in state.get("activeapps", []) + state.get("completedapps", [])]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


@contextmanager
def _daemon(command: list[str], env: dict[str, str], log_path: Path, what: str) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group; on exit, SIGTERM the group, then SIGKILL it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group, give it time to stop, then SIGKILL whatever is left of it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children of the launcher, if any, go too
    except ProcessLookupError:
        pass
    process.wait()


def _wait_for(check, process: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                EXITED_MESSAGE.format(what=what, code=process.returncode, log=log_path, tail=_tail(log_path))
            )
        try:
            if check():
                return
        except (OSError, ValueError):  # not answering yet, or not yet with its JSON status
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                NOT_STARTED_MESSAGE.format(
                    what=what, seconds=START_TIMEOUT_SECONDS, log=log_path, tail=_tail(log_path)
                )
            )
        time.sleep(0.5)


@contextmanager
def standalone_cluster(workdir: Path, *, cores: int = 2, memory: str = "2g") -> Iterator[Cluster]:
    """Start a master and one worker (``cores`` cores, ``memory`` for executors) on loopback;
    yield the `Cluster` once the worker has registered; stop both daemons on exit, also when the
    body raises. Logs and executors' work folders go under ``workdir``.

    Executors run this interpreter (``PYSPARK_PYTHON``, set here for the caller's process too,
    since PySpark's driver names the executors' Python), so ``doodle`` is importable on them.
    """
    workdir = Path(workdir)
    (workdir / "work").mkdir(parents=True, exist_ok=True)
    home = spark_home()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(ROOT / "conf" / "spark")),
        # The daemons' own JVMs, with the flags conf/spark/spark-defaults.conf gives the drivers
        # and executors: they live for seconds here, where C2's compiler threads only cost CPU.
        "SPARK_DAEMON_JAVA_OPTS": project_java_options(),
        "SPARK_LOG_DIR": str(workdir),
        "SPARK_WORKER_DIR": str(workdir / "work"),
        "PYSPARK_PYTHON": os.environ["PYSPARK_PYTHON"],
    }
    spark_class = str(home / "bin" / "spark-class")
    master_port, master_ui_port, worker_ui_port = free_port(), free_port(), free_port()
    master_url = f"spark://{HOST}:{master_port}"
    cluster = Cluster(
        master_url=master_url,
        web_url=f"http://{HOST}:{master_ui_port}",
        cores=cores,
        memory=memory,
        log_dir=workdir,
    )
    with ExitStack() as stack:
        master_log = workdir / "master.log"
        master = stack.enter_context(
            _daemon(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    HOST,
                    "--port",
                    str(master_port),
                    "--webui-port",
                    str(master_ui_port),
                ],
                env,
                master_log,
                "Spark master",
            )
        )
        _wait_for(lambda: cluster.state().get("status") == "ALIVE", master, master_log, "Spark master")
        worker_log = workdir / "worker.log"
        worker = stack.enter_context(
            _daemon(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--host",
                    HOST,
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--webui-port",
                    str(worker_ui_port),
                    "--work-dir",
                    str(workdir / "work"),
                ],
                env,
                worker_log,
                "Spark worker",
            )
        )
        _wait_for(lambda: cluster.state().get("aliveworkers", 0) >= 1, worker, worker_log, "Spark worker")
        yield cluster
