"""Spark side of the `pendigits` stage: parsed pen trajectories -> DataFrame (sample_id, writer,
label, writer_sample, strokes), validation, and every digit drawn on the pad at the stage's pen
widths and read by `canvas_to_input` on the executors (`render_inputs`). DataFrame in, DataFrame
out: the notebook owns the session.

Executors run `_render_batches` (a mapInArrow function of this module), so on a cluster the
`doodle` package must be importable there, as for the `prepare` stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from doodle.constants import N_CLASSES, N_PIXELS
from doodle.sources.pendigits import BOX, CLASS_COUNTS, WRITER_COUNT, PenDigit, digit_input

STROKES_TYPE = T.ArrayType(T.ArrayType(T.ArrayType(T.IntegerType(), False), False), False)
SCHEMA = T.StructType(
    [
        T.StructField("sample_id", T.LongType(), nullable=False),
        T.StructField("writer", T.IntegerType(), nullable=False),
        T.StructField("label", T.IntegerType(), nullable=False),
        T.StructField("writer_sample", T.IntegerType(), nullable=False),
        T.StructField("strokes", STROKES_TYPE, nullable=False),
    ]
)
RENDERED_SCHEMA = T.StructType(
    [
        T.StructField("sample_id", T.LongType(), nullable=False),
        T.StructField("pen_width", T.IntegerType(), nullable=False),
        T.StructField("writer", T.IntegerType(), nullable=False),
        T.StructField("label", T.IntegerType(), nullable=False),
        T.StructField("pixels", T.BinaryType(), nullable=False),
    ]
)
ARROW_STROKES = pa.list_(pa.list_(pa.list_(pa.int32())))


def digits_to_dataframe(spark: SparkSession, digits: Sequence[PenDigit]) -> DataFrame:
    """Parsed digits -> one row each; the strokes travel inside the plan as nested lists."""
    table = pa.table(
        {
            "sample_id": pa.array([digit.sample_id for digit in digits], pa.int64()),
            "writer": pa.array([digit.writer for digit in digits], pa.int32()),
            "label": pa.array([digit.label for digit in digits], pa.int32()),
            "writer_sample": pa.array([digit.writer_sample for digit in digits], pa.int32()),
            "strokes": pa.array(
                [[stroke.tolist() for stroke in digit.strokes] for digit in digits], ARROW_STROKES
            ),
        }
    )
    return spark.createDataFrame(table, schema=SCHEMA)


def validate(
    df: DataFrame, class_counts: Sequence[int] = CLASS_COUNTS, writers: int = WRITER_COUNT
) -> list[dict]:
    """One pass -> checks {check, expected, actual, ok}: rows, distinct sample ids, writers,
    digits per class as the names file gives them, samples without strokes, strokes without
    points, points outside the 500 x 500 box, points that are not (x, y) pairs."""
    points = F.flatten(F.col("strokes"))
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("sample_id").alias("distinct_ids"),
        F.countDistinct("writer").alias("writers"),
        F.sum(F.when(F.size("strokes") == 0, 1).otherwise(0)).alias("no_strokes"),
        F.sum(F.size(F.filter("strokes", lambda stroke: F.size(stroke) == 0))).alias("empty_strokes"),
        F.sum(F.size(F.filter(points, lambda point: F.size(point) != 2))).alias("not_pairs"),
        F.sum(
            F.size(F.filter(points, lambda point: F.exists(point, lambda value: (value < 0) | (value > BOX))))
        ).alias("outside"),
    ).first()
    histogram = dict(df.groupBy("label").count().collect())
    counts = [int(histogram.get(label, 0)) for label in range(N_CLASSES)]
    rows = int(row["rows"])
    checks = [
        ("row count", sum(class_counts), rows),
        ("distinct sample ids", rows, int(row["distinct_ids"])),
        ("writers", writers, int(row["writers"])),
        ("digits per class 0..9", list(class_counts), counts),
        ("samples without strokes", 0, int(row["no_strokes"] or 0)),
        ("strokes without points", 0, int(row["empty_strokes"] or 0)),
        ("points that are not (x, y)", 0, int(row["not_pairs"] or 0)),
        (f"points outside the {BOX} x {BOX} box", 0, int(row["outside"] or 0)),
    ]
    return [
        {"check": name, "expected": expected, "actual": actual, "ok": expected == actual}
        for name, expected, actual in checks
    ]


def _render_batches(pen_widths: Sequence[int]):
    def render(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = batch.to_pylist()
            if not rows:
                continue
            ids, pens, writers, labels, pixels = [], [], [], [], []
            for row in rows:
                strokes = [np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in row["strokes"]]
                for pen in pen_widths:
                    ids.append(row["sample_id"])
                    pens.append(int(pen))
                    writers.append(row["writer"])
                    labels.append(row["label"])
                    pixels.append(digit_input(strokes, pen).tobytes())
            yield pa.record_batch(
                {
                    "sample_id": pa.array(ids, pa.int64()),
                    "pen_width": pa.array(pens, pa.int32()),
                    "writer": pa.array(writers, pa.int32()),
                    "label": pa.array(labels, pa.int32()),
                    "pixels": pa.array(pixels, pa.binary()),
                }
            )

    return render


def render_inputs(df: DataFrame, pen_widths: Sequence[int]) -> DataFrame:
    """Every digit drawn on the pad at each of ``pen_widths`` (px) and read as the app reads a
    drawing: rows sample_id, pen_width, writer, label, pixels (784 bytes, the model's 28 x 28
    input on MNIST's byte scale), computed on the executors."""
    if not pen_widths or any(int(pen) < 1 for pen in pen_widths):
        raise ValueError(f"pen widths must be whole pixels >= 1, got {list(pen_widths)}")
    widths = [int(pen) for pen in pen_widths]
    return df.select("sample_id", "writer", "label", "strokes").mapInArrow(
        _render_batches(widths), RENDERED_SCHEMA
    )


def pixels_length_check(df: DataFrame) -> dict:
    """The rendered rows' pixels are all 784 bytes long."""
    wrong = df.where(F.length("pixels") != N_PIXELS).count()
    return {
        "check": f"rendered inputs that are not {N_PIXELS} bytes",
        "expected": 0,
        "actual": int(wrong),
        "ok": wrong == 0,
    }
