"""The feedback store: what is acknowledged is on disk, from many threads and processes."""

import multiprocessing
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from doodle.feedback import FeedbackStore


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
