"""The feedback store: what is acknowledged is on disk, from many threads and processes."""

import multiprocessing
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from doodle.loop.feedback import FeedbackStore


def test_add_then_read_back(tmp_path):
    store = FeedbackStore(tmp_path / "nested" / "feedback.sqlite")
    image = np.random.default_rng(1).random((28, 28), dtype=np.float32)
    first = store.add(image, 3, 8, source="dashboard", model_version="abc", drawing_png=b"\x89PNG")
    second = store.add(image.reshape(-1), 4, 4, source="api")
    assert second == first + 1
    assert store.count() == 2
    assert store.count(errors_only=True) == 1  # only predicted != actual is an error
    newest, oldest = store.recent(10)
    assert (newest.id, newest.source, newest.is_error) == (second, "api", False)
    assert (oldest.predicted_digit, oldest.actual_digit, oldest.model_version) == (3, 8, "abc")
    assert oldest.drawing_png == b"\x89PNG"
    np.testing.assert_array_equal(oldest.image, image)


@pytest.mark.parametrize(
    "image, predicted, actual, message",
    [
        (np.zeros(783), 1, 2, "image must have 784 pixels, got 783"),
        (np.full(784, np.nan), 1, 2, "NaN or infinite"),
        (np.zeros(784), 10, 2, "predicted_digit must be an integer 0..9"),
        (np.zeros(784), 1, -1, "actual_digit must be an integer 0..9"),
        (np.zeros(784), 1.5, 2, "predicted_digit must be an integer 0..9"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(tmp_path, image, predicted, actual, message):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with pytest.raises(ValueError, match=message):
        store.add(image, predicted, actual, source="test")
    assert store.count() == 0


def test_concurrent_writers_lose_nothing(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda i: store.add(np.zeros(784), i % 10, (i + 1) % 10, source="t"), range(300)))
    assert len(set(ids)) == 300
    assert store.count() == store.count(errors_only=True) == 300


def _write_rows(path, count):
    store = FeedbackStore(path)
    for i in range(count):
        store.add(np.zeros(784), i % 10, i % 10, source="process")


def test_two_processes_share_one_store(tmp_path):
    path = tmp_path / "feedback.sqlite"
    FeedbackStore(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_rows, args=(path, 50)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert FeedbackStore(path).count() == 100


def test_store_uses_write_ahead_log(tmp_path):
    path = tmp_path / "feedback.sqlite"
    FeedbackStore(path).add(np.zeros(784), 1, 2, source="t")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


SEVEN = [[(60.0, 50.0), (220.0, 50.0), (120.0, 240.0)], [(100.0, 140.0), (190.5, 140.25)]]


def test_a_correction_keeps_its_strokes_and_a_pixel_only_row_has_none(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with_strokes = store.add(np.zeros(784), 1, 7, source="dashboard", strokes=SEVEN + [[(30.0, 30.0)]])
    store.add(np.zeros(784), 2, 2, source="api")
    newest, oldest = store.recent(10)
    assert oldest.id == with_strokes and newest.strokes is None
    assert [stroke.tolist() for stroke in oldest.strokes] == [
        [list(point) for point in stroke] for stroke in SEVEN + [[(30.0, 30.0)]]
    ]  # a one-point stroke is a dot, kept


@pytest.mark.parametrize(
    "strokes, message",
    [
        ([], "at least one stroke"),
        ([[(1.0, 2.0)], []], "stroke 1 must be one or more"),
        ([[(1.0, float("nan"))]], "stroke 0 holds NaN"),
        ([[(1.0, 2.0, 3.0)]], "stroke 0 must be one or more"),
    ],
)
def test_bad_strokes_are_refused_and_nothing_is_written(tmp_path, strokes, message):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with pytest.raises(ValueError, match=message):
        store.add(np.zeros(784), 1, 2, source="test", strokes=strokes)
    assert store.count() == 0


OLD_SCHEMA = """
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, source TEXT NOT NULL,
    predicted_digit INTEGER NOT NULL, actual_digit INTEGER NOT NULL, is_error INTEGER NOT NULL,
    model_version TEXT, image BLOB NOT NULL, drawing_png BLOB
)
"""


def test_a_store_from_before_strokes_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "feedback.sqlite"
    image = np.random.default_rng(2).random(784, dtype=np.float32)
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO feedback (created_at, source, predicted_digit, actual_digit, is_error, model_version,"
            " image, drawing_png) VALUES (1.5, 'dashboard', 3, 8, 1, 'old', ?, ?)",
            (image.tobytes(), b"png"),
        )
    conn.close()
    stores = [FeedbackStore(path) for _ in range(2)]  # opened twice: the column is added once
    new_id = stores[1].add(np.zeros(784), 1, 7, source="api", strokes=SEVEN)
    newest, old = stores[0].recent(10)
    assert (old.id, old.source, old.model_version, old.drawing_png, old.strokes) == (
        1,
        "dashboard",
        "old",
        b"png",
        None,
    )
    np.testing.assert_array_equal(old.image.reshape(-1), image)
    assert newest.id == new_id == 2 and len(newest.strokes) == 2
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]
    conn.close()
    assert columns.count("strokes") == 1
