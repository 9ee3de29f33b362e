"""The feedback dataset: a snapshot whose bytes follow the rows, Spark's validation, de-duplication
and hash split through a real local session, and the rows training mixes in."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from doodle.loop import feedback_data, feedback_spark
from doodle.loop.feedback import FeedbackStore


def drawing(seed: int) -> np.ndarray:
    """A (784,) float32 image in [0, 1] with some ink, different for every seed."""
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28), np.float32)
    image[6:22, 8:20] = (rng.random((16, 12)) > 0.6).astype(np.float32)
    return image.reshape(-1)


def insert_raw(path, image_bytes: bytes, predicted: int = 1, actual: int = 2) -> None:
    """A row the store's own `add` would refuse, as an older writer or a bug might leave."""
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO feedback (created_at, source, predicted_digit, actual_digit, is_error, image)"
        " VALUES (0, 'test', ?, ?, ?, ?)",
        (predicted, actual, int(predicted != actual), image_bytes),
    )
    conn.commit()
    conn.close()


def test_snapshot_bytes_follow_the_rows(tmp_path):
    db = tmp_path / "feedback.sqlite"
    empty = tmp_path / "empty.parquet"
    feedback_data.write_table(feedback_data.read_store(db), empty)  # no store yet: normal
    assert feedback_data.read_store(db).num_rows == 0
    store = FeedbackStore(db)
    store.add(drawing(1), 3, 8, source="api", model_version="v1")
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    feedback_data.write_table(feedback_data.read_store(db), first)
    feedback_data.write_table(feedback_data.read_store(db), second)
    assert first.read_bytes() == second.read_bytes()
    store.add(drawing(2), 4, 4, source="dashboard", model_version="v1", drawing_png=b"png")
    feedback_data.write_table(feedback_data.read_store(db), second)
    assert feedback_data.file_sha256(first) != feedback_data.file_sha256(second)
    table = feedback_data.read_store(db)
    assert table.column("id").to_pylist() == [1, 2]
    assert table.column("drawing_png").to_pylist() == [None, b"png"]


def run_spark(spark, db, holdout_fraction=0.5, seed=3):
    snapshot = feedback_data.read_store(db)
    checked = feedback_spark.with_validity(feedback_spark.snapshot_dataframe(spark, snapshot)).cache()
    distinct = feedback_spark.deduplicate(checked)
    train, holdout = feedback_spark.split(distinct, holdout_fraction, seed)
    return (
        feedback_spark.invalid_counts(checked),
        feedback_spark.to_table(train),
        feedback_spark.to_table(holdout),
    )


def test_spark_validates_deduplicates_and_splits_by_drawing(spark, tmp_path):
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    for seed in range(20):
        store.add(drawing(seed), seed % 10, (seed + 1) % 10, source="api", model_version="v1")
    duplicate_id = store.add(drawing(0), 0, 7, source="dashboard", model_version="v2")  # same drawing, newer
    store.add(np.zeros(784, np.float32), 1, 1, source="api")  # blank
    insert_raw(db, np.full(784, 2.0, np.float32).tobytes())  # out of range
    insert_raw(db, np.full(784, np.nan, np.float32).tobytes())  # not finite
    insert_raw(db, b"\x00" * 100)  # truncated

    invalid, train, holdout = run_spark(spark, db)
    assert invalid == {
        "image size": 1,
        "not finite": 1,
        "out of range": 1,
        "blank": 1,
        "digit out of range": 0,
    }
    assert train.num_rows + holdout.num_rows == 20  # 21 valid rows, one drawing twice
    assert 0 < holdout.num_rows < 20
    ids = train.column("index").to_pylist() + holdout.column("index").to_pylist()
    assert duplicate_id in ids and 1 not in ids  # the newer correction of drawing 0 won
    row = (train if duplicate_id in train.column("index").to_pylist() else holdout).to_pylist()
    kept = next(r for r in row if r["index"] == duplicate_id)
    assert (kept["label"], kept["predicted"], kept["model_version"]) == (7, 0, "v2")
    np.testing.assert_array_equal(
        np.frombuffer(kept["pixels"], np.uint8), np.rint(drawing(0) * 255).astype(np.uint8)
    )
    assert train.column("index").to_pylist() == sorted(train.column("index").to_pylist())

    # New feedback never moves an old row from one side to the other.
    for seed in range(100, 110):
        store.add(drawing(seed), 1, 2, source="api")
    _, train_after, holdout_after = run_spark(spark, db)
    old = set(ids)
    assert {i for i in holdout_after.column("index").to_pylist() if i in old} == set(
        holdout.column("index").to_pylist()
    )
    assert train_after.num_rows + holdout_after.num_rows == 30


def test_an_empty_store_gives_empty_splits(spark, tmp_path):
    invalid, train, holdout = run_spark(spark, tmp_path / "none.sqlite")
    assert sum(invalid.values()) == 0
    assert train.num_rows == holdout.num_rows == 0
    assert train.schema == feedback_data.SPLIT_SCHEMA
    # The feedback stage starts no Spark session for an empty store: its stand-in gives the same.
    counts, tables = feedback_spark.empty_result()
    assert counts == invalid
    assert tables["train"].equals(train, check_metadata=True)
    assert tables["holdout"].equals(holdout, check_metadata=True)
    feedback_data.write_table(train, feedback_data.split_path("train", tmp_path))
    images, labels = feedback_data.load_split("train", tmp_path)
    assert images.shape == (0, 784) and labels.shape == (0,)


def test_training_rows_are_oversampled_and_zero_turns_them_off(spark, tmp_path):
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    for seed in range(6):
        store.add(drawing(seed), 1, seed, source="api")
    _, train, _ = run_spark(spark, db, holdout_fraction=0.0)
    feedback_data.write_table(train, feedback_data.split_path("train", tmp_path))
    images, labels = feedback_data.training_rows(tmp_path, 3)
    assert images.shape == (18, 784) and images.dtype == np.uint8
    assert labels.tolist() == list(range(6)) * 3
    assert feedback_data.training_rows(tmp_path, 0)[0].shape == (0, 784)
    with pytest.raises(ValueError, match="feedback_weight must be an integer >= 0"):
        feedback_data.training_rows(tmp_path, -1)


SEVEN = [[[60.0, 50.0], [220.0, 50.0], [120.0, 240.0]], [[100.0, 140.0], [190.0, 140.0]]]


def test_corrections_with_strokes_reach_the_path_models_training_set(spark, tmp_path):
    """Store -> snapshot -> Spark split -> the path model's training rows: the corrections that
    kept their strokes, the pixel-only ones left out."""
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    for seed in range(6):
        strokes = [[[x + seed, y] for x, y in stroke] for stroke in SEVEN] if seed % 2 else None
        store.add(drawing(seed), 1, seed, source="dashboard", strokes=strokes)
    snapshot = feedback_data.read_store(db)
    assert snapshot.column("strokes").null_count == 3
    _, train, _ = run_spark(spark, db, holdout_fraction=0.0)
    assert train.schema == feedback_data.SPLIT_SCHEMA and train.column("strokes").null_count == 3
    feedback_data.write_table(train, feedback_data.split_path("train", tmp_path))
    drawings, labels = feedback_data.path_training_rows(tmp_path)
    assert labels.tolist() == [1, 3, 5]
    assert [len(strokes) for strokes in drawings] == [2, 2, 2]
    np.testing.assert_array_equal(drawings[1][0], np.array(SEVEN[0]) + [3.0, 0.0])
    # The pixels still train on all six.
    assert feedback_data.training_rows(tmp_path, 1)[1].tolist() == list(range(6))


def test_a_store_no_writer_has_opened_since_strokes_reads_as_pixel_only(spark, tmp_path):
    db = tmp_path / "feedback.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL,"
        " source TEXT NOT NULL, predicted_digit INTEGER NOT NULL, actual_digit INTEGER NOT NULL,"
        " is_error INTEGER NOT NULL, model_version TEXT, image BLOB NOT NULL, drawing_png BLOB)"
    )
    conn.commit()
    conn.close()
    insert_raw(db, drawing(1).tobytes(), 2, 5)
    snapshot = feedback_data.read_store(db)
    assert snapshot.schema == feedback_data.SNAPSHOT_SCHEMA
    assert snapshot.column("strokes").to_pylist() == [None]
    # A snapshot written before the column existed goes through Spark as pixel-only rows too.
    _, train, _ = run_spark(spark, db, holdout_fraction=0.0)
    assert train.column("label").to_pylist() == [5] and train.column("strokes").to_pylist() == [None]
    legacy = feedback_spark.snapshot_dataframe(spark, snapshot.drop(["strokes"]))
    assert legacy.select("strokes").collect()[0][0] is None


def test_confusion_and_error_rates():
    matrix = feedback_data.confusion_counts([9, 9, 9, 7, 7, 1], [4, 4, 7, 1, 7, 1])
    assert matrix[9, 4] == 2 and matrix.sum() == 6
    assert feedback_data.most_confused(matrix, top=2) == [
        {"actual": 9, "predicted": 4, "count": 2},
        {"actual": 7, "predicted": 1, "count": 1},
    ]
    assert feedback_data.digit_counts([1, 1, 9]) == [0, 2, 0, 0, 0, 0, 0, 0, 0, 1]
