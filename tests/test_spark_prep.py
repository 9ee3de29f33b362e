"""The Spark side of `prepare`, through a real local[1] session on small synthetic IDX data."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pyspark.sql import functions as F

from doodle.sources import mnist, spark_prep
from doodle.sources.data import load_split
from doodle.sources.spark_prep import DataValidationError

SEED = 20261123


@pytest.fixture(scope="module")
def source(synthetic_raw_dir):
    """(images (400, 28, 28) uint8, labels (400,) uint8) read from the synthetic IDX files."""
    return mnist.load_source("train", synthetic_raw_dir)


@pytest.fixture(scope="module")
def train_df(spark, source):
    return spark_prep.arrays_to_dataframe(spark, *source).cache()


def test_the_session_jvm_starts_with_the_projects_flags(spark):
    """conf/spark/spark-defaults.conf reaches the JVM: the quick compiler and the serial collector."""
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert "-XX:TieredStopAtLevel=1" in arguments and "-XX:+UseSerialGC" in arguments, arguments


def indices(df) -> list[int]:
    return sorted(row["index"] for row in df.select("index").collect())


def test_dataframe_has_contract_schema_and_bytes(train_df, source):
    images, labels = source
    assert [(f.name, f.dataType.simpleString()) for f in train_df.schema.fields] == [
        ("index", "bigint"),
        ("label", "int"),
        ("pixels", "binary"),
    ]
    rows = train_df.where(F.col("index").isin(0, 399)).orderBy("index").collect()
    assert [row["index"] for row in rows] == [0, 399]
    assert bytes(rows[1]["pixels"]) == images[399].tobytes()
    assert rows[1]["label"] == labels[399]


def test_valid_data_passes_every_check(train_df):
    checks = spark_prep.validate(train_df, expected_count=400)
    assert [check["ok"] for check in checks] == [True] * 5
    spark_prep.require_valid("train", checks)


def test_validation_catches_bad_labels_and_wrong_count(spark, source):
    images, labels = source
    bad_labels = labels.astype(np.int64)
    bad_labels[[3, 7]] = [10, -1]
    checks = spark_prep.validate(
        spark_prep.arrays_to_dataframe(spark, images, bad_labels), expected_count=60_000
    )
    failed = {check["check"]: check["actual"] for check in checks if not check["ok"]}
    assert failed == {"row count": 400, "labels outside 0..9": 2}
    with pytest.raises(DataValidationError) as caught:
        spark_prep.require_valid("train", checks)
    assert str(caught.value) == spark_prep.VALIDATION_FAILED_MESSAGE.format(
        name="train",
        failures="row count: expected 60000, found 400; labels outside 0..9: expected 0, found 2",
    )


def test_validation_catches_short_pixels_and_duplicate_indices(spark, train_df):
    damaged = train_df.withColumn(
        "pixels", F.when(F.col("index") == 5, F.substring("pixels", 1, 783)).otherwise(F.col("pixels"))
    ).withColumn("index", F.when(F.col("index") == 6, F.lit(7)).otherwise(F.col("index")))
    failed = {c["check"]: c["actual"] for c in spark_prep.validate(damaged, 400) if not c["ok"]}
    assert failed == {"distinct index values": 399, "rows whose pixels are not 784 bytes": 1}


def test_out_of_range_pixels_and_mismatched_shapes_are_refused(spark):
    with pytest.raises(
        DataValidationError, match="pixel values out of range: expected 0..255, found -1..256"
    ):
        spark_prep.arrays_to_dataframe(spark, np.array([[0] * 783 + [256], [-1] + [0] * 783]), np.zeros(2))
    with pytest.raises(DataValidationError, match="images must be"):
        spark_prep.arrays_to_dataframe(spark, np.zeros((3, 784), np.uint8), np.zeros(2))


def test_class_histogram_matches_numpy(train_df, source):
    assert spark_prep.class_histogram(train_df) == np.bincount(source[1], minlength=10).tolist()


def test_stratified_quotas_are_proportional_and_exact():
    histogram = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    quotas = spark_prep.stratified_quotas(histogram, 5000)
    assert sum(quotas) == 5000
    assert all(abs(q - h * 5000 / 60000) < 1 for q, h in zip(quotas, histogram))
    with pytest.raises(
        DataValidationError, match="validation_size must be between 1 and 60000 - 1, got 60000"
    ):
        spark_prep.stratified_quotas(histogram, 60000)


def test_split_is_disjoint_complete_stratified_and_repeatable(train_df, source):
    train, validation = spark_prep.split_validation(train_df, 60, SEED)
    train_ids, validation_ids = indices(train), indices(validation)
    assert len(validation_ids) == 60 and not set(train_ids) & set(validation_ids)
    assert sorted(train_ids + validation_ids) == list(range(400))
    histogram = np.bincount(source[1], minlength=10)
    assert spark_prep.class_histogram(validation) == spark_prep.stratified_quotas(histogram, 60)
    assert indices(spark_prep.split_validation(train_df, 60, SEED)[1]) == validation_ids


def test_split_does_not_depend_on_partitioning_or_row_order(train_df):
    reference = indices(spark_prep.split_validation(train_df.repartition(1), 60, SEED)[1])
    shuffled = train_df.orderBy(F.rand(3)).repartition(7)
    assert indices(spark_prep.split_validation(shuffled, 60, SEED)[1]) == reference


def test_split_changes_with_the_seed(train_df):
    first = indices(spark_prep.split_validation(train_df, 60, SEED)[1])
    assert indices(spark_prep.split_validation(train_df, 60, SEED + 1)[1]) != first


def test_pixel_statistics_match_numpy(train_df, source):
    x = source[0].reshape(len(source[0]), -1) / 255.0
    stats = spark_prep.pixel_statistics(train_df)
    expected = {
        "pixel_mean": x.mean(),
        "pixel_std": x.std(),
        "image_mean_mean": x.mean(axis=1).mean(),
        "image_mean_std": x.mean(axis=1).std(),
        "ink_fraction_mean": (x > 0.5).mean(axis=1).mean(),
        "ink_fraction_std": (x > 0.5).mean(axis=1).std(),
    }
    assert stats == pytest.approx(expected, rel=1e-9)


def test_parquet_round_trip_through_load_split(tmp_path, train_df, source):
    train, validation = spark_prep.split_validation(train_df, 60, SEED)
    spark_prep.write_parquet(train, (tmp_path / "train.parquet").resolve().as_uri())
    spark_prep.write_parquet(validation, (tmp_path / "validation.parquet").resolve().as_uri())
    images, labels = source
    read_train, read_train_labels = load_split("train", tmp_path)
    read_validation, _ = load_split("validation", tmp_path)
    train_ids = np.array(indices(train))
    np.testing.assert_array_equal(read_train, images.reshape(400, 784)[train_ids])
    np.testing.assert_array_equal(read_train_labels, labels[train_ids].astype(np.int64))
    assert read_validation.shape == (60, 784)


def test_parquet_output_is_byte_identical_across_runs_and_partitionings(tmp_path, train_df):
    def written(name, df):
        folder = tmp_path / name
        spark_prep.write_parquet(spark_prep.split_validation(df, 60, SEED)[0], folder.resolve().as_uri())
        return {path.name: path.read_bytes() for path in folder.iterdir()}

    first = written("first", train_df)
    assert list(first) == ["part-00000.parquet"]
    assert written("second", train_df.orderBy(F.rand(5)).repartition(5)) == first


SPLIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from doodle.sources import mnist, spark_prep
    spark = spark_prep.spark_session(sys.argv[1], "1g", app_name="doodle-split-check")
    df = spark_prep.arrays_to_dataframe(spark, *mnist.load_source("train", sys.argv[2]))
    train, validation = spark_prep.split_validation(df, 60, int(sys.argv[3]))
    spark_prep.write_parquet(train, Path(sys.argv[4]).resolve().as_uri())
    print(json.dumps(sorted(r["index"] for r in validation.select("index").collect())))
    spark.stop()
    """
)


@pytest.mark.slow
def test_split_and_parquet_bytes_are_identical_under_another_master(tmp_path, train_df, synthetic_raw_dir):
    """local[2] in a separate JVM against this session's local[1]."""
    train, validation = spark_prep.split_validation(train_df, 60, SEED)
    spark_prep.write_parquet(train, (tmp_path / "here").resolve().as_uri())
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    command = [
        sys.executable,
        "-c",
        SPLIT_SCRIPT,
        "local[2]",
        str(synthetic_raw_dir),
        str(SEED),
        str(tmp_path / "there"),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300, check=True
    )
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == indices(validation)
    assert (tmp_path / "there" / "part-00000.parquet").read_bytes() == (
        tmp_path / "here" / "part-00000.parquet"
    ).read_bytes()
