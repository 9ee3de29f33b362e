"""Read and write IDX files (the format MNIST ships in), plain or gzipped, in NumPy.

Every structural fault (bad magic, unknown type byte, wrong dimensions, too few or too many
payload bytes, a broken gzip stream) raises IdxFormatError naming the file: never a silently
wrong array.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# The IDX type byte -> big-endian NumPy dtype of the payload.
TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in TYPE_CODES.items()}

HEADER_TOO_SHORT = "{source}: {size} byte(s) is too short for an IDX header"
BAD_MAGIC = "{source}: bad magic {magic:#010x}: the first two bytes must be zero"
UNKNOWN_TYPE = "{source}: unknown IDX type byte {code:#04x}"
NO_DIMENSIONS = "{source}: IDX header declares 0 dimensions"
TRUNCATED_HEADER = "{source}: header declares {ndim} dimension(s) but the file ends inside the header"
WRONG_LENGTH = (
    "{source}: payload is {actual} byte(s) but dimensions {shape} of {dtype} need {expected} ({problem})"
)
UNEXPECTED_RANK = "{source}: expected {expected_ndim} dimension(s) (magic {expected_magic:#06x}), found {ndim} (magic {magic:#06x})"
UNEXPECTED_SHAPE = "{source}: expected item shape {expected}, found {actual}"
BAD_GZIP = "{source}: corrupt gzip stream ({error})"
UNSUPPORTED_DTYPE = (
    "cannot write dtype {dtype} as IDX: supported are uint8, int8, int16, int32, float32, float64"
)

IMAGES_MAGIC = 0x0803  # uint8, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 0x0801  # uint8, 1 dimension (count)


class IdxFormatError(ValueError):
    """The bytes are not a well-formed IDX file (or not the kind the caller expected)."""


def read_idx(
    source: str | Path | bytes,
    *,
    expected_ndim: int | None = None,
    expected_item_shape: tuple[int, ...] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Parse an IDX file (path or raw bytes, gzipped or not) -> array in native byte order,
    with the shape the header declares (e.g. (60000, 28, 28) uint8 for MNIST images).

    expected_ndim checks the magic's rank byte (3 for images, 1 for labels) so a label file
    passed as images is refused; expected_item_shape checks the dimensions after the first,
    e.g. (28, 28). `name` labels the data in error messages when `source` is bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        label = name or "<bytes>"
    else:
        raw = Path(source).read_bytes()
        label = name or str(source)
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise IdxFormatError(BAD_GZIP.format(source=label, error=error)) from error
    return parse_idx(raw, label, expected_ndim=expected_ndim, expected_item_shape=expected_item_shape)


def parse_idx(
    raw: bytes,
    source: str,
    *,
    expected_ndim: int | None = None,
    expected_item_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Uncompressed IDX bytes -> array; see read_idx."""
    if len(raw) < 4:
        raise IdxFormatError(HEADER_TOO_SHORT.format(source=source, size=len(raw)))
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero0 or zero1:
        raise IdxFormatError(BAD_MAGIC.format(source=source, magic=magic))
    if code not in TYPE_CODES:
        raise IdxFormatError(UNKNOWN_TYPE.format(source=source, code=code))
    if ndim == 0:
        raise IdxFormatError(NO_DIMENSIONS.format(source=source))
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(
            UNEXPECTED_RANK.format(
                source=source,
                expected_ndim=expected_ndim,
                expected_magic=(code << 8) | expected_ndim,
                ndim=ndim,
                magic=magic,
            )
        )
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise IdxFormatError(TRUNCATED_HEADER.format(source=source, ndim=ndim))
    shape = struct.unpack(f">{ndim}I", raw[4:header_end])
    if expected_item_shape is not None and tuple(shape[1:]) != tuple(expected_item_shape):
        raise IdxFormatError(
            UNEXPECTED_SHAPE.format(
                source=source, expected=tuple(expected_item_shape), actual=tuple(shape[1:])
            )
        )
    dtype = TYPE_CODES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} extra byte(s)"
        raise IdxFormatError(
            WRONG_LENGTH.format(
                source=source,
                actual=actual,
                shape=tuple(shape),
                dtype=dtype,
                expected=expected,
                problem=problem,
            )
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(array: np.ndarray) -> bytes:
    """Array of a supported dtype (any shape, at least 1-D) -> uncompressed IDX bytes."""
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.ndim == 0:
        raise IdxFormatError(UNSUPPORTED_DTYPE.format(dtype=array.dtype))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=TYPE_CODES[code]).tobytes()
    return header + payload


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` as IDX; gzipped when the name ends in .gz (mtime 0, so the bytes are
    reproducible). Returns the path."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
