import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doodle.sources import data
from doodle.sources.data import PreparedDataError, binary_matrix, load_split, table_to_arrays


def make_table(n=30, seed=0, binary_type=pa.binary()):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    index = rng.permutation(n) + 1000
    table = pa.table(
        {
            "index": pa.array(index, pa.int64()),
            "label": pa.array(labels, pa.int32()),
            "pixels": pa.array([row.tobytes() for row in images], binary_type),
        }
    )
    order = np.argsort(index)
    return table, images[order], labels[order]


def write_split(root, name, table, parts=3):
    folder = root / f"{name}.parquet"
    folder.mkdir(parents=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for part, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        pq.write_table(table.slice(start, stop - start), folder / f"part-{part:05d}.parquet")
    (folder / "_SUCCESS").write_bytes(b"")  # as Spark leaves it


def test_load_split_sorts_by_index_across_part_files(tmp_path):
    table, images, labels = make_table()
    write_split(tmp_path, "validation", table)
    read_images, read_labels = load_split("validation", tmp_path)
    assert read_images.dtype == np.uint8 and read_images.shape == (30, 784)
    assert read_labels.dtype == np.int64
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_sliced_multi_chunk_and_large_binary_columns():
    table, images, labels = make_table(40, binary_type=pa.large_binary())
    # Batches that start at an offset inside their buffers, as slices of a bigger batch.
    sliced = pa.Table.from_batches(table.slice(5, 20).to_batches() + table.slice(25, 15).to_batches())
    kept = np.r_[5:25, 25:40]
    index = table.column("index").to_numpy()[kept]
    raw = np.stack([np.frombuffer(v, np.uint8) for v in table.column("pixels").to_pylist()])[kept]
    read_images, read_labels = table_to_arrays(sliced)
    np.testing.assert_array_equal(read_images, raw[np.argsort(index)])
    assert len(read_labels) == 35


def test_empty_split_gives_empty_arrays():
    table, _, _ = make_table(0)
    images, labels = table_to_arrays(table)
    assert images.shape == (0, 784) and labels.shape == (0,)


def test_wrong_pixel_length_is_refused():
    column = pa.array([bytes(784), bytes(783), bytes(784)], pa.binary())
    with pytest.raises(PreparedDataError, match="1 row.* not 784 bytes long"):
        binary_matrix(column, 784)


def test_missing_column_is_named(tmp_path):
    table, _, _ = make_table(5)
    write_split(tmp_path, "test", table.drop_columns(["label"]), parts=1)
    with pytest.raises(PreparedDataError, match=r"missing column\(s\) \['label'\]"):
        load_split("test", tmp_path)


def test_null_values_are_refused():
    table = pa.table({"index": pa.array([0, None], pa.int64()), "label": [1, 2], "pixels": [bytes(784)] * 2})
    with pytest.raises(PreparedDataError, match="column 'index' has 1 null"):
        table_to_arrays(table)


def test_unknown_and_missing_splits_are_explained(tmp_path):
    with pytest.raises(PreparedDataError, match="unknown split 'training'"):
        load_split("training", tmp_path)
    with pytest.raises(PreparedDataError) as caught:
        load_split("train", tmp_path)
    assert str(caught.value) == data.MISSING_SPLIT_MESSAGE.format(
        name="train", path=tmp_path / "train.parquet"
    )
