"""People's corrections as data: the feedback store's snapshot, the feedback splits, the rows
training mixes in, and the figures the feedback stage reports. pyarrow and NumPy only; the
Spark side is `doodle.loop.feedback_spark`.

Files (all under ``data/``):

- ``feedback-snapshot/store.parquet``: every row of the store (the SQLite file, or PostgreSQL
  when ``DOODLE_FEEDBACK_URL`` is set), ordered by id, written by
  ``python -m doodle.loop.feedback_data`` (the `feedback_snapshot` stage). Its bytes depend only on
  the rows, so an unchanged store gives an unchanged file and DVC reruns nothing downstream.
- ``feedback/{train,holdout}.parquet``: validated, de-duplicated rows split by a hash of the
  drawing (the `feedback` stage), with the columns of the prepared MNIST splits (``index`` = the
  store's row id, ``label`` = the digit the person drew, ``pixels`` = 784 bytes) plus
  ``predicted``, ``model_version``, ``source``, ``created_at`` and ``strokes`` (the pen's strokes as
  JSON text, null for a pixel-only row): the path model trains on the train rows that have them
  (`path_training_rows`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from doodle.constants import N_PIXELS
from doodle.loop.feedback import is_postgres_url, strokes_from_json
from doodle.paths import feedback_db_path, feedback_url
from doodle.sources import data

SNAPSHOT_PATH = Path("data/feedback-snapshot/store.parquet")
SPLIT_ROOT = Path("data/feedback")
SPLITS = ("train", "holdout")
SNAPSHOT_INFO_NAME = "snapshot.json"

SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("created_at", pa.float64()),
        pa.field("source", pa.string()),
        pa.field("predicted_digit", pa.int64()),
        pa.field("actual_digit", pa.int64()),
        pa.field("model_version", pa.string()),
        pa.field("image", pa.binary()),  # 784 float32 (3,136 bytes) when valid
        pa.field("drawing_png", pa.binary()),
        pa.field("strokes", pa.string()),  # JSON [[[x, y], ...], ...] in pad pixels; null: pixel-only
    ]
)
SPLIT_SCHEMA = pa.schema(
    [
        pa.field("index", pa.int64(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("pixels", pa.binary(), nullable=False),
        pa.field("predicted", pa.int32()),
        pa.field("model_version", pa.string()),
        pa.field("source", pa.string()),
        pa.field("created_at", pa.float64()),
        pa.field("strokes", pa.string()),
    ]
)
UNKNOWN_SPLIT_MESSAGE = "unknown feedback split {name!r}: expected one of {splits}"
NEGATIVE_WEIGHT_MESSAGE = "feedback_weight must be an integer >= 0, got {weight!r}"


def read_store(db_path: str | Path) -> pa.Table:
    """Every row of the feedback store, ordered by id, as a `SNAPSHOT_SCHEMA` table. ``db_path``
    is the SQLite file (no rows when it does not exist yet: an empty store is normal), opened
    read-only so the dashboard and the API keep writing meanwhile (WAL gives a consistent
    snapshot), or a ``postgresql://`` URL (`read_postgres_store`). The same rows give the same
    table, and so the same Parquet bytes, from either store."""
    if is_postgres_url(str(db_path)):
        return read_postgres_store(str(db_path))
    path = Path(db_path)
    columns = [field.name for field in SNAPSHOT_SCHEMA]
    if not path.exists():
        return SNAPSHOT_SCHEMA.empty_table()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        stored = {row[1] for row in conn.execute("PRAGMA table_info(feedback)")}
        # A store no writer has opened since corrections kept their strokes has no such column:
        # its rows are pixel-only.
        selected = [name if name in stored else f"NULL AS {name}" for name in columns]
        rows = (
            conn.execute(f"SELECT {', '.join(selected)} FROM feedback ORDER BY id").fetchall()
            if stored
            else []
        )
    finally:
        conn.close()
    return pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(columns)}, schema=SNAPSHOT_SCHEMA
    )


def read_postgres_store(url: str) -> pa.Table:
    """Every row of the PostgreSQL feedback store at ``url``, ordered by id, read in one
    repeatable-read transaction while replicas keep writing. An unreachable server raises
    `doodle.loop.feedback_pg.FeedbackDatabaseError`: a snapshot is never taken from anywhere else."""
    from doodle.loop.feedback_pg import PostgresFeedbackStore  # noqa: PLC0415 - psycopg only when configured

    columns = [field.name for field in SNAPSHOT_SCHEMA]
    store = PostgresFeedbackStore(url, pool_size=1)
    try:
        rows = store.snapshot_rows(columns)
    finally:
        store.close()
    return pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(columns)}, schema=SNAPSHOT_SCHEMA
    )


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as one Parquet file whose bytes depend only on its rows (no timestamps;
    written to a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary, compression="snappy")
    temporary.replace(path)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_path(name: str, root: str | Path = SPLIT_ROOT) -> Path:
    if name not in SPLITS:
        raise ValueError(UNKNOWN_SPLIT_MESSAGE.format(name=name, splits=", ".join(SPLITS)))
    return Path(root) / f"{name}.parquet"


def load_split(name: str, root: str | Path = SPLIT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """A feedback split as the MNIST splits load: images ``(N, 784)`` uint8 and labels ``(N,)``
    int64, ordered by the store's row id. A missing file is an error (run `dvc repro feedback`)."""
    path = split_path(name, root)
    if not path.exists():
        raise data.PreparedDataError(
            f"feedback split {name!r} not found at {path}: run `dvc repro feedback` first"
        )
    return data.table_to_arrays(pq.read_table(path, columns=list(data.COLUMNS)), source=str(path))


def snapshot_info(root: str | Path = SPLIT_ROOT) -> dict:
    """``{"snapshot_sha256", "snapshot_rows", "train_rows", "holdout_rows"}``: which snapshot of
    the store the splits under ``root`` were made from (``snapshot.json``, by the feedback stage)."""
    path = Path(root) / SNAPSHOT_INFO_NAME
    if not path.exists():
        raise data.PreparedDataError(f"{path} not found: run `dvc repro feedback` first")
    return json.loads(path.read_text())


def training_rows(root: str | Path, weight: int) -> tuple[np.ndarray, np.ndarray]:
    """The feedback-train rows that training mixes in, each repeated ``weight`` times
    (oversampling: a correction counts as much as ``weight`` MNIST images; 0 mixes nothing in).
    Returns images ``(weight * N, 784)`` uint8 and labels ``(weight * N,)`` int64."""
    if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)) or weight < 0:
        raise ValueError(NEGATIVE_WEIGHT_MESSAGE.format(weight=weight))
    if weight == 0:
        return np.empty((0, N_PIXELS), np.uint8), np.empty(0, np.int64)
    images, labels = load_split("train", root)
    return np.tile(images, (int(weight), 1)), np.tile(labels, int(weight))


def path_training_rows(root: str | Path) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray]:
    """The feedback-train rows that kept their strokes, for the path model: drawings (each a tuple
    of ``(K, 2)`` float64 strokes in pad pixels) and their digits ``(N,)`` int64, ordered by the
    store's row id. Rows without strokes are pixel-only and left out; a split written before the
    column existed has none."""
    path = split_path("train", root)
    if not path.exists():
        raise data.PreparedDataError(
            f"feedback split 'train' not found at {path}: run `dvc repro feedback` first"
        )
    table = pq.read_table(path)
    if "strokes" not in table.column_names:
        return [], np.empty(0, np.int64)
    drawings, labels = [], []
    for text, label in zip(table.column("strokes").to_pylist(), table.column("label").to_pylist()):
        if text is not None:
            drawings.append(strokes_from_json(text))
            labels.append(int(label))
    return drawings, np.asarray(labels, dtype=np.int64)


def digit_counts(labels: Sequence[int]) -> list[int]:
    """``(N,)`` digits -> ten counts, digit 0 first."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=10)[:10].tolist()


def error_rates_by_version(table: pa.Table) -> dict[str, dict[str, float]]:
    """{model version: {"rows", "errors", "error_rate"}} of a split table; rows stored without a
    version are counted under ``"unknown"``."""
    versions = [v if v is not None else "unknown" for v in table.column("model_version").to_pylist()]
    wrong = np.asarray(table.column("predicted").to_pylist()) != np.asarray(table.column("label").to_pylist())
    result = {}
    for version in sorted(set(versions)):
        mask = np.asarray([v == version for v in versions])
        rows, errors = int(mask.sum()), int(wrong[mask].sum())
        result[version] = {"rows": rows, "errors": errors, "error_rate": errors / rows}
    return result


def confusion_counts(actual: Sequence[int], predicted: Sequence[int]) -> np.ndarray:
    """``(10, 10)`` int64: row = digit drawn, column = digit the model said."""
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (np.asarray(actual, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def most_confused(matrix: np.ndarray, top: int = 5) -> list[dict[str, int]]:
    """The ``top`` off-diagonal cells of a confusion matrix, largest first (ties: lower digits
    first): ``[{"actual", "predicted", "count"}]``, zero counts left out."""
    cells = [(-int(matrix[a, p]), a, p) for a in range(10) for p in range(10) if a != p and matrix[a, p] > 0]
    return [{"actual": a, "predicted": p, "count": -n} for n, a, p in sorted(cells)[:top]]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m doodle.loop.feedback_data [--db PATH | --url URL] [--out PATH]``: snapshot the
    configured store (PostgreSQL when ``DOODLE_FEEDBACK_URL`` is set, else the SQLite file)."""
    parser = argparse.ArgumentParser(description="Snapshot the feedback store into Parquet.")
    parser.add_argument(
        "--db", default=str(feedback_db_path()), help="the SQLite store (default: DOODLE_FEEDBACK_DB)"
    )
    parser.add_argument(
        "--url",
        default=feedback_url(),
        help="a postgresql:// store, read instead of --db (default: DOODLE_FEEDBACK_URL)",
    )
    parser.add_argument("--out", default=str(SNAPSHOT_PATH), help="the Parquet file to write")
    args = parser.parse_args(argv)
    if args.url and not is_postgres_url(args.url):
        parser.error("--url (DOODLE_FEEDBACK_URL) must be a postgresql:// URL")
    table = read_postgres_store(args.url) if args.url else read_store(args.db)
    write_table(table, args.out)
    source = args.db
    if args.url:
        from doodle.loop.feedback_pg import public_location  # noqa: PLC0415 - psycopg only when configured

        source = public_location(args.url)
    print(f"{table.num_rows} feedback rows from {source} -> {args.out} (sha256 {file_sha256(args.out)[:12]})")


if __name__ == "__main__":
    main()
