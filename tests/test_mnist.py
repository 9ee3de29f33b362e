import functools
import hashlib
import os
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from doodle.sources import mnist
from doodle.sources.idx import IdxFormatError
from doodle.sources.mnist import ChecksumError, MissingFileError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def no_local_folder(monkeypatch):
    """Download paths are taken only when DOODLE_MNIST_DIR is unset."""
    monkeypatch.delenv("DOODLE_MNIST_DIR", raising=False)


@pytest.fixture
def payloads() -> dict[str, bytes]:
    """Two small files with known contents standing in for the MNIST files."""
    rng = np.random.default_rng(0)
    return {"alpha.gz": rng.bytes(300_000), "beta.gz": rng.bytes(1_000)}


@pytest.fixture
def checksums(payloads) -> dict[str, str]:
    return {name: sha256(data) for name, data in payloads.items()}


def write_folder(folder: Path, payloads: dict[str, bytes], flip: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in payloads.items():
        if name == flip:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        (folder / name).write_bytes(data)
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


class TruncatingHandler(SimpleHTTPRequestHandler):
    """Announces the full length, sends half the body, then closes the connection."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder, handler) -> base URL of a real HTTP server on loopback."""
    servers = []

    def start(folder: Path, handler=QuietHandler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def down_mirror() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def hanging_mirror():
    """A loopback URL that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    listener.close()


# --- local folder -------------------------------------------------------------------------


def test_fetch_copies_from_local_folder(tmp_path, payloads, checksums):
    source = write_folder(tmp_path / "source", payloads)
    result = mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)
    assert set(result) == set(payloads)
    for name, data in payloads.items():
        assert result[name].read_bytes() == data
    assert leftovers(tmp_path / "raw") == []


def test_fetch_reads_the_folder_from_the_environment(tmp_path, payloads, checksums, monkeypatch):
    source = write_folder(tmp_path / "source", payloads)
    monkeypatch.setenv("DOODLE_MNIST_DIR", str(source))
    result = mnist.fetch(tmp_path / "raw", mirrors=(), checksums=checksums)
    assert result["beta.gz"].read_bytes() == payloads["beta.gz"]


def test_corrupt_local_file_names_file_expected_and_actual(tmp_path, payloads, checksums):
    source = write_folder(tmp_path / "source", payloads, flip="alpha.gz")
    actual = sha256((source / "alpha.gz").read_bytes())
    with pytest.raises(ChecksumError) as caught:
        mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)
    message = str(caught.value)
    assert "alpha.gz" in message and checksums["alpha.gz"] in message and actual in message
    assert message == mnist.CHECKSUM_MESSAGE.format(
        name="alpha.gz", expected=checksums["alpha.gz"], actual=actual, origin=str(source / "alpha.gz")
    )
    assert not (tmp_path / "raw" / "alpha.gz").exists()
    assert leftovers(tmp_path / "raw") == []


def test_missing_local_file_is_named(tmp_path, payloads, checksums):
    source = write_folder(tmp_path / "source", {"alpha.gz": payloads["alpha.gz"]})
    with pytest.raises(
        MissingFileError, match=r"beta\.gz: not found in .*expected SHA-256 " + checksums["beta.gz"]
    ):
        mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)


def test_present_good_file_is_not_fetched_again(tmp_path, payloads, checksums):
    source = write_folder(tmp_path / "source", payloads)
    first = mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)
    inode = os.stat(first["alpha.gz"]).st_ino
    for path in source.iterdir():
        path.unlink()
    second = mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)
    assert os.stat(second["alpha.gz"]).st_ino == inode


def test_present_corrupt_file_is_replaced(tmp_path, payloads, checksums):
    source = write_folder(tmp_path / "source", payloads)
    write_folder(tmp_path / "raw", payloads, flip="beta.gz")
    result = mnist.fetch(tmp_path / "raw", local_dir=source, checksums=checksums)
    assert result["beta.gz"].read_bytes() == payloads["beta.gz"]


def test_verify_raises_checksum_error_for_a_flipped_byte(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"not the labels")
    with pytest.raises(
        ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 mismatch: expected f7ae60f9"
    ):
        mnist.verify(path)


# --- download through real HTTP on loopback -------------------------------------------------


def test_download_skips_down_and_corrupt_mirrors(tmp_path, payloads, checksums, serve, down_mirror):
    corrupt = serve(write_folder(tmp_path / "corrupt", payloads, flip="alpha.gz"))
    good = serve(write_folder(tmp_path / "good", payloads))
    result = mnist.fetch(
        tmp_path / "raw", local_dir=None, mirrors=(down_mirror, corrupt, good), checksums=checksums, timeout=5
    )
    for name, data in payloads.items():
        assert result[name].read_bytes() == data
    assert leftovers(tmp_path / "raw") == []


def test_download_moves_past_a_hanging_mirror(tmp_path, payloads, checksums, serve, hanging_mirror):
    good = serve(write_folder(tmp_path / "good", payloads))
    result = mnist.fetch(
        tmp_path / "raw", local_dir=None, mirrors=(hanging_mirror, good), checksums=checksums, timeout=0.5
    )
    assert result["alpha.gz"].read_bytes() == payloads["alpha.gz"]


def test_download_failure_lists_every_mirror(tmp_path, payloads, checksums, serve, down_mirror):
    corrupt_folder = write_folder(tmp_path / "corrupt", payloads, flip="alpha.gz")
    corrupt = serve(corrupt_folder)
    with pytest.raises(MissingFileError) as caught:
        mnist.fetch(
            tmp_path / "raw", local_dir=None, mirrors=(down_mirror, corrupt), checksums=checksums, timeout=5
        )
    message = str(caught.value)
    assert message.startswith(f"alpha.gz: every mirror failed (expected SHA-256 {checksums['alpha.gz']})")
    assert down_mirror + "alpha.gz" in message
    assert sha256((corrupt_folder / "alpha.gz").read_bytes()) in message
    assert not (tmp_path / "raw" / "alpha.gz").exists()
    assert leftovers(tmp_path / "raw") == []


def test_body_cut_short_leaves_no_partial_file(tmp_path, payloads, checksums, serve):
    truncating = serve(write_folder(tmp_path / "served", payloads), handler=TruncatingHandler)
    with pytest.raises(MissingFileError, match="IncompleteRead"):
        mnist.fetch(tmp_path / "raw", local_dir=None, mirrors=(truncating,), checksums=checksums, timeout=5)
    assert list((tmp_path / "raw").iterdir()) == []


def test_download_does_not_touch_an_existing_good_file_on_failure(tmp_path, payloads, checksums, down_mirror):
    write_folder(tmp_path / "raw", {"alpha.gz": payloads["alpha.gz"]})
    with pytest.raises(MissingFileError, match="beta.gz"):
        mnist.fetch(tmp_path / "raw", local_dir=None, mirrors=(down_mirror,), checksums=checksums, timeout=5)
    assert (tmp_path / "raw" / "alpha.gz").read_bytes() == payloads["alpha.gz"]
    assert leftovers(tmp_path / "raw") == []


# --- the IDX sources --------------------------------------------------------------------------


def test_load_source_reads_synthetic_files(synthetic_raw_dir):
    images, labels = mnist.load_source("test", synthetic_raw_dir)
    assert images.shape == (120, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (120,) and labels.dtype == np.uint8


def test_load_source_refuses_swapped_files(tmp_path, synthetic_raw_dir):
    images_name, labels_name, _ = mnist.SOURCES["train"]
    (tmp_path / images_name).write_bytes((synthetic_raw_dir / labels_name).read_bytes())
    (tmp_path / labels_name).write_bytes((synthetic_raw_dir / labels_name).read_bytes())
    with pytest.raises(IdxFormatError, match="expected 3 dimension"):
        mnist.load_source("train", tmp_path)


REAL_FOLDER = os.environ.get("DOODLE_MNIST_DIR")


def test_real_files_match_the_constants():
    folder = REAL_FOLDER
    if not folder or not Path(folder, "SHA256SUMS").is_file():
        pytest.skip("DOODLE_MNIST_DIR does not name a folder with the MNIST files and SHA256SUMS")
    listed = dict(
        reversed(line.split()) for line in Path(folder, "SHA256SUMS").read_text().splitlines() if line
    )
    assert listed == mnist.SHA256
