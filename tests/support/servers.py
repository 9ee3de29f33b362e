"""Free ports and real uvicorn servers for tests and benchmarks, written once.

`UvicornServer` runs ``uvicorn serving.main:create_app --factory`` in a subprocess (its own
session, so stopping it stops everything it started) on a free loopback port, waits until
``/healthz`` answers, and stops it on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# uvicorn closes a connection that has been idle for 5 s, timed from when it sent its last answer.
# A client that also keeps idle connections for 5 s (httpx's default) times them from when it read
# that answer, later, so under load it may send a request on a connection the server is closing
# just then: a reset, or "disconnected without sending a response" (1,000-post bursts from 64
# threads on a loaded 2-core machine: 3 of 6,000 posts lost with 5 s, none with 1 s). Test clients
# give idle connections up sooner.
CLIENT_KEEPALIVE_S = 1.0


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def http_client(
    url: str, *, max_connections: int | None = 100, max_keepalive_connections: int | None = 20, **kwargs
) -> httpx.Client:
    """An HTTP client of the server at ``url`` (httpx's default pool sizes unless given) that gives
    up idle connections before the server does (CLIENT_KEEPALIVE_S); thread-safe."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=CLIENT_KEEPALIVE_S,
    )
    return httpx.Client(base_url=url, timeout=30, limits=limits, **kwargs)


def port_accepts_listener(host: str, port: int) -> bool:
    """True when a new server could listen on ``host:port`` (bound as servers bind, SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError:
            return False
    return True


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """``sig`` to the process's group (it was started in its own session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        process.wait(timeout=5)


class UvicornServer:
    """The API in a real uvicorn process: ``with UvicornServer(env=..., log_path=...) as server:``.

    ``env`` is added to this process's environment (DOODLE_* settings); ``extra_args`` go to
    uvicorn; ``command_prefix`` replaces ``[python, -m]`` (e.g. a profiler); ``cwd`` is the
    repository unless given (uvicorn imports `serving` from there first). Output goes to
    ``log_path`` (inherited when None). ``app``: the app factory uvicorn serves (the project's API
    unless a benchmark brings a baseline of its own; it must answer ``/healthz``).
    """

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        host: str = HOST,
        port: int | None = None,
        extra_args: tuple[str, ...] = ("--no-access-log",),
        python: str = sys.executable,
        command_prefix: list[str] | None = None,
        start_timeout_s: float = 60.0,
        stop_signal: int = signal.SIGTERM,
        cwd: Path = ROOT,
        app: str = "serving.main:create_app",
    ):
        self.host = host
        self.port = port or free_port(host)
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(log_path) if log_path is not None else None
        prefix = command_prefix if command_prefix is not None else [python, "-m"]
        self.command = [
            *prefix,
            "uvicorn",
            app,
            "--factory",
            "--host",
            host,
            "--port",
            str(self.port),
            *extra_args,
        ]
        self.start_timeout_s = start_timeout_s
        self.stop_signal = stop_signal
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def __enter__(self) -> UvicornServer:
        output = self.log_path.open("wb") if self.log_path else None
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )
        finally:
            if output:
                output.close()
        try:
            self._wait_until_alive()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_alive(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not alive after {self.start_timeout_s:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, self.stop_signal)
