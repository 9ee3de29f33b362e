"""Batch scoring (`doodle.reading.score`): Parquet inputs of both kinds and folders of drawings through a
real local[1] session, bad images as error rows, and the command's refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drawing_helpers import synthetic_drawings

from doodle.canvas.preprocess import (
    BLANK_CANVAS_MESSAGE,
    CORRUPT_IMAGE_MESSAGE,
    NOT_AN_IMAGE_MESSAGE,
    canvas_to_input,
)
from doodle.model import mlp, model_io
from doodle.paths import ROOT
from doodle.reading import score

SEED = 20261123
COUNT = 60


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> model_io.Model:
    params = mlp.init_params([784, 32, 10], seed=3)
    return model_io.save_model(
        tmp_path_factory.mktemp("model"), params, normalization={"mean": 0.13, "std": 0.31}
    )


@pytest.fixture(scope="module")
def drawings() -> list[tuple[str, bytes]]:
    return synthetic_drawings(COUNT, SEED)


def blank_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def expected_rows(model, names, values, kind="png") -> dict[str, tuple]:
    """What the scorer must say, computed one image at a time without Spark: id -> (digit, error)."""
    rows = {}
    for name, value in zip(names, values):
        try:
            image = score.to_input(value, kind)
        except ValueError as exc:
            rows[name] = (None, str(exc))
            continue
        digits, _ = model.predict(image[None, :])
        rows[name] = (int(digits[0]), None)
    return rows


def as_dict(table: pa.Table) -> dict[str, tuple]:
    return {r["id"]: (r["digit"], r["error"]) for r in table.to_pylist()}


def test_score_batch_rows_runner_up_and_errors(model, drawings):
    names = [name for name, _ in drawings[:10]] + ["blank", "truncated", "text", "missing"]
    values = [data for _, data in drawings[:10]] + [blank_png(), drawings[0][1][:200], b"hello", None]
    result = score.score_batch(model, pa.record_batch({"id": names, "png": pa.array(values, pa.binary())}))
    assert result.schema == score.RESULT_SCHEMA
    rows = result.to_pylist()
    assert [row["id"] for row in rows] == names
    for row in rows[:10]:
        assert row["error"] is None and row["model_version"] == model.version
        assert row["runner_up"] != row["digit"]
        assert 1.0 >= row["confidence"] >= row["runner_up_confidence"] >= 0.0
    errors = [row["error"] for row in rows[10:]]
    assert errors == [
        BLANK_CANVAS_MESSAGE,
        CORRUPT_IMAGE_MESSAGE,
        NOT_AN_IMAGE_MESSAGE,
        score.NO_IMAGE_DATA_MESSAGE,
    ]
    assert all(row["digit"] is None and row["confidence"] is None for row in rows[10:])
    digits, probs = model.predict(np.stack([score.to_input(v, "png") for v in values[:10]]))
    assert [row["digit"] for row in rows[:10]] == digits.tolist()
    np.testing.assert_allclose([row["confidence"] for row in rows[:10]], probs.max(axis=1), rtol=1e-5)


def test_folder_with_corrupt_file_scores_every_file(spark, model, drawings, tmp_path):
    folder = tmp_path / "drawings"
    (folder / "more space").mkdir(parents=True)
    for name, data in drawings:
        (folder / name).write_bytes(data)
    (folder / "more space" / "blank one.png").write_bytes(blank_png())
    (folder / "corrupt.png").write_bytes(drawings[1][1][: len(drawings[1][1]) // 2])
    (folder / "notes.txt").write_text("not a drawing, not scored")
    result = score.score_images(score.read_images(spark, folder), model).toArrow()
    got = as_dict(result)
    names = [name for name, _ in drawings] + ["more space/blank one.png", "corrupt.png"]
    values = [data for _, data in drawings] + [blank_png(), drawings[1][1][: len(drawings[1][1]) // 2]]
    assert got == expected_rows(model, names, values)
    assert got["corrupt.png"] == (None, CORRUPT_IMAGE_MESSAGE)
    assert got["more space/blank one.png"] == (None, BLANK_CANVAS_MESSAGE)


def test_parquet_png_column_keeps_ids(spark, model, drawings, tmp_path):
    path = tmp_path / "drawings.parquet"
    ids = list(range(1000, 1000 + len(drawings)))
    pq.write_table(pa.table({"id": ids, "png": pa.array([d for _, d in drawings], pa.binary())}), path)
    got = as_dict(score.score_images(score.read_images(spark, path), model).toArrow())
    assert got == expected_rows(model, [str(i) for i in ids], [d for _, d in drawings])


def test_parquet_pixels_column_without_ids(spark, model, drawings, tmp_path):
    """784-byte 28x28 images (the prepared MNIST layout, 255 = ink); no id column, so rows are
    named by file and position; a short row is an error row."""
    from doodle.canvas.preprocess import decode_image

    pixels = [
        (canvas_to_input(decode_image(d)) * 255).round().astype(np.uint8).tobytes() for _, d in drawings
    ]
    pixels.append(pixels[0][:783])
    path = tmp_path / "pixels.parquet"
    pq.write_table(pa.table({"pixels": pa.array(pixels, pa.binary())}), path)
    got = as_dict(score.score_images(score.read_images(spark, path), model).toArrow())
    assert got == expected_rows(
        model, [f"pixels.parquet:{i}" for i in range(len(pixels))], pixels, kind="pixels"
    )
    assert got[f"pixels.parquet:{len(drawings)}"] == (
        None,
        score.PIXELS_LENGTH_MESSAGE.format(expected=784, actual=783),
    )
    assert sum(error is None for _, error in got.values()) == len(drawings)


def test_prepared_split_layout_is_accepted(spark, model, tmp_path):
    """A Parquet folder with the prepare stage's columns: index names the rows."""
    rng = np.random.default_rng(0)
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    for image in images:
        image[6:22, rng.integers(8, 18) : 20] = 255
    folder = tmp_path / "test.parquet"
    folder.mkdir()
    table = pa.table(
        {
            "index": pa.array(np.arange(5, 10)),
            "label": pa.array(np.ones(5, np.int32)),
            "pixels": pa.array([image.tobytes() for image in images], pa.binary()),
        }
    )
    pq.write_table(table, folder / "part-00000.parquet")
    got = as_dict(score.score_images(score.read_images(spark, folder), model).toArrow())
    assert sorted(got) == ["5", "6", "7", "8", "9"]
    assert all(error is None for _, error in got.values())


def test_parquet_without_image_column_is_refused(spark, tmp_path):
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": [1], "label": [3]}), path)
    with pytest.raises(score.ScoreInputError, match=r"no image column: expected one of \['png', 'pixels'\]"):
        score.read_images(spark, path)


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "doodle.reading.score", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_refuses_missing_input_and_taken_output(model, tmp_path):
    model_dir = tmp_path / "m"
    model_io.save_model(model_dir, model.params, normalization={"mean": 0.13, "std": 0.31})
    missing = run_command(str(tmp_path / "nowhere"), str(tmp_path / "out"), "--model", str(model_dir))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    (tmp_path / "in").mkdir()
    refused = run_command(str(tmp_path / "in"), str(taken), "--model", str(model_dir))
    assert refused.returncode == 2
    assert "already exists" in refused.stderr
    assert (taken / "keep.txt").read_text() == "mine"
    bad_model = run_command(
        str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tmp_path / "no-model")
    )
    assert bad_model.returncode == 2 and "error:" in bad_model.stderr
