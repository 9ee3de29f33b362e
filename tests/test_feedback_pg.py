"""The PostgreSQL feedback store, on a real server: the SQLite store's behaviour, a versioned
schema, a snapshot byte-identical to SQLite's for the same rows, and clear refusals."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest

from doodle.loop import feedback_data
from doodle.loop.feedback import FeedbackStore
from doodle.loop.feedback_pg import MIGRATIONS, SCHEMA_VERSION, FeedbackDatabaseError, PostgresFeedbackStore
from doodle.loop.feedback_store import open_store
from support.servers import free_port


@pytest.fixture
def pg_store(postgres_url):
    store = PostgresFeedbackStore(postgres_url)
    yield store
    store.close()


def test_add_then_read_back_as_sqlite_does(pg_store, tmp_path):
    image = np.random.default_rng(1).random((28, 28), dtype=np.float32)
    sqlite_store = FeedbackStore(tmp_path / "feedback.sqlite")
    for store in (pg_store, sqlite_store):
        first = store.add(image, 3, 8, source="dashboard", model_version="abc", drawing_png=b"\x89PNG")
        second = store.add(image.reshape(-1), 4, 4, source="api", model_version="abc")
        store.add(image, 1, 7, source="api", model_version="other")
        assert second == first + 1
        assert (store.count(), store.count(errors_only=True)) == (3, 2)
        assert store.recent_outcomes(10, "abc") == (2, 1)
        assert store.recent_outcomes(1) == (1, 1)
        newest, middle, oldest = store.recent(10)
        assert (middle.id, middle.source, middle.is_error) == (second, "api", False)
        assert (oldest.predicted_digit, oldest.actual_digit, oldest.model_version) == (3, 8, "abc")
        assert oldest.drawing_png == b"\x89PNG" and newest.drawing_png is None
        np.testing.assert_array_equal(oldest.image, image)


def test_bad_rows_are_refused_and_nothing_is_written(pg_store):
    with pytest.raises(ValueError, match="actual_digit must be an integer 0..9"):
        pg_store.add(np.zeros(784), 1, 10, source="test")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pg_store.add(np.full(784, np.inf), 1, 2, source="test")
    assert pg_store.count() == 0


def test_concurrent_writers_lose_nothing(pg_store):
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(
            pool.map(lambda i: pg_store.add(np.zeros(784), i % 10, (i + 1) % 10, source="t"), range(300))
        )
    assert len(set(ids)) == 300
    assert pg_store.count() == pg_store.count(errors_only=True) == 300


def test_schema_is_versioned_and_created_once(postgres_url):
    stores = [PostgresFeedbackStore(postgres_url) for _ in range(3)]  # three replicas starting
    try:
        assert [store.schema_version() for store in stores] == [SCHEMA_VERSION] * 3
    finally:
        for store in stores:
            store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM doodle_schema").fetchone()[0] == SCHEMA_VERSION
        conn.execute("INSERT INTO doodle_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(FeedbackDatabaseError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        PostgresFeedbackStore(postgres_url)


def test_wrong_password_and_unreachable_server_fail_with_the_reason(postgres_server, postgres_url, tmp_path):
    wrong = postgres_server.url(postgres_url.rsplit("/", 1)[1], password="not-the-password")
    with pytest.raises(
        FeedbackDatabaseError, match='password authentication failed for user "doodle"'
    ) as caught:
        open_store(wrong, tmp_path / "feedback.sqlite")
    assert "not-the-password" not in str(caught.value)
    with pytest.raises(FeedbackDatabaseError, match="cannot open the feedback database .*:(?s:.*)refused"):
        open_store(postgres_server.url(port=free_port()), tmp_path / "feedback.sqlite")
    assert not (tmp_path / "feedback.sqlite").exists()  # no fallback to the local file


def _add_sample_rows(store):
    rng = np.random.default_rng(7)
    for i in range(25):
        png = bytes(rng.integers(0, 256, 40, dtype=np.uint8)) if i % 3 == 0 else None
        strokes = (rng.random((1 + i % 3, 4, 2)) * 280).tolist() if i % 2 else None
        store.add(
            rng.random(784, dtype=np.float32),
            i % 10,
            (i * 7) % 10,
            source=("api", "dashboard")[i % 2],
            model_version=None if i % 4 == 0 else f"v{i % 3}",
            drawing_png=png,
            strokes=strokes,
        )


SEVEN = [[[60.0, 50.0], [220.0, 50.0], [120.0, 240.0]], [[100.0, 140.0], [190.5, 140.25]], [[30.0, 30.0]]]


def test_a_correction_comes_back_with_its_strokes_from_both_stores(pg_store, tmp_path):
    for store in (pg_store, FeedbackStore(tmp_path / "feedback.sqlite")):
        with_strokes = store.add(np.zeros(784), 1, 7, source="dashboard", strokes=SEVEN)
        store.add(np.zeros(784), 2, 2, source="api")
        newest, oldest = store.recent(10)
        assert oldest.id == with_strokes and newest.strokes is None
        assert [stroke.tolist() for stroke in oldest.strokes] == SEVEN
        with pytest.raises(ValueError, match="stroke 0 holds NaN"):
            store.add(np.zeros(784), 1, 2, source="test", strokes=[[[1.0, float("nan")]]])
        assert store.count() == 2


def test_a_schema_1_database_is_migrated_and_keeps_its_rows(postgres_url):
    image = np.random.default_rng(3).random(784, dtype=np.float32)
    with psycopg.connect(postgres_url) as conn:  # the database as the code before strokes left it
        conn.execute("CREATE TABLE doodle_schema (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO doodle_schema (version) VALUES (1)")
        conn.execute(
            "INSERT INTO feedback (created_at, source, predicted_digit, actual_digit, is_error, model_version,"
            " image, drawing_png) VALUES (1.5, 'dashboard', 3, 8, 1, 'old', %s, %s)",
            (image.tobytes(), b"png"),
        )
    store = PostgresFeedbackStore(postgres_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 2
        new_id = store.add(np.zeros(784), 1, 7, source="api", strokes=SEVEN)
        newest, old = store.recent(10)
        assert (old.id, old.source, old.model_version, old.drawing_png, old.strokes) == (
            1,
            "dashboard",
            "old",
            b"png",
            None,
        )
        np.testing.assert_array_equal(old.image.reshape(-1), image)
        assert newest.id == new_id and [stroke.tolist() for stroke in newest.strokes] == SEVEN
    finally:
        store.close()
    table = feedback_data.read_store(postgres_url)
    assert table.column("strokes").to_pylist()[0] is None
    assert (
        table.column("strokes").to_pylist()[1]
        == "[[[60.0,50.0],[220.0,50.0],[120.0,240.0]],[[100.0,140.0],[190.5,140.25]],[[30.0,30.0]]]"
    )


def test_snapshot_is_byte_identical_to_sqlites_for_the_same_rows(pg_store, postgres_url, tmp_path):
    sqlite_path = tmp_path / "feedback.sqlite"
    for store in (pg_store, FeedbackStore(sqlite_path)):
        _add_sample_rows(store)
    # The rows' times differ by a few microseconds between the stores: give both the same ones.
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("UPDATE feedback SET created_at = 1700000000.0 + id * 0.25")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE feedback SET created_at = 1700000000.0 + id * 0.25")
    feedback_data.write_table(feedback_data.read_store(sqlite_path), tmp_path / "sqlite.parquet")
    feedback_data.main(["--url", postgres_url, "--out", str(tmp_path / "postgres.parquet")])
    assert feedback_data.read_store(postgres_url).num_rows == 25
    assert feedback_data.read_store(postgres_url).column("strokes").null_count == 13
    assert (tmp_path / "postgres.parquet").read_bytes() == (tmp_path / "sqlite.parquet").read_bytes()


def test_the_drawing_app_writes_to_postgres_when_configured_and_says_when_it_cannot(
    tiny_model, postgres_server, postgres_url, tmp_path, monkeypatch
):
    from doodle.app.dashboard import SAVE_FAILED_MESSAGE, DoodleApp
    from support.digits import HAND_DRAWN_DIGITS, draw_on

    monkeypatch.setenv("DOODLE_FEEDBACK_DB", str(tmp_path / "feedback.sqlite"))
    monkeypatch.setenv("DOODLE_FEEDBACK_URL", postgres_url)
    app = DoodleApp(model=tiny_model, live=False)
    draw_on(app, HAND_DRAWN_DIGITS[7])
    row_id = app.submit_feedback(7)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT id, actual_digit, source FROM feedback").fetchall() == [
            (row_id, 7, "dashboard")
        ]
    app.feedback_store.close()

    monkeypatch.setenv("DOODLE_FEEDBACK_URL", postgres_server.url(port=free_port()))
    app = DoodleApp(model=tiny_model, live=False)
    draw_on(app, HAND_DRAWN_DIGITS[7])
    assert app.submit_feedback(7) is None
    assert (
        SAVE_FAILED_MESSAGE in app.view.feedback_status.value
        and "cannot open the feedback database" in app.view.feedback_status.value
    )
    assert not (tmp_path / "feedback.sqlite").exists()
