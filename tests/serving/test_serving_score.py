"""`python -m doodle.reading.score` (what `make score` runs) on 1,000 generated drawings against
`/predict/image` over real HTTP on the same files: the same digits, and error rows exactly where
the API refuses a file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from drawing_helpers import synthetic_drawings
from serving_helpers import REPO_ROOT

from doodle.reading import score

COUNT = 1000
SEED = 14
# Batch and single-image forward passes may differ in the last float32 bits; only a digit whose
# top two probabilities are closer than this may legitimately come out differently.
TIE = 1e-5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("to-score")
    drawings = synthetic_drawings(COUNT, SEED)
    for name, data in drawings:
        (folder / name).write_bytes(data)
    (folder / "corrupt.png").write_bytes(drawings[0][1][: len(drawings[0][1]) // 3])
    (folder / "not-an-image.jpg").write_bytes(b"GIF89a this is no drawing")
    return folder


@pytest.fixture(scope="module")
def scored(folder, model_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("scored") / "scores.parquet"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "doodle.reading.score",
            str(folder),
            str(output),
            "--model",
            str(model_dir),
            "--master",
            "local[2]",
            "--driver-memory",
            "1g",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"scored {COUNT + 2} images" in completed.stdout
    return {row["id"]: row for row in pq.read_table(output).to_pylist()}


def test_score_gives_the_api_digits_and_errors_where_it_refuses(folder, scored, client, model):
    assert sorted(scored) == sorted(path.name for path in folder.iterdir())
    mismatched, refused = [], []
    for path in sorted(folder.iterdir()):
        row = scored[path.name]
        response = client.post("/predict/image", files={"file": (path.name, path.read_bytes(), "image/png")})
        if response.status_code != 200:
            refused.append(path.name)
            assert row["digit"] is None and row["error"], (path.name, row)
            continue
        answer = response.json()
        assert row["error"] is None, (path.name, row)
        assert row["model_version"] == answer["model_version"] == model.version
        assert row["confidence"] == pytest.approx(answer["confidence"], abs=1e-5)
        if row["digit"] != answer["Result"]:
            top_two = np.sort(answer["probabilities"])[-2:]
            mismatched.append((path.name, top_two[1] - top_two[0]))
        else:
            assert (row["runner_up"], row["unsure"]) == (answer["runner_up"], answer["unsure"]), path.name
    assert sorted(refused) == ["corrupt.png", "not-an-image.jpg"]
    assert all(gap < TIE for _, gap in mismatched), mismatched
    assert len(mismatched) <= 2
    assert len({row["digit"] for row in scored.values() if row["digit"] is not None}) >= 3
    assert scored["corrupt.png"]["error"] == "image is truncated or corrupt"
    assert scored["not-an-image.jpg"]["error"] == "not a PNG or JPEG image"
    runner_ups = [row for row in scored.values() if row["error"] is None]
    assert all(
        row["runner_up"] != row["digit"] and row["runner_up_confidence"] <= row["confidence"]
        for row in runner_ups
    )
    assert score.RESULT_SCHEMA.names == list(next(iter(scored.values())))
