"""Spark side of the `feedback` stage: the store's snapshot -> validated, de-duplicated rows
-> a deterministic train/holdout split. DataFrame in, DataFrame out; the notebook owns the
session. Executors decode the images with NumPy over Arrow batches (`decode_images`), so on a
cluster the `doodle` package must be importable there, as for `doodle.sources.spark_prep`.

Rules:

- **valid**: the image is 784 finite float32 values in [0, 1] with some ink (a blank image
  teaches nothing), and both digits are 0..9. Invalid rows are counted by reason and dropped.
- **duplicates**: rows with the same drawing (the same 784 bytes after rounding to the byte
  scale) are one example; the newest row wins, so a later correction of the same drawing
  overrides an earlier one.
- **split**: ``xxhash64(seed, drawing)`` decides, so a row's side depends only on its own
  drawing: new feedback never moves an old row between train and holdout, and a drawing
  submitted twice cannot sit on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from doodle.constants import N_PIXELS
from doodle.loop.feedback_data import SNAPSHOT_SCHEMA, SPLIT_SCHEMA

IMAGE_BYTES = 4 * N_PIXELS
# Below this total ink (sum of [0, 1] pixels, about two pixels' worth) an image is blank.
MIN_INK = 2.0
# Buckets of the hash split: a row is holdout when its bucket < holdout_fraction * BUCKETS.
BUCKETS = 10_000
INVALID_REASONS = ("image size", "not finite", "out of range", "blank", "digit out of range")

DECODED_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), nullable=False),
        T.StructField("invalid_reason", T.StringType()),
        T.StructField("pixels", T.BinaryType()),
    ]
)


def snapshot_dataframe(spark: SparkSession, table: pa.Table) -> DataFrame:
    """The snapshot table (`doodle.loop.feedback_data.SNAPSHOT_SCHEMA`) as a DataFrame, drawings'
    PNGs left out (the gallery reads them on the driver); strokes (JSON text) travel with their row."""
    columns = [name for name in SNAPSHOT_SCHEMA.names if name != "drawing_png"]
    if "strokes" not in table.column_names:  # a snapshot taken before corrections kept their strokes
        table = table.append_column("strokes", pa.nulls(table.num_rows, pa.string()))
    selected = table.select(columns)
    if selected.num_rows == 0:
        schema = T.StructType(
            [
                T.StructField("id", T.LongType(), False),
                T.StructField("created_at", T.DoubleType()),
                T.StructField("source", T.StringType()),
                T.StructField("predicted_digit", T.LongType()),
                T.StructField("actual_digit", T.LongType()),
                T.StructField("model_version", T.StringType()),
                T.StructField("image", T.BinaryType()),
                T.StructField("strokes", T.StringType()),
            ]
        )
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(selected)


def decode_images(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Arrow batches with ``id`` and ``image`` (float32 bytes) -> ``id``, the first reason the
    image is unusable (null when it is fine) and its 784 pixels on the byte scale."""
    for batch in batches:
        ids = batch.column("id")
        reasons, pixels = [], []
        for blob in batch.column("image").to_pylist():
            if blob is None or len(blob) != IMAGE_BYTES:
                reasons.append("image size")
                pixels.append(None)
                continue
            image = np.frombuffer(blob, dtype=np.float32)
            if not np.isfinite(image).all():
                reason = "not finite"
            elif image.min() < 0.0 or image.max() > 1.0:
                reason = "out of range"
            elif float(image.sum(dtype=np.float64)) < MIN_INK:
                reason = "blank"
            else:
                reason = None
            reasons.append(reason)
            pixels.append(None if reason else np.rint(image * 255.0).astype(np.uint8).tobytes())
        yield pa.record_batch(
            {
                "id": ids,
                "invalid_reason": pa.array(reasons, pa.string()),
                "pixels": pa.array(pixels, pa.binary()),
            }
        )


def with_validity(df: DataFrame) -> DataFrame:
    """Snapshot DataFrame -> the same rows with ``pixels`` (784 bytes, or null) and
    ``invalid_reason`` (null for a usable row)."""
    decoded = df.select("id", "image").mapInArrow(decode_images, DECODED_SCHEMA)
    digit_ok = F.col("actual_digit").between(0, 9) & F.col("predicted_digit").between(0, 9)
    return (
        df.drop("image")
        .join(decoded, on="id", how="inner")
        .withColumn(
            "invalid_reason",
            F.when(F.col("invalid_reason").isNotNull(), F.col("invalid_reason"))
            .when(
                ~digit_ok | F.col("actual_digit").isNull() | F.col("predicted_digit").isNull(),
                F.lit("digit out of range"),
            )
            .otherwise(F.lit(None).cast("string")),
        )
    )


def invalid_counts(df: DataFrame) -> dict[str, int]:
    """{reason: rows} over `INVALID_REASONS` (zeros included) of a `with_validity` DataFrame."""
    counts = dict(df.where(F.col("invalid_reason").isNotNull()).groupBy("invalid_reason").count().collect())
    return {reason: int(counts.get(reason, 0)) for reason in INVALID_REASONS}


def deduplicate(df: DataFrame) -> DataFrame:
    """Valid rows with the same pixels -> the newest one (highest id)."""
    newest_first = Window.partitionBy("pixels").orderBy(F.col("id").desc())
    return (
        df.where(F.col("invalid_reason").isNull())
        .withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def split(df: DataFrame, holdout_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """De-duplicated rows -> (train, holdout) with `doodle.loop.feedback_data.SPLIT_SCHEMA`'s
    columns; a row is holdout when ``xxhash64(seed, pixels) mod BUCKETS < holdout_fraction * BUCKETS``."""
    if not 0.0 <= holdout_fraction <= 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1], got {holdout_fraction}")
    bucket = F.pmod(F.xxhash64(F.lit(int(seed)), F.col("pixels")), F.lit(BUCKETS))
    shaped = df.select(
        F.col("id").alias("index"),
        F.col("actual_digit").cast("int").alias("label"),
        "pixels",
        F.col("predicted_digit").cast("int").alias("predicted"),
        "model_version",
        "source",
        "created_at",
        "strokes",
        (bucket < F.lit(int(round(holdout_fraction * BUCKETS)))).alias("_holdout"),
    )
    columns = SPLIT_SCHEMA.names
    return shaped.where(~F.col("_holdout")).select(*columns), shaped.where(F.col("_holdout")).select(*columns)


def to_table(df: DataFrame) -> pa.Table:
    """A split DataFrame collected on the driver (feedback is small) as a `SPLIT_SCHEMA` table
    sorted by row id, ready for `doodle.loop.feedback_data.write_table`."""
    return _split_table(df.toArrow() if df.take(1) else SPLIT_SCHEMA.empty_table())


def _split_table(table: pa.Table) -> pa.Table:
    return table.select(SPLIT_SCHEMA.names).cast(SPLIT_SCHEMA).sort_by("index")


def empty_result() -> tuple[dict[str, int], dict[str, pa.Table]]:
    """What `invalid_counts` and `to_table` of both splits give for a snapshot without rows, with
    no Spark session: every reason at zero, and empty train and holdout tables. A fresh clone's
    store has no rows, and there the JVM's start was most of the feedback stage."""
    empty = _split_table(SPLIT_SCHEMA.empty_table())
    return {reason: 0 for reason in INVALID_REASONS}, {"train": empty, "holdout": empty}
