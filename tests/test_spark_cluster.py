"""Spark on a real standalone cluster: a master and a worker started from the venv's PySpark on
loopback, the `prepare` notebook run against it, and batch scoring through it.

The notebook writes into a scratch folder and its Parquet must equal, byte for byte, what the
pipeline wrote with `local[*]` in data/prepared/ (so these tests need `dvc repro prepare` first
and fail saying so otherwise).
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from drawing_helpers import synthetic_drawings

from doodle.model import mlp, model_io
from doodle.paths import ROOT
from doodle.reading import score
from doodle.sources.data import SPLITS
from doodle.sources.mnist import SOURCES
from support.spark_cluster import standalone_cluster

pytestmark = pytest.mark.slow

PREPARED = ROOT / "data" / "prepared"
RAW = ROOT / "data" / "raw"
MISSING_PIPELINE_MESSAGE = "no local[*] output to compare with at {path}: run `dvc repro prepare` first"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and one 2-core worker with 2g for executors; always stopped afterwards."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=2, memory="2g") as running:
        yield running


def parquet_files(root: Path) -> list[Path]:
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


@pytest.mark.pipeline("data/raw", "data/prepared")
def test_prepare_notebook_on_the_cluster_matches_local(cluster, tmp_path):
    if not all(split_dir.is_dir() for split_dir in (PREPARED / f"{name}.parquet" for name in SPLITS)):
        pytest.fail(MISSING_PIPELINE_MESSAGE.format(path=PREPARED), pytrace=False)
    mnist_dir = os.environ.get("DOODLE_MNIST_DIR") or str(RAW)
    if not all((Path(mnist_dir) / name).is_file() for files in SOURCES.values() for name in files[:2]):
        pytest.fail(MISSING_PIPELINE_MESSAGE.format(path=mnist_dir), pytrace=False)
    prepared = tmp_path / "prepared"
    env = {
        **os.environ,
        "DOODLE_MNIST_DIR": mnist_dir,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_CONF_DIR": str(ROOT / "conf" / "spark"),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / "01_prepare.ipynb"),
            str(tmp_path / "out.ipynb"),
            "--cwd",
            str(tmp_path),
            "-p",
            "params_file",
            str(ROOT / "params.yaml"),
            "-y",
            f"overrides: {{spark_master: '{cluster.master_url}', spark_driver_memory: 2g}}",
            "-p",
            "raw_dir",
            str(tmp_path / "raw"),
            "-p",
            "prepared_dir",
            str(prepared),
            "-p",
            "metrics_path",
            str(tmp_path / "prepare.json"),
            "-p",
            "samples_figure",
            str(tmp_path / "samples.png"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    # The master launched this application on its worker.
    assert "doodle-prepare" in cluster.application_names()
    executors_log = list((cluster.log_dir / "work").rglob("stderr"))
    assert executors_log, "no executor was launched on the worker"
    # The executors start with conf/spark/spark-defaults.conf's flags (their launch command heads the log).
    launch = executors_log[0].read_text(errors="replace").split("=" * 10)[0]
    assert "-XX:TieredStopAtLevel=1" in launch and "-XX:+UseSerialGC" in launch, launch[:2000]

    assert parquet_files(prepared) == parquet_files(PREPARED)
    for relative in parquet_files(PREPARED):
        assert filecmp.cmp(prepared / relative, PREPARED / relative, shallow=False), f"{relative} differs"


def test_score_command_on_the_cluster(cluster, spark, tmp_path):
    folder = tmp_path / "drawings"
    folder.mkdir()
    drawings = synthetic_drawings(40, seed=5)
    for name, data in drawings:
        (folder / name).write_bytes(data)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    model = model_io.save_model(
        tmp_path / "model", mlp.init_params([784, 16, 10], seed=1), normalization={"mean": 0.13, "std": 0.31}
    )
    output = tmp_path / "cluster.parquet"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "doodle.reading.score",
            str(folder),
            str(output),
            "--model",
            str(tmp_path / "model"),
            "--master",
            cluster.master_url,
            "--driver-memory",
            "1g",
        ],
        cwd=ROOT,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "doodle-score" in cluster.application_names()
    on_cluster = pq.read_table(output).sort_by("id")
    # The same images scored by the suite's local[1] session (the command's code path on local[*]
    # is tested in test_score.py).
    local = score.score_images(score.read_images(spark, folder), model).toArrow().sort_by("id")
    assert on_cluster.num_rows == 41
    assert on_cluster.column("id").to_pylist() == local.column("id").to_pylist()
    assert on_cluster.column("digit").to_pylist() == local.column("digit").to_pylist()
    assert on_cluster.column("error").to_pylist().count(None) == 40


def test_daemons_stop_when_the_body_fails(tmp_path):
    with pytest.raises(RuntimeError, match="planned failure"):
        with standalone_cluster(tmp_path, cores=1, memory="512m") as short_lived:
            assert short_lived.state()["aliveworkers"] == 1
            raise RuntimeError("planned failure")
    with pytest.raises(OSError):
        short_lived.state()
