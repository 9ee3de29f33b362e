"""Serve the drawing dashboard with Voilà in its own process group, as `scripts/serve.py` does,
for the browser tests, the dashboard benchmarks and the screenshot script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from doodle.paths import ROOT
from support.servers import free_port

DASHBOARD_NOTEBOOK = "notebooks/dashboard.ipynb"
# Pool, kernel cap and culling: conf/voila/voila.py (doodle.app.dashboard_server), as for `make run`.
VOILA_CONFIG_DIR = ROOT / "conf" / "voila"


def voila_flags(host: str, port: int) -> list[str]:
    """The options `scripts/serve.py` passes to Voilà (a test checks the two agree); the rest of
    the settings come from the config file."""
    return [
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",  # fail loudly on a taken port instead of drifting to another
        f"--Voila.config_file_paths={VOILA_CONFIG_DIR}",
    ]


def voila_command(host: str, port: int, notebook: str = DASHBOARD_NOTEBOOK) -> list[str]:
    """``voila NOTEBOOK ...`` from this interpreter's environment, rooted at the repository."""
    voila = Path(sys.executable).with_name("voila")
    return [str(voila), notebook, *voila_flags(host, port), f"--Voila.root_dir={ROOT}"]


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Return once ``host:port`` accepts a TCP connection (a page load would start a kernel)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s")


class VoilaServer:
    """Voilà on the dashboard notebook in its own process group, stopped on exit.

    ``env`` is added to this process's environment (e.g. DOODLE_FEEDBACK_DB); output goes to
    ``log_path``.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict[str, str] | None = None,
        start_timeout_s: float = 60.0,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> VoilaServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            voila_command(self.host, self.port),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.host, self.port, self.start_timeout_s, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def kernel_processes(self) -> list:
        """The kernels Voilà runs now (psutil processes: its children running ipykernel).

        A process a kernel starts is not a kernel, though it shows the kernel's command line until
        it runs its own program: a kernel runs ``uname -p`` while it starts (Python's
        `platform.processor`), and the child it vforks reads as ``ipykernel_launcher`` while it
        looks for ``uname`` along the PATH. Counted, it made one kernel two."""
        import psutil

        if self.process is None or self.process.poll() is not None:
            return []
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        kernels = []
        for child in children:
            try:
                if "ipykernel_launcher" in " ".join(child.cmdline()):
                    kernels.append(child)
            except psutil.Error:  # exited meanwhile
                pass
        kernel_ids = {kernel.pid for kernel in kernels}
        return [kernel for kernel in kernels if _parent_pid(kernel) not in kernel_ids]

    def kernel_count(self) -> int:
        return len(self.kernel_processes())

    def wait_for_kernel_count(self, count: int, timeout_s: float = 120.0) -> float:
        """Wait until exactly ``count`` kernels run; returns the seconds waited."""
        start = time.monotonic()
        while self.kernel_count() != count:
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"{self.kernel_count()} kernels, not {count}, after {timeout_s:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - start

    def stop(self) -> None:
        """SIGTERM to Voilà's process group (its kernels included), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


def _parent_pid(process) -> int | None:
    import psutil

    try:
        return process.ppid()
    except psutil.Error:  # exited meanwhile
        return None
