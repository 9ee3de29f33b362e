"""The durable store of corrections that the dashboard and the API share (SQLite; PostgreSQL for
several machines is `doodle.loop.feedback_pg`, chosen by `doodle.loop.feedback_store.open_store`).

Every write is committed before it is acknowledged (WAL journal, ``synchronous=FULL``), so a
feedback row that a caller was told about survives the process being killed. Each call opens
its own connection: safe from many threads and from several processes at once.

A correction made on the pad keeps its strokes (``strokes``: JSON text, the pen's points in pad
pixels, y down, in drawing order), so the path model can learn from it; rows stored without them
(uploads, older stores) stay pixel-only with ``NULL``. A store made before the column existed gains
it when first opened (`FeedbackStore`), its rows kept.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doodle.constants import IMAGE_SIDE, N_PIXELS

POSTGRES_URL_SCHEMES = ("postgresql://", "postgres://")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      REAL    NOT NULL,
    source          TEXT    NOT NULL,
    predicted_digit INTEGER NOT NULL CHECK (predicted_digit BETWEEN 0 AND 9),
    actual_digit    INTEGER NOT NULL CHECK (actual_digit BETWEEN 0 AND 9),
    is_error        INTEGER NOT NULL,
    model_version   TEXT,
    image           BLOB    NOT NULL,
    drawing_png     BLOB,
    strokes         TEXT
)
"""
# Stores made before corrections kept their strokes gain the column (NULL for their rows).
_ADD_STROKES = "ALTER TABLE feedback ADD COLUMN strokes TEXT"


class FeedbackDatabaseError(RuntimeError):
    """The configured server store cannot be used: unreachable, refused, or a newer schema."""


class FeedbackNotStored(RuntimeError):
    """A server store could not commit a row (connection lost, no free connection in time):
    nothing was stored. The message is the underlying error's type name."""


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    created_at: float
    source: str
    predicted_digit: int
    actual_digit: int
    is_error: bool
    model_version: str | None
    image: np.ndarray  # (28, 28) float32 in [0, 1], the input the model saw
    drawing_png: bytes | None
    # The pen's strokes, each (K, 2) float64 [x, y] in pad pixels, in drawing order; None: pixel-only.
    strokes: tuple[np.ndarray, ...] | None = None

    # The columns `from_row` reads, in order: both stores select them so.
    COLUMNS = (
        "id, created_at, source, predicted_digit, actual_digit, is_error, model_version, image, drawing_png,"
        " strokes"
    )

    @classmethod
    def from_row(cls, row) -> FeedbackRecord:
        """A stored row (`COLUMNS`, from either store) -> a record, the image back as (28, 28) float32."""
        return cls(
            id=row[0],
            created_at=row[1],
            source=row[2],
            predicted_digit=row[3],
            actual_digit=row[4],
            is_error=bool(row[5]),
            model_version=row[6],
            image=np.frombuffer(row[7], dtype=np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE).copy(),
            drawing_png=row[8],
            strokes=strokes_from_json(row[9]),
        )


def is_postgres_url(value: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL: the store `doodle.loop.feedback_store.open_store` opens in PostgreSQL."""
    return value.startswith(POSTGRES_URL_SCHEMES)


def check_strokes(strokes: Sequence[Sequence[Sequence[float]]]) -> list[np.ndarray]:
    """A drawing's strokes as ``(K, 2)`` float64 arrays, or `ValueError` naming what is wrong: no
    strokes, an empty stroke, a point that is not two finite numbers (one point is a dot)."""
    if len(strokes) == 0:
        raise ValueError("strokes must hold at least one stroke")
    checked = []
    for index, stroke in enumerate(strokes):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"stroke {index} is not a list of [x, y] points") from None
        if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
            raise ValueError(f"stroke {index} must be one or more [x, y] points, got shape {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError(f"stroke {index} holds NaN or infinite coordinates")
        checked.append(points)
    return checked


def strokes_to_json(strokes: Sequence[np.ndarray] | None) -> str | None:
    """Checked strokes -> the JSON text both stores keep, ``[[[x, y], ...], ...]`` (None stays None)."""
    if strokes is None:
        return None
    return json.dumps([stroke.tolist() for stroke in strokes], separators=(",", ":"))


def strokes_from_json(value: str | list | None) -> tuple[np.ndarray, ...] | None:
    """A stored ``strokes`` value (JSON text, or the list PostgreSQL's driver has already parsed) ->
    ``(K, 2)`` float64 arrays; None for a pixel-only row."""
    if value is None:
        return None
    parsed = json.loads(value) if isinstance(value, (str, bytes)) else value
    return tuple(np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in parsed)


def check_feedback_row(image: np.ndarray, predicted_digit: int, actual_digit: int) -> np.ndarray:
    """The correction's pixels as ``(784,)`` float32, or `ValueError` naming what is wrong:
    the one check every store makes before it writes."""
    pixels = np.asarray(image, dtype=np.float32).reshape(-1)
    if pixels.size != N_PIXELS:
        raise ValueError(f"image must have {N_PIXELS} pixels, got {pixels.size}")
    if not np.isfinite(pixels).all():
        raise ValueError("image holds NaN or infinite values")
    for name, digit in (("predicted_digit", predicted_digit), ("actual_digit", actual_digit)):
        if not (isinstance(digit, (int, np.integer)) and 0 <= int(digit) <= 9):
            raise ValueError(f"{name} must be an integer 0..9, got {digit!r}")
    return pixels


class FeedbackStore:
    """Append-only feedback rows in one SQLite file (created with its folder on first use)."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # One writer at a time brings the schema up, so processes opening an old store together
            # add the strokes column once.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(feedback)")}
                if "strokes" not in columns:
                    conn.execute(_ADD_STROKES)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def close(self) -> None:
        """Nothing to release: each call opens and closes its own connection."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def add(
        self,
        image: np.ndarray,
        predicted_digit: int,
        actual_digit: int,
        *,
        source: str,
        model_version: str | None = None,
        drawing_png: bytes | None = None,
        strokes: Sequence[Sequence[Sequence[float]]] | None = None,
    ) -> int:
        """Store one correction and return its id once it is committed to disk.

        ``image`` is the 784-pixel model input (any shape with 784 elements) in [0, 1];
        ``strokes`` the pen's strokes it was drawn with (`check_strokes`), None when unknown.
        """
        pixels = check_feedback_row(image, predicted_digit, actual_digit)
        strokes_json = strokes_to_json(None if strokes is None else check_strokes(strokes))
        conn = self._connect()
        try:
            cursor = conn.execute(
                "INSERT INTO feedback (created_at, source, predicted_digit, actual_digit, is_error,"
                " model_version, image, drawing_png, strokes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    source,
                    int(predicted_digit),
                    int(actual_digit),
                    int(predicted_digit) != int(actual_digit),
                    model_version,
                    pixels.tobytes(),
                    drawing_png,
                    strokes_json,
                ),
            )
            return int(cursor.lastrowid)
        finally:
            conn.close()

    def count(self, *, errors_only: bool = False) -> int:
        query = "SELECT COUNT(*) FROM feedback" + (" WHERE is_error = 1" if errors_only else "")
        conn = self._connect()
        try:
            return int(conn.execute(query).fetchone()[0])
        finally:
            conn.close()

    def recent_outcomes(self, limit: int, model_version: str | None = None) -> tuple[int, int]:
        """``(rows, errors)`` among the newest ``limit`` rows (about ``model_version`` only,
        when given): the rolling window behind the API's live accuracy."""
        where, args = ("WHERE model_version = ?", [model_version]) if model_version is not None else ("", [])
        conn = self._connect()
        try:
            rows, errors = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(is_error), 0) FROM (SELECT is_error FROM feedback {where}"
                " ORDER BY id DESC LIMIT ?)",
                (*args, int(limit)),
            ).fetchone()
        finally:
            conn.close()
        return int(rows), int(errors)

    def recent(self, limit: int = 20) -> list[FeedbackRecord]:
        """The newest ``limit`` rows, newest first."""
        conn = self._connect()
        try:
            rows = conn.execute(
                f"SELECT {FeedbackRecord.COLUMNS} FROM feedback ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        finally:
            conn.close()
        return [FeedbackRecord.from_row(row) for row in rows]
