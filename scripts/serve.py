"""Serve the API and the drawing dashboard until stopped: the end of `make run`.

    .venv/bin/python scripts/serve.py [--host 127.0.0.1] [--api-port 8000] [--dashboard-port 8866]

Starts the API (uvicorn, ``serving.main:create_app``) and waits for ``/healthz``, then Voilà on
``notebooks/dashboard.ipynb`` with the settings in ``conf/voila/voila.py``. Each server runs in
a session of its own, and this process adopts every orphan below it (a Linux child subreaper), so
no dashboard kernel can slip away.

Ctrl-C, SIGTERM or SIGHUP, once or repeatedly, to this process alone or to its whole process
group, all end the same way: later signals are ignored, each server's group gets SIGTERM and up
to ``GRACE_S`` seconds to exit cleanly (Voilà shuts its kernels down), whatever remains below this
process gets SIGKILL, and both ports are free again before it returns. Should this process be
killed outright (SIGKILL), each server gets SIGTERM from the kernel (parent-death signal).

Standard library and `doodle.constants` (the default ports) only, and run with the project's interpreter, whose ``bin/`` holds uvicorn and voila.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from doodle.constants import DEFAULT_API_PORT, DEFAULT_DASHBOARD_PORT

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASHBOARD_NOTEBOOK = "notebooks/dashboard.ipynb"
VOILA_CONFIG_DIR = ROOT / "conf" / "voila"  # voila.py: warm kernel pool, kernel cap, culling, the rest
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
START_TIMEOUT_S = 60.0
GRACE_S = 6.0  # SIGTERM -> SIGKILL
KILL_WAIT_S = 3.0
PORT_WAIT_S = 5.0
POLL_S = 0.2
ORPHAN_REAP_EVERY = 25  # polls: exited orphans are collected every 5 s while serving

PORT_IN_USE = (
    "Port {host}:{port} is already in use; pass other ports: make run API_PORT=... DASHBOARD_PORT=..."
)

PR_SET_PDEATHSIG = 1  # prctl options (linux/prctl.h)
PR_SET_CHILD_SUBREAPER = 36
_LIBC = (
    ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
)  # loaded before any fork

_stop_requested: int | None = None  # the first stop signal received


def _request_stop(signum: int, _frame: object) -> None:
    """Signal handler: only records the request; the main loop acts on it (idempotent)."""
    global _stop_requested
    if _stop_requested is None:
        _stop_requested = signum


def _prctl(option: int, value: int) -> None:
    if _LIBC is not None:
        _LIBC.prctl(option, value, 0, 0, 0)


def _become_subreaper() -> None:
    """Orphaned descendants (a kernel whose Voilà died) are re-parented to this process, not to
    init, so the shutdown still finds and stops them. Linux only; elsewhere a no-op."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _term_when_orphaned() -> None:
    """In each server, before it starts: SIGTERM when this process dies, even by SIGKILL, so the
    servers (and Voilà's kernels, which it stops on SIGTERM) never outlive it. Linux only."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def voila_command(host: str, port: int) -> list[str]:
    """Voilà on the dashboard notebook; every other Voilà setting is in conf/voila/voila.py."""
    return [
        str(BIN / "voila"),
        DASHBOARD_NOTEBOOK,
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",  # fail loudly on a taken port instead of drifting to another
        f"--Voila.config_file_paths={VOILA_CONFIG_DIR}",
        f"--Voila.root_dir={ROOT}",
    ]


def api_command(host: str, port: int) -> list[str]:
    return [str(BIN / "uvicorn"), "serving.main:create_app", "--factory", "--host", host, "--port", str(port)]


def port_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` now (bound as servers bind, SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def descendants() -> list[int]:
    """Every live process below this one (zombies left out), found through /proc."""
    if not Path("/proc/self/stat").exists():
        return []
    children, found, queue = _children_by_parent(), [], [os.getpid()]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return [pid for pid in found if _state(pid) not in ("Z", "gone")]


def _reap() -> None:
    """Collect every exited child, servers and adopted orphans alike."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _own_children() -> list[int]:
    """This process's children, from /proc/self/task/*/children (cheap: no scan of /proc)."""
    pids: list[int] = []
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:
            continue
    return pids


def _reap_orphans(servers: list[subprocess.Popen]) -> None:
    """While serving: collect exited adopted orphans, leaving the servers to `Popen.poll`."""
    server_pids = {server.pid for server in servers}
    for pid in _own_children():
        if pid not in server_pids and _state(pid) == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _wait_for(ready, server: subprocess.Popen, what: str) -> bool:
    """Poll ``ready()`` until it is true (True), or the server exits, time runs out or a stop is
    requested (False; the first two are reported)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while _stop_requested is None:
        if ready():
            return True
        if server.poll() is not None:
            print(
                f"\n{what} exited during start-up (code {server.returncode}; see its log above).",
                file=sys.stderr,
            )
            return False
        if time.monotonic() > deadline:
            print(f"\n{what} was not ready within {START_TIMEOUT_S:.0f} s.", file=sys.stderr)
            return False
        time.sleep(POLL_S)
    return False


def serve(host: str, api_port: int, dashboard_port: int, servers: list[subprocess.Popen]) -> int:
    """Start both servers (appended to ``servers`` as they start) and return when a stop is
    requested (0) or something fails (1)."""
    api = subprocess.Popen(
        api_command(host, api_port), cwd=ROOT, start_new_session=True, preexec_fn=_term_when_orphaned
    )
    servers.append(api)
    health = f"http://{host}:{api_port}/healthz"
    print(f"Waiting for the API on {health}", flush=True)
    if not _wait_for(lambda: _answers(health), api, "The API"):
        return 0 if _stop_requested else 1

    voila = subprocess.Popen(
        voila_command(host, dashboard_port), cwd=ROOT, start_new_session=True, preexec_fn=_term_when_orphaned
    )
    servers.append(voila)
    if not _wait_for(lambda: _listens(host, dashboard_port), voila, "Voilà"):
        return 0 if _stop_requested else 1

    print(
        f"\n  Dashboard (draw a digit):  http://{host}:{dashboard_port}/\n"
        f"  API docs:                  http://{host}:{api_port}/docs\n"
        f"  API health / metrics:      {health}   http://{host}:{api_port}/metrics\n"
        "\n  Press Ctrl-C to stop.\n",
        flush=True,
    )
    polls = 0
    while _stop_requested is None:
        for server in servers:
            if server.poll() is not None:
                print(
                    f"{server.args[0]} stopped (code {server.returncode}); shutting down the rest.",
                    file=sys.stderr,
                )
                return 1
        polls += 1
        if polls % ORPHAN_REAP_EVERY == 0:
            _reap_orphans(servers)
        time.sleep(POLL_S)
    return 0


def _wait_until_gone(servers: list[subprocess.Popen], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        for server in servers:
            server.poll()
        _reap()
        left = descendants()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def shutdown(servers: list[subprocess.Popen], host: str, ports: tuple[int, ...]) -> None:
    """Stop everything below this process; runs to the end whatever signals arrive meanwhile."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    print("\nStopping...", flush=True)
    for server in reversed(servers):  # the dashboard first: Voilà stops its kernels on SIGTERM
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    left = _wait_until_gone(servers, GRACE_S)
    for _ in range(3):  # a process may fork while its siblings are being killed
        if not left:
            break
        print(
            f"Killing {len(left)} process(es) still running after {GRACE_S:.0f} s.",
            file=sys.stderr,
            flush=True,
        )
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = _wait_until_gone(servers, KILL_WAIT_S)
    deadline = time.monotonic() + PORT_WAIT_S
    while not all(port_free(host, port) for port in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    print("Stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT)
    args = parser.parse_args(argv)
    ports = (args.api_port, args.dashboard_port)
    for port in ports:
        if not port_free(args.host, port):
            print(PORT_IN_USE.format(host=args.host, port=port), file=sys.stderr)
            return 1
    os.environ.setdefault("JUPYTER_DATA_DIR", str(ROOT / ".jupyter-data"))
    os.environ.setdefault("IPYTHONDIR", str(ROOT / ".config" / "ipython"))
    os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
    _become_subreaper()
    servers: list[subprocess.Popen] = []
    try:
        code = serve(args.host, args.api_port, args.dashboard_port, servers)
    finally:
        shutdown(servers, args.host, ports)
    return 128 + _stop_requested if _stop_requested and code == 0 else code


if __name__ == "__main__":
    sys.exit(main())
