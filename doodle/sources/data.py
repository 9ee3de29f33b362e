"""Read the prepared MNIST splits (Parquet written by the `prepare` stage) into NumPy arrays,
with pyarrow alone, so training, evaluation and tests never need a Spark session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from doodle.constants import N_PIXELS as PIXELS_PER_IMAGE
from doodle.paths import ROOT

SPLITS = ("train", "validation", "test")
COLUMNS = ("index", "label", "pixels")
DEFAULT_ROOT = ROOT / "data" / "prepared"

UNKNOWN_SPLIT_MESSAGE = "unknown split {name!r}: expected one of {splits}"
MISSING_SPLIT_MESSAGE = "prepared split {name!r} not found at {path}: run `dvc repro prepare` first"
MISSING_COLUMNS_MESSAGE = "{path}: missing column(s) {missing}; expected {expected}"
BAD_PIXEL_LENGTH_MESSAGE = "{path}: {count} row(s) have a pixels value that is not {expected} bytes long"
NULL_VALUES_MESSAGE = "{path}: column {column!r} has {count} null value(s)"


class PreparedDataError(ValueError):
    """A prepared split is missing or does not have the layout of the `prepare` contract."""


def split_path(name: str, root: Path | str = DEFAULT_ROOT) -> Path:
    """The Parquet directory (or file) of split `name` under `root`."""
    if name not in SPLITS:
        raise PreparedDataError(UNKNOWN_SPLIT_MESSAGE.format(name=name, splits=", ".join(SPLITS)))
    return Path(root) / f"{name}.parquet"


def load_split(name: str, root: Path | str = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """Load one prepared split.

    Returns images (N, 784) uint8 (row-major 28x28, 0 background .. 255 ink) and labels (N,)
    int64, both ordered by the `index` column (the position in the source IDX file), so the
    result does not depend on how Spark partitioned the output.
    """
    path = split_path(name, root)
    if not path.exists():
        raise PreparedDataError(MISSING_SPLIT_MESSAGE.format(name=name, path=path))
    dataset = ds.dataset(path, format="parquet")  # skips Spark's _SUCCESS and .crc files
    columns = [column for column in COLUMNS if column in dataset.schema.names]
    return table_to_arrays(dataset.to_table(columns=columns), source=str(path))


def table_to_arrays(table: pa.Table, source: str = "<table>") -> tuple[np.ndarray, np.ndarray]:
    """Arrow table with columns index, label, pixels (binary, 784 bytes) -> images (N, 784)
    uint8 and labels (N,) int64, sorted by index."""
    missing = [column for column in COLUMNS if column not in table.column_names]
    if missing:
        raise PreparedDataError(
            MISSING_COLUMNS_MESSAGE.format(path=source, missing=missing, expected=list(COLUMNS))
        )
    for column in COLUMNS:
        nulls = table.column(column).null_count
        if nulls:
            raise PreparedDataError(NULL_VALUES_MESSAGE.format(path=source, column=column, count=nulls))

    order = np.argsort(table.column("index").to_numpy(), kind="stable")
    labels = table.column("label").to_numpy().astype(np.int64)[order]
    images = binary_matrix(table.column("pixels"), PIXELS_PER_IMAGE, source)[order]
    return images, labels


def binary_matrix(column: pa.Array | pa.ChunkedArray, width: int, source: str = "<column>") -> np.ndarray:
    """Binary (or large binary) column of values all `width` bytes long -> (N, width) uint8,
    straight from the Arrow buffers: the values of a binary array lie back to back in one
    data buffer, so no Python loop over rows is needed."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    n_rows = sum(len(chunk) for chunk in chunks)
    if n_rows:
        wrong = n_rows - pc.sum(pc.equal(pc.binary_length(column), width)).as_py()
        if wrong:
            raise PreparedDataError(BAD_PIXEL_LENGTH_MESSAGE.format(path=source, count=wrong, expected=width))
    parts = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        offset_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        parts.append(data.reshape(len(chunk), width))
    if not parts:
        return np.empty((0, width), dtype=np.uint8)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
