"""Obtain the four original MNIST IDX files, verified by SHA-256: copied from a local folder
(env DOODLE_MNIST_DIR) or downloaded from public mirrors, always written atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from doodle.constants import IMAGE_SIDE
from doodle.paths import MNIST_DIR_ENV
from doodle.sources.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

# SHA-256 of the canonical files (their MD5s are the ones torchvision checks).
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FILES: tuple[str, ...] = tuple(SHA256)

# Source split name -> (images file, labels file, number of images).
SOURCES: dict[str, tuple[str, str, int]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE)

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
TIMEOUT_SECONDS = 30.0
_CHUNK = 1 << 20

CHECKSUM_MESSAGE = "{name}: SHA-256 mismatch: expected {expected}, actual {actual} ({origin})"
MISSING_MESSAGE = "{name}: not found in {folder} (set by {env}); expected SHA-256 {expected}, actual: no file"
NOT_UINT8_MESSAGE = "{split}: expected uint8 images and labels, found {images} and {labels}"
COUNT_MISMATCH_MESSAGE = "{split}: {images} images but {labels} labels"
DOWNLOAD_FAILED_MESSAGE = "{name}: every mirror failed (expected SHA-256 {expected}):\n{failures}"
UNKNOWN_FILE_MESSAGE = "{name!r} is not one of the MNIST files: {files}"


class MnistFileError(RuntimeError):
    """An MNIST file could not be obtained with the expected content."""


class ChecksumError(MnistFileError):
    """A file's SHA-256 differs from the canonical value."""

    def __init__(self, name: str, expected: str, actual: str, origin: str):
        super().__init__(CHECKSUM_MESSAGE.format(name=name, expected=expected, actual=actual, origin=origin))
        self.name, self.expected, self.actual, self.origin = name, expected, actual, origin


class MissingFileError(MnistFileError):
    """A file is absent from the local folder, or no mirror delivered it."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, name: str | None = None) -> Path:
    """Raise ChecksumError unless the file at `path` has the canonical SHA-256 of `name`
    (default: its own file name). Returns the path."""
    path = Path(path)
    name = name or path.name
    expected = _expected(name)
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(name, expected, actual, origin=str(path))
    return path


def fetch(
    dest_dir: str | Path,
    *,
    local_dir: str | Path | None = None,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = TIMEOUT_SECONDS,
    checksums: Mapping[str, str] = SHA256,
) -> dict[str, Path]:
    """Put the MNIST files into `dest_dir` and return {file name: path}, every one verified.

    Source: `local_dir`, else the folder named by env DOODLE_MNIST_DIR, else `mirrors` in
    order (next mirror on any failure, including a wrong checksum). A file already in
    `dest_dir` with the right checksum is kept as it is. Each file is written under a
    temporary name in `dest_dir`, verified, then renamed, so no half file is ever left.
    Raises ChecksumError (local copy corrupt) or MissingFileError (absent / all mirrors
    failed) naming the file with its expected and actual SHA-256. `checksums` ({file name:
    SHA-256}) defaults to the four MNIST files.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if local_dir is None:
        local_dir = os.environ.get(MNIST_DIR_ENV) or None
    result: dict[str, Path] = {}
    for name, expected in checksums.items():
        target = dest / name
        if target.is_file() and sha256_of(target) == expected:
            result[name] = target
            continue
        if local_dir is not None:
            _copy_local(Path(local_dir), name, expected, target)
        else:
            _download(name, expected, target, mirrors, timeout)
        result[name] = target
    return result


def load_source(split: str, raw_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one source split ("train" or "test") from `raw_dir` -> images (N, 28, 28) uint8,
    labels (N,) uint8; the IDX headers must match MNIST's (magic, 28x28, equal counts)."""
    images_name, labels_name, _ = SOURCES[split]
    raw_dir = Path(raw_dir)
    images = read_idx(
        raw_dir / images_name, expected_ndim=IMAGES_MAGIC & 0xFF, expected_item_shape=IMAGE_SHAPE
    )
    labels = read_idx(raw_dir / labels_name, expected_ndim=LABELS_MAGIC & 0xFF, expected_item_shape=())
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise MnistFileError(NOT_UINT8_MESSAGE.format(split=split, images=images.dtype, labels=labels.dtype))
    if len(images) != len(labels):
        raise MnistFileError(
            COUNT_MISMATCH_MESSAGE.format(split=split, images=len(images), labels=len(labels))
        )
    return images, labels


def _expected(name: str) -> str:
    try:
        return SHA256[name]
    except KeyError:
        raise MnistFileError(UNKNOWN_FILE_MESSAGE.format(name=name, files=", ".join(FILES))) from None


def _copy_local(folder: Path, name: str, expected: str, target: Path) -> None:
    source = folder / name
    if not source.is_file():
        raise MissingFileError(
            MISSING_MESSAGE.format(name=name, folder=folder, env=MNIST_DIR_ENV, expected=expected)
        )

    def copy(handle) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, _CHUNK)

    write_verified(target, name, expected, copy, origin=str(source))


def _download(name: str, expected: str, target: Path, mirrors: Sequence[str], timeout: float) -> None:
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name

        def copy(handle, url=url) -> None:
            request = urllib.request.Request(url, headers={"User-Agent": "doodle-digits"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                shutil.copyfileobj(response, handle, _CHUNK)
                # read(n) returns short data instead of raising when the server hangs up early.
                if getattr(response, "length", None):
                    raise http.client.IncompleteRead(b"", response.length)

        try:
            write_verified(target, name, expected, copy, origin=url)
            return
        except ChecksumError as error:
            failures.append(f"  {url}: {error}")
        # URLError and timeouts are OSErrors; a body cut short is an HTTPException.
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"  {url}: {type(error).__name__}: {error}")
    raise MissingFileError(
        DOWNLOAD_FAILED_MESSAGE.format(name=name, expected=expected, failures="\n".join(failures))
    )


def write_verified(target: Path, name: str, expected: str, write: Callable, origin: str) -> None:
    """Call write(binary handle) on a temporary file beside `target`, check its SHA-256,
    then rename it over `target`; the temporary file is removed on any failure."""
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{name}.", suffix=".part", delete=False)
    temporary = Path(handle.name)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        actual = sha256_of(temporary)
        if actual != expected:
            raise ChecksumError(name, expected, actual, origin=origin)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
