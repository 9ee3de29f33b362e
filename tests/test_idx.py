import gzip
import struct

import numpy as np
import pytest

from doodle.sources.idx import IdxFormatError, encode_idx, read_idx, write_idx


def images_array(n=5):
    return np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".idx", ".gz"])
def test_round_trip_images_and_labels(tmp_path, suffix):
    images = images_array()
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    read_images = read_idx(write_idx(tmp_path / f"images{suffix}", images))
    read_labels = read_idx(write_idx(tmp_path / f"labels{suffix}", labels))
    assert read_images.dtype == np.uint8 and read_images.shape == (5, 28, 28)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_gz_file_is_really_gzipped_and_reproducible(tmp_path):
    first = write_idx(tmp_path / "a.gz", images_array()).read_bytes()
    second = write_idx(tmp_path / "b.gz", images_array()).read_bytes()
    assert first[:2] == b"\x1f\x8b"
    assert first == second


def test_header_of_mnist_images_and_labels():
    assert encode_idx(images_array(2))[:16] == bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28)
    assert encode_idx(np.zeros(7, np.uint8))[:8] == bytes([0, 0, 8, 1]) + struct.pack(">I", 7)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_other_types_in_native_byte_order(dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    result = read_idx(encode_idx(array))
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_reads_bytes_plain_or_gzipped():
    raw = encode_idx(images_array(3))
    np.testing.assert_array_equal(read_idx(raw), read_idx(gzip.compress(raw)))


def test_truncated_payload_names_file_and_problem(tmp_path):
    path = tmp_path / "images.idx"
    path.write_bytes(encode_idx(images_array())[:-1])
    with pytest.raises(IdxFormatError, match=r"images\.idx.*need 3920 \(truncated\)"):
        read_idx(path)


def test_extra_bytes_are_refused(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(4, np.uint8)) + b"\x00\x00"))
    with pytest.raises(IdxFormatError, match=r"labels\.gz.*2 extra byte"):
        read_idx(path)


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(encode_idx(images_array()))[:-20])
    with pytest.raises(IdxFormatError, match=r"cut\.gz: corrupt gzip stream"):
        read_idx(path)


def test_bad_magic_is_refused():
    raw = bytearray(encode_idx(images_array()))
    raw[0] = 0x12
    with pytest.raises(IdxFormatError, match=r"mine: bad magic 0x12000803"):
        read_idx(bytes(raw), name="mine")


def test_unknown_type_byte_is_refused():
    raw = bytearray(encode_idx(images_array()))
    raw[2] = 0x07
    with pytest.raises(IdxFormatError, match="unknown IDX type byte 0x07"):
        read_idx(bytes(raw))


def test_wrong_dimensions_in_header_are_refused():
    # The header claims 29 rows: the payload no longer matches the product of dimensions.
    raw = bytearray(encode_idx(images_array()))
    raw[8:12] = struct.pack(">I", 29)
    with pytest.raises(IdxFormatError, match=r"dimensions \(5, 29, 28\).*truncated"):
        read_idx(bytes(raw))


def test_header_cut_inside_dimensions_is_refused():
    with pytest.raises(IdxFormatError, match="ends inside the header"):
        read_idx(encode_idx(images_array())[:10])
    with pytest.raises(IdxFormatError, match="too short for an IDX header"):
        read_idx(b"\x00\x00")


def test_zero_dimensions_is_refused():
    with pytest.raises(IdxFormatError, match="0 dimensions"):
        read_idx(bytes([0, 0, 8, 0]))


def test_labels_file_mislabelled_as_images_is_refused(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(60, np.uint8))
    with pytest.raises(
        IdxFormatError,
        match=r"train-images-idx3-ubyte\.gz: expected 3 dimension\(s\) \(magic 0x0803\), found 1 \(magic 0x0801\)",
    ):
        read_idx(path, expected_ndim=3)


def test_unexpected_image_size_is_refused():
    with pytest.raises(IdxFormatError, match=r"expected item shape \(28, 28\), found \(27, 28\)"):
        read_idx(encode_idx(np.zeros((2, 27, 28), np.uint8)), expected_item_shape=(28, 28))


def test_unsupported_dtype_cannot_be_written():
    with pytest.raises(IdxFormatError, match="cannot write dtype uint16"):
        encode_idx(np.zeros(3, np.uint16))
