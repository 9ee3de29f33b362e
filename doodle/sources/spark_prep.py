"""Spark side of the `prepare` stage: NumPy arrays -> DataFrame (index, label, pixels),
validation, class histogram, a deterministic stratified validation split, pixel statistics,
Parquet output. DataFrame in, DataFrame (or plain numbers) out: the notebook owns the session.

Executors run `pixel_summaries` (a mapInArrow function of this module), so on a cluster the
`doodle` package must be importable there (installed, or shipped with `addPyFile`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from doodle.constants import BINARY_INK_BYTE, N_CLASSES
from doodle.constants import N_PIXELS as PIXELS_PER_IMAGE
from doodle.paths import ROOT
from doodle.sources.data import binary_matrix

EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}

SCHEMA = T.StructType(
    [
        T.StructField("index", T.LongType(), nullable=False),
        T.StructField("label", T.IntegerType(), nullable=False),
        T.StructField("pixels", T.BinaryType(), nullable=False),
    ]
)
SUMMARY_SCHEMA = T.StructType(
    [
        T.StructField("index", T.LongType(), nullable=False),
        T.StructField("label", T.IntegerType(), nullable=False),
        T.StructField("pixel_sum", T.LongType(), nullable=False),
        T.StructField("pixel_sum_squares", T.LongType(), nullable=False),
        T.StructField("ink_pixels", T.LongType(), nullable=False),
    ]
)

ARRAY_SHAPE_MESSAGE = "images must be (N, 28, 28) or (N, 784) and labels (N,); got {images} and {labels}"
ARRAY_RANGE_MESSAGE = "{what} out of range: expected {low}..{high}, found {found_low}..{found_high}"
VALIDATION_FAILED_MESSAGE = "{name}: validation failed: {failures}"
SPLIT_SIZE_MESSAGE = "validation_size must be between 1 and {total} - 1, got {size}"


class DataValidationError(ValueError):
    """A split does not satisfy the MNIST contract (counts, pixel length, labels, indices)."""


def spark_session(master: str, driver_memory: str, app_name: str = "doodle-prepare") -> SparkSession:
    """Build (or reuse) the session: quiet console, UTC, few shuffle partitions, Arrow on.

    spark.driver.memory only takes effect before the JVM starts, hence it is set on the
    builder before getOrCreate(); MNIST does not fit the 1g default. The JVMs' flags come from
    the project's conf/spark/spark-defaults.conf (the quick compiler and the serial collector).
    """
    if master.startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
        # Python workers default to `python3` on PATH, which may lack numpy and pyarrow; on
        # a local master they can be this very interpreter. PySpark reads the variable
        # when the context starts.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    # The project's log4j2.properties keeps the JVM's console to warnings, and its
    # spark-defaults.conf sets the JVMs' flags; both are read at JVM launch.
    os.environ.setdefault("SPARK_CONF_DIR", str(ROOT / "conf" / "spark"))
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def arrays_to_dataframe(spark: SparkSession, images: np.ndarray, labels: np.ndarray) -> DataFrame:
    """images (N, 28, 28) or (N, 784) integer 0..255, labels (N,) integer -> DataFrame with
    columns index long (row position), label int, pixels binary (784 bytes, row-major).

    The arrays travel from the driver to the executors inside the plan, so no file path has
    to be visible on the cluster. Pixel values outside 0..255 are refused here, since a
    byte cannot hold them; labels are checked later by `validate` like any other data.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim not in (2, 3) or labels.ndim != 1 or len(images) != len(labels):
        raise DataValidationError(ARRAY_SHAPE_MESSAGE.format(images=images.shape, labels=labels.shape))
    flat = images.reshape(len(images), -1)
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise DataValidationError(
            ARRAY_RANGE_MESSAGE.format(
                what="pixel values", low=0, high=255, found_low=flat.min(), found_high=flat.max()
            )
        )
    if labels.size and (labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max):
        raise DataValidationError(
            ARRAY_RANGE_MESSAGE.format(
                what="labels",
                low="int32 min",
                high="int32 max",
                found_low=labels.min(),
                found_high=labels.max(),
            )
        )
    flat = np.ascontiguousarray(flat, dtype=np.uint8)
    width = flat.shape[1]
    offsets = pa.py_buffer((np.arange(len(flat) + 1, dtype=np.int32) * width).tobytes())
    pixels = pa.Array.from_buffers(pa.binary(), len(flat), [None, offsets, pa.py_buffer(flat.tobytes())])
    table = pa.table(
        {
            "index": pa.array(np.arange(len(flat), dtype=np.int64)),
            "label": pa.array(labels.astype(np.int32)),
            "pixels": pixels,
        }
    )
    return spark.createDataFrame(table, schema=SCHEMA)


def validate(df: DataFrame, expected_count: int | None) -> list[dict]:
    """One pass over the split -> list of checks {check, expected, actual, ok}: row count,
    distinct indices, null values, pixels of 784 bytes, labels 0..9. Bytes cannot leave
    0..255, so pixel range is guaranteed by the binary column itself."""
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("index").alias("distinct_index"),
        F.sum(
            F.when(F.col("index").isNull() | F.col("label").isNull() | F.col("pixels").isNull(), 1).otherwise(
                0
            )
        ).alias("nulls"),
        F.sum(F.when(F.length("pixels") != PIXELS_PER_IMAGE, 1).otherwise(0)).alias("bad_pixel_length"),
        F.sum(F.when((F.col("label") < 0) | (F.col("label") >= N_CLASSES), 1).otherwise(0)).alias(
            "bad_label"
        ),
    ).first()
    rows = int(row["rows"])
    checks = [
        ("row count", expected_count if expected_count is not None else rows, rows),
        ("distinct index values", rows, int(row["distinct_index"])),
        ("rows with null values", 0, int(row["nulls"] or 0)),
        (f"rows whose pixels are not {PIXELS_PER_IMAGE} bytes", 0, int(row["bad_pixel_length"] or 0)),
        (f"labels outside 0..{N_CLASSES - 1}", 0, int(row["bad_label"] or 0)),
    ]
    return [
        {"check": name, "expected": expected, "actual": actual, "ok": expected == actual}
        for name, expected, actual in checks
    ]


def require_valid(name: str, checks: Sequence[Mapping]) -> None:
    """Raise DataValidationError listing every failed check of `validate`."""
    failures = [f"{c['check']}: expected {c['expected']}, found {c['actual']}" for c in checks if not c["ok"]]
    if failures:
        raise DataValidationError(VALIDATION_FAILED_MESSAGE.format(name=name, failures="; ".join(failures)))


def class_histogram(df: DataFrame) -> list[int]:
    """Rows per label -> [10 ints], label 0 first (labels outside 0..9 are not counted)."""
    counts = dict(df.groupBy("label").count().collect())
    return [int(counts.get(label, 0)) for label in range(N_CLASSES)]


def stratified_quotas(histogram: Sequence[int], size: int) -> list[int]:
    """Per-class validation counts summing to `size`, proportional to `histogram`
    (largest remainder; ties go to the lower label, so the result is deterministic)."""
    total = int(sum(histogram))
    if not 0 < size < total:
        raise DataValidationError(SPLIT_SIZE_MESSAGE.format(total=total, size=size))
    exact = [count * size / total for count in histogram]
    quotas = [int(np.floor(value)) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda label: (-(exact[label] - quotas[label]), label))
    for label in by_remainder[: size - sum(quotas)]:
        quotas[label] += 1
    return quotas


def split_validation(df: DataFrame, validation_size: int, seed: int) -> tuple[DataFrame, DataFrame]:
    """Stratified split of a source split -> (train, validation) DataFrames with the input's
    columns; validation has `validation_size` rows, classes in proportion.

    Each row's rank within its class comes from xxhash64(seed, index), a pure function of
    the row, with the index breaking ties: the split is the same however the data are
    partitioned (local[1], local[*] or a cluster) and on every run with the same seed.
    """
    quotas = stratified_quotas(class_histogram(df), validation_size)
    quota_column = F.element_at(F.array(*[F.lit(q) for q in quotas]), F.col("label") + 1)
    ranked = df.withColumn("_key", F.xxhash64(F.lit(int(seed)), F.col("index"))).withColumn(
        "_rank", F.row_number().over(Window.partitionBy("label").orderBy("_key", "index"))
    )
    ranked = ranked.withColumn("_is_validation", F.col("_rank") <= quota_column).drop("_key", "_rank")
    ranked = ranked.persist()
    columns = df.columns
    validation = ranked.where(F.col("_is_validation")).select(*columns)
    train = ranked.where(~F.col("_is_validation")).select(*columns)
    return train, validation


def _summaries(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        pixels = batch.column("pixels")
        n = len(pixels)
        if n == 0:
            continue
        matrix = binary_matrix(pixels, PIXELS_PER_IMAGE, source="pixels").astype(np.int64)
        yield pa.record_batch(
            {
                "index": batch.column("index"),
                "label": batch.column("label"),
                "pixel_sum": pa.array(matrix.sum(axis=1)),
                "pixel_sum_squares": pa.array((matrix * matrix).sum(axis=1)),
                "ink_pixels": pa.array((matrix >= BINARY_INK_BYTE).sum(axis=1)),
            }
        )


def pixel_summaries(df: DataFrame) -> DataFrame:
    """Split (validated: 784-byte pixels) -> DataFrame index, label, pixel_sum,
    pixel_sum_squares, ink_pixels (per image, on the 0..255 byte scale), computed on the
    executors with NumPy over Arrow batches."""
    return df.select("index", "label", "pixels").mapInArrow(_summaries, SUMMARY_SCHEMA)


def pixel_statistics(df: DataFrame) -> dict[str, float]:
    """Split -> reference statistics on the [0,1] scale (population standard deviations):
    pixel_mean, pixel_std over all pixels; image_mean_mean, image_mean_std over images of
    each image's mean intensity; ink_fraction_mean, ink_fraction_std of the fraction of
    pixels > 0.5 per image."""
    scale = 255.0 * PIXELS_PER_IMAGE
    summaries = pixel_summaries(df)
    row = summaries.agg(
        F.count(F.lit(1)).alias("images"),
        F.sum("pixel_sum").alias("sum"),
        F.sum("pixel_sum_squares").alias("sum_squares"),
        F.avg(F.col("pixel_sum") / F.lit(scale)).alias("image_mean_mean"),
        F.stddev_pop(F.col("pixel_sum") / F.lit(scale)).alias("image_mean_std"),
        F.avg(F.col("ink_pixels") / F.lit(float(PIXELS_PER_IMAGE))).alias("ink_fraction_mean"),
        F.stddev_pop(F.col("ink_pixels") / F.lit(float(PIXELS_PER_IMAGE))).alias("ink_fraction_std"),
    ).first()
    n_pixels = int(row["images"]) * PIXELS_PER_IMAGE
    # Exact integer sums, so the variance is not lost to cancellation in floating point.
    mean = int(row["sum"]) / n_pixels / 255.0
    mean_square = int(row["sum_squares"]) / n_pixels / 255.0**2
    return {
        "pixel_mean": mean,
        "pixel_std": float(np.sqrt(max(mean_square - mean * mean, 0.0))),
        "image_mean_mean": float(row["image_mean_mean"]),
        "image_mean_std": float(row["image_mean_std"]),
        "ink_fraction_mean": float(row["ink_fraction_mean"]),
        "ink_fraction_std": float(row["ink_fraction_std"]),
    }


def write_parquet(df: DataFrame, uri: str, order_by: Sequence[str] = ("index",)) -> None:
    """Write a split as a Parquet directory holding one file, rows sorted by ``order_by``.

    For file: URIs the directory is then made canonical (see canonicalize_parquet_directory),
    so an unchanged split gives unchanged bytes, DVC sees an unchanged output, and later
    stages stay cached. Other filesystems keep Spark's output as written.
    """
    df.repartition(1).sortWithinPartitions(*order_by).write.mode("overwrite").parquet(uri)
    if uri.startswith("file:"):
        canonicalize_parquet_directory(Path(url2pathname(urlparse(uri).path)))


def canonicalize_parquet_directory(folder: Path) -> list[Path]:
    """Make Spark's output in `folder` reproducible byte for byte: drop the _SUCCESS and
    .crc files, name the parts part-00000.parquet, ... (Spark puts a random job id in the
    names) and rewrite each with pyarrow, because Spark's writer lists column encodings in
    an order that changes from one JVM to the next. Returns the part files."""
    for marker in [*folder.glob("_SUCCESS"), *folder.glob(".*.crc")]:
        marker.unlink()
    parts = []
    for number, part in enumerate(sorted(folder.glob("part-*.parquet"))):
        table = pq.read_table(part)
        target = folder / f"part-{number:05d}.parquet"
        temporary = folder / f".{target.name}.tmp"
        pq.write_table(table, temporary, compression="snappy")
        part.unlink()
        os.replace(temporary, target)
        parts.append(target)
    return parts
