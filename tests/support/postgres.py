"""A real PostgreSQL server for tests, from Debian's ``postgresql`` package, written once.

`PostgresServer` runs ``initdb`` in a temporary folder (password authentication, a user of its
own), starts ``postgres`` listening on 127.0.0.1 only on a free port, in its own session, and
on exit stops that whole process group (fast shutdown, SIGKILL if it lingers) and removes the
folder, whatever the test did. PostgreSQL refuses to run as root, so under root ``initdb`` and
the server run as the package's ``postgres`` user (`subprocess`'s ``user=``, switched in the child
before ``exec``) and the folder is handed to it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from support.servers import HOST, free_port

SERVICE_USER = "postgres"  # the system user Debian's package creates
START_TIMEOUT_S = 60.0
MISSING = (
    "PostgreSQL's server programs (initdb, postgres) were not found: install Debian's `postgresql`"
    " package (bash scripts/system-deps.sh does, as root)"
)


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian keeps the server off PATH), else
    the folder of an ``initdb`` on PATH; None when neither exists."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_service_user() -> dict:
    """`subprocess` arguments that run a program as the non-root service user (set in the child
    before it starts: no ``su``/``runuser`` process in between to relay signals); none when not root."""
    if os.geteuid() != 0:
        return {}
    return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}


class PostgresServer:
    """``with PostgresServer() as pg:``; ``pg.create_database("name")`` returns its URL."""

    def __init__(
        self, *, user: str = "doodle", password: str = "doodle-test-password", log_path: Path | None = None
    ):
        self.user = user
        self.password = password
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.log_path = log_path
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        driver: str = "postgresql",
    ) -> str:
        return (
            f"{driver}://{user or self.user}:{password or self.password}@{HOST}:{port or self.port}/{dbname}"
        )

    def log(self) -> str:
        path = self.log_path or (self.root / "postgres.log" if self.root else None)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def __enter__(self) -> PostgresServer:
        if self.bindir is None:
            raise FileNotFoundError(MISSING)
        self.root = Path(tempfile.mkdtemp(prefix="doodle-postgres-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _start(self) -> None:
        as_user = _as_service_user()
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if as_user:
            shutil.chown(self.root, SERVICE_USER)
            shutil.chown(password_file, SERVICE_USER)
        data = self.root / "data"
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.user,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **as_user,
        )
        log_path = self.log_path or self.root / "postgres.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    HOST,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                ],  # the Unix socket stays in the temporary folder
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
                **as_user,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        import psycopg  # noqa: PLC0415

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready after {START_TIMEOUT_S:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """A new, empty database ``name``; returns its ``postgresql://`` URL."""
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown of the server's process group (SIGINT: clients are disconnected), then
        SIGKILL if it lingers; the temporary folder goes either way."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                process.wait(timeout=5)
        if process is not None:
            try:  # anything left in the group (a backend that outlived the postmaster)
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
