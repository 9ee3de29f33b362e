"""Fixtures shared across the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from doodle.idx import write_idx
from doodle.mnist import SOURCES
from support.synthetic import synthetic_mnist

# Small stand-ins for the MNIST source files: same names, headers and layout, few images.
SYNTHETIC_COUNTS = {"train": 400, "test": 120}


@pytest.fixture(scope="session")
def synthetic_raw_dir(tmp_path_factory) -> Path:
    """A folder holding the four MNIST file names as gzipped IDX files of synthetic data
    (SYNTHETIC_COUNTS images per source split); read-only by convention."""
    folder = tmp_path_factory.mktemp("synthetic_raw")
    for seed, (split, (images_name, labels_name, _)) in enumerate(SOURCES.items()):
        images, labels = synthetic_mnist(SYNTHETIC_COUNTS[split], seed)
        write_idx(folder / images_name, images)
        write_idx(folder / labels_name, labels)
    return folder


@pytest.fixture(scope="session")
def spark():
    """One local[1] SparkSession for the whole test session (start-up takes ~10 s)."""
    from doodle.spark_prep import spark_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = spark_session("local[1]", "1g", app_name="doodle-tests")
    # Test data are tiny: fewer shuffle tasks make every aggregation quicker.
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()
