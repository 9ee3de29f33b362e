"""scripts/serve.py, the end of `make run`: however it is stopped (Ctrl-C to the process group, as
a terminal sends it, SIGTERM to the group, SIGTERM to the script alone), the API, Voilà and every
dashboard kernel are gone within 15 s and both ports take a new listener. Each way is tried three
times, with the signal repeated at once and during the shutdown (make forwards it too), the race
that used to leave the servers running. Even SIGKILL to the script leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from doodle.paths import ROOT
from support.servers import free_port, port_accepts_listener

SCRIPT = ROOT / "scripts" / "serve.py"
HOST = "127.0.0.1"
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15


def _start(tmp_path, api_port: int, dashboard_port: int) -> tuple[subprocess.Popen, object]:
    log = (tmp_path / "serve.log").open("wb")
    env = {
        **os.environ,
        "DOODLE_FEEDBACK_DB": str(tmp_path / "feedback.sqlite"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        # Two warm kernels are enough to show that every kernel goes; the default budget's pool
        # would start a dozen for each of these runs.
        "DOODLE_DASHBOARD_POOL": "2",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--host",
            HOST,
            "--api-port",
            str(api_port),
            "--dashboard-port",
            str(dashboard_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


PORT_TAKEN = "is already in use"  # serve.py's refusal when a port is taken before it binds


def _wait_for_banner(process: subprocess.Popen, tmp_path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    log = tmp_path / "serve.log"
    while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
        assert process.poll() is None, f"serve.py exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not serving after {START_TIMEOUT_S} s:\n{log.read_text()}"
        time.sleep(0.2)


def _serve(tmp_path, tries: int = 3) -> tuple[subprocess.Popen, object, int, int]:
    """serve.py on two ports that were free a moment ago, serving. Another process on the machine (a
    kernel of another test binds five ports) may take one before serve.py binds it, which serve.py
    refuses plainly: then again on two others."""
    for _ in range(tries):
        api_port, dashboard_port = free_port(HOST), free_port(HOST)
        process, log = _start(tmp_path, api_port, dashboard_port)
        try:
            _wait_for_banner(process, tmp_path)
            return process, log, api_port, dashboard_port
        except AssertionError:
            if process.poll() is None or PORT_TAKEN not in (tmp_path / "serve.log").read_text():
                process.kill()
                log.close()
                raise
            log.close()
    raise AssertionError(f"serve.py found a port taken {tries} times")


def _wait_until_serving(api_port: int, dashboard_port: int) -> None:
    with urllib.request.urlopen(f"http://{HOST}:{api_port}/healthz", timeout=10) as response:
        assert response.status == 200
    # A page load starts a dashboard kernel: the processes most easily orphaned.
    with urllib.request.urlopen(f"http://{HOST}:{dashboard_port}/", timeout=90) as response:
        assert response.status == 200


def _kernels(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if "ipykernel_launcher" in " ".join(p.cmdline())]


STOPS = {
    "SIGINT to the group": (signal.SIGINT, True),
    "SIGTERM to the group": (signal.SIGTERM, True),
    "SIGTERM to the script alone": (signal.SIGTERM, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stop_signal_ends_every_process_and_frees_both_ports(tmp_path, stop, attempt):
    signum, to_group = STOPS[stop]
    process, log, api_port, dashboard_port = _serve(tmp_path)
    try:
        _wait_until_serving(api_port, dashboard_port)
        run = psutil.Process(process.pid).children(recursive=True)
        assert len(_kernels(run)) >= 1 and len(run) >= 3, [p.cmdline() for p in run]

        send = (lambda: os.killpg(process.pid, signum)) if to_group else (lambda: process.send_signal(signum))
        send()
        send()  # at once, as make forwards it: the shutdown must not be cut short ...
        time.sleep(0.3)
        send()  # ... nor by one that arrives while it runs
        process.wait(timeout=STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(run, timeout=1)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        text = (tmp_path / "serve.log").read_text(errors="replace")
        assert not alive, f"left running: {[p.cmdline() for p in alive]}\n{text}"
        assert "Stopped." in text
        assert process.returncode == 128 + signum
        for port in (api_port, dashboard_port):
            assert port_accepts_listener(HOST, port), f"port {port} still taken"
    finally:
        if process.poll() is None:
            for p in psutil.Process(process.pid).children(recursive=True):
                p.kill()
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_servers_and_kernels_do_not_outlive_a_killed_script(tmp_path):
    """SIGKILL cannot be handled: the servers get SIGTERM from the kernel (parent-death signal)."""
    process, log, api_port, dashboard_port = _serve(tmp_path)
    run: list[psutil.Process] = []
    try:
        _wait_until_serving(api_port, dashboard_port)
        run = psutil.Process(process.pid).children(recursive=True)
        assert _kernels(run), [p.cmdline() for p in run]
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(run, timeout=STOP_TIMEOUT_S)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
        deadline = time.monotonic() + 5
        while not all(port_accepts_listener(HOST, port) for port in (api_port, dashboard_port)):
            assert time.monotonic() < deadline, "a port is still taken"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
        for p in run:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        process.wait()
        log.close()


def test_a_taken_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--host",
                HOST,
                "--api-port",
                str(free_port(HOST)),
                "--dashboard-port",
                str(port),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Port {HOST}:{port} is already in use" in result.stderr
    assert "Waiting for the API" not in result.stdout
