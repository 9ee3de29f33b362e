"""The feedback store in PostgreSQL, for API replicas on several machines: the same rows and the
same calls as the SQLite `doodle.loop.feedback.FeedbackStore`, over a pool of psycopg 3 connections.

Opening the store connects once (a short timeout), so an unreachable server or wrong credentials
raise `FeedbackDatabaseError` at start-up with the server's own reason, then brings the schema up
to `SCHEMA_VERSION` inside one transaction under an advisory lock: replicas starting together
never create it twice, and a database from newer code is refused rather than written. Every
``add`` commits before it returns (PostgreSQL's default ``synchronous_commit``: the row is in the
write-ahead log on disk), so an acknowledged correction survives any replica being killed.
"""

from __future__ import annotations

import time

import numpy as np
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from doodle.loop.feedback import (
    FeedbackDatabaseError,
    FeedbackNotStored,
    FeedbackRecord,
    check_feedback_row,
    check_strokes,
    is_postgres_url,
    strokes_to_json,
)

SCHEMA_VERSION = 2
# One number for every replica: pg_advisory_xact_lock serialises their schema set-up.
SCHEMA_LOCK_KEY = 0x0D00D1E
# Each statement list takes the schema from the version before it to its own.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE feedback (
            id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at      DOUBLE PRECISION NOT NULL,
            source          TEXT    NOT NULL,
            predicted_digit INTEGER NOT NULL CHECK (predicted_digit BETWEEN 0 AND 9),
            actual_digit    INTEGER NOT NULL CHECK (actual_digit BETWEEN 0 AND 9),
            is_error        INTEGER NOT NULL,
            model_version   TEXT,
            image           BYTEA   NOT NULL,
            drawing_png     BYTEA
        )
        """,
        # The live accuracy reads the newest rows about one model version every few seconds.
        "CREATE INDEX feedback_model_version_id ON feedback (model_version, id DESC)",
    ),
    # Corrections keep the pen's strokes; older rows stay pixel-only (NULL). JSON, not JSONB: the
    # text is kept as written, so a snapshot reads the same bytes as from SQLite.
    2: ("ALTER TABLE feedback ADD COLUMN strokes JSON",),
}
DEFAULT_CONNECT_TIMEOUT_S = 5
DEFAULT_POOL_SIZE = 8
# How long a request waits for a free connection before it fails (and is not acknowledged).
POOL_WAIT_S = 30.0

NOT_A_URL = "{name} must be a postgresql:// URL (postgresql://user:password@host:5432/dbname), got {value!r}"
UNREACHABLE = "cannot open the feedback database {where}: {reason}"
NEWER_SCHEMA = (
    "the feedback database {where} has schema version {found}, newer than this code's {known}:"
    " upgrade this replica instead of writing to it"
)


def public_location(url: str) -> str:
    """``postgresql://user@host:port/dbname`` of a URL or conninfo string: no password, for
    messages and logs."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    """libpq's reason (``password authentication failed for user ...``, ``Connection refused``)
    without the hint lines that follow it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresFeedbackStore:
    """Append-only feedback rows in a PostgreSQL table, shared by any number of replicas."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
    ):
        if not is_postgres_url(url):
            raise ValueError(NOT_A_URL.format(name="the feedback store URL", value=public_location(url)))
        self.location = public_location(url)
        connect_args = (
            {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": connect_timeout_s}
        )
        try:
            with psycopg.connect(url, **connect_args) as conn:
                self._migrate(conn)
        except psycopg.OperationalError as exc:
            raise FeedbackDatabaseError(
                UNREACHABLE.format(where=self.location, reason=_first_line(exc))
            ) from None
        # Connections are checked when taken from the pool, so a restarted server costs no request.
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=connect_args,
            timeout=POOL_WAIT_S,
            check=ConnectionPool.check_connection,
            open=False,
            name="doodle-feedback",
        )
        try:
            self._pool.open(wait=True, timeout=float(connect_timeout_s) * 2)
        except PoolTimeout as exc:  # the server went away between the schema check and now
            self._pool.close()
            raise FeedbackDatabaseError(
                UNREACHABLE.format(where=self.location, reason=_first_line(exc))
            ) from None

    def _migrate(self, conn: psycopg.Connection) -> None:
        """Create or upgrade the schema to `SCHEMA_VERSION` in one transaction (all or nothing)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS doodle_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM doodle_schema").fetchone()
            found = row[0] if row and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise FeedbackDatabaseError(
                    NEWER_SCHEMA.format(where=self.location, found=found, known=SCHEMA_VERSION)
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO doodle_schema (version) VALUES (%s)", (version,))

    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute("SELECT max(version) FROM doodle_schema").fetchone()[0])

    def close(self) -> None:
        self._pool.close()

    def add(
        self,
        image: np.ndarray,
        predicted_digit: int,
        actual_digit: int,
        *,
        source: str,
        model_version: str | None = None,
        drawing_png: bytes | None = None,
        strokes=None,
    ) -> int:
        """Store one correction and return its id once it is committed (as the SQLite store)."""
        pixels = check_feedback_row(image, predicted_digit, actual_digit)
        strokes_json = strokes_to_json(None if strokes is None else check_strokes(strokes))
        try:
            row = self._insert(
                pixels, predicted_digit, actual_digit, source, model_version, drawing_png, strokes_json
            )
        except (psycopg.Error, PoolTimeout) as exc:
            raise FeedbackNotStored(type(exc).__name__) from exc
        return int(row[0])

    def _insert(
        self, pixels, predicted_digit, actual_digit, source, model_version, drawing_png, strokes_json
    ) -> tuple:
        with self._pool.connection() as conn:  # commits when the block ends without an error
            return conn.execute(
                "INSERT INTO feedback (created_at, source, predicted_digit, actual_digit, is_error,"
                " model_version, image, drawing_png, strokes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::json) RETURNING id",
                (
                    time.time(),
                    source,
                    int(predicted_digit),
                    int(actual_digit),
                    int(int(predicted_digit) != int(actual_digit)),
                    model_version,
                    pixels.tobytes(),
                    drawing_png,
                    strokes_json,
                ),
            ).fetchone()

    def count(self, *, errors_only: bool = False) -> int:
        query = "SELECT COUNT(*) FROM feedback" + (" WHERE is_error = 1" if errors_only else "")
        with self._pool.connection() as conn:
            return int(conn.execute(query).fetchone()[0])

    def recent_outcomes(self, limit: int, model_version: str | None = None) -> tuple[int, int]:
        """``(rows, errors)`` among the newest ``limit`` rows (about ``model_version`` only, when
        given): the rolling window behind the API's live accuracy."""
        where, args = ("WHERE model_version = %s", [model_version]) if model_version is not None else ("", [])
        with self._pool.connection() as conn:
            rows, errors = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(is_error), 0) FROM (SELECT is_error FROM feedback {where}"
                " ORDER BY id DESC LIMIT %s) AS newest",
                (*args, int(limit)),
            ).fetchone()
        return int(rows), int(errors)

    def recent(self, limit: int = 20) -> list[FeedbackRecord]:
        """The newest ``limit`` rows, newest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {FeedbackRecord.COLUMNS} FROM feedback ORDER BY id DESC LIMIT %s",
                (int(limit),),
            ).fetchall()
        return [FeedbackRecord.from_row(row) for row in rows]

    def snapshot_rows(self, columns: list[str]) -> list[tuple]:
        """Every row's ``columns``, ordered by id, read in one repeatable-read transaction (a
        consistent snapshot while replicas keep writing); binary columns as ``bytes``, ``strokes``
        as the JSON text stored."""
        selected = ["strokes::text" if column == "strokes" else column for column in columns]
        with self._pool.connection() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                rows = conn.execute(f"SELECT {', '.join(selected)} FROM feedback ORDER BY id").fetchall()
            conn.isolation_level = None
        return [
            tuple(bytes(value) if isinstance(value, memoryview) else value for value in row) for row in rows
        ]
