"""The feedback store a process is configured for: PostgreSQL when ``DOODLE_FEEDBACK_URL`` is set
(replicas on several machines, `doodle.loop.feedback_pg`), else the SQLite file (`doodle.loop.feedback`).

Its own module so that the API and the drawing app choose a store without importing what the
pipeline reads it with (pyarrow), and the SQLite store never imports the PostgreSQL one.
"""

from __future__ import annotations

from pathlib import Path

from doodle.loop.feedback import FeedbackStore


def open_store(url: str | None, db_path: str | Path) -> FeedbackStore:
    """The configured store: PostgreSQL when ``url`` is set (``DOODLE_FEEDBACK_URL``; raises when
    it cannot be opened, never falling back to a local file), else the SQLite file at ``db_path``."""
    if not url:
        return FeedbackStore(db_path)
    from doodle.loop.feedback_pg import PostgresFeedbackStore  # noqa: PLC0415 - psycopg only when configured

    return PostgresFeedbackStore(url)
