"""Batch scoring: many drawings through the same preprocessing and model as the API, on Spark.

A folder of PNG/JPEG drawings or a Parquet file (a binary ``png`` column of encoded images, or
a 784-byte ``pixels`` column of 28x28 grey images) becomes one row per image: ``id``, ``digit``,
``confidence``, ``runner_up``, ``runner_up_confidence``, ``unsure`` (the API's flag: the top two
closer than the model's margin), ``model_version`` and ``error``. Every
image is decoded to the array `doodle.canvas.preprocess.decode_image` gives (a plain PNG by libpng, in
about half Pillow's time, when imagecodecs is installed) and goes through `canvas_to_input`, as
`/predict/image` does, then the NumPy model, in batches inside `mapInArrow`. An image that cannot
be read or holds no digit becomes a row with ``error`` set and no digit; it never fails the job.

`score_images` takes and returns DataFrames (the command or notebook owns the session);
`score_batch` is the same work on one Arrow batch without Spark. Command line:

    python -m doodle.reading.score INPUT OUTPUT [--model models] [--master local[*]]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from doodle.canvas.preprocess import (
    BLANK_CANVAS_MESSAGE,
    DEFAULT_MAX_PIXELS,
    alpha_holds_drawing,
    blank_inputs,
    canvas_to_input,
    decode_image,
)
from doodle.constants import N_PIXELS
from doodle.model.model_io import Model, ModelFileError, load_model

try:  # libpng through imagecodecs decodes a PNG in about half Pillow's time (the pipeline extra)
    import imagecodecs
except ImportError:  # without it every image goes through Pillow, with the same results
    imagecodecs = None

ID_COLUMNS = ("id", "path", "index")  # the first one present names the rows of a Parquet input
IMAGE_COLUMNS = ("png", "pixels")  # encoded PNG/JPEG bytes, or 784 raw bytes (28x28 grey)
IMAGE_GLOB = "*.{png,PNG,jpg,JPG,jpeg,JPEG}"
# Small files are packed into few Spark tasks: the default open cost (4 MB per file) would
# give one task per 32 drawings and spend more time scheduling than scoring.
FILE_OPEN_COST_BYTES = 8 * 1024
# Scoring costs milliseconds per kilobyte-sized image: many small tasks balance the cores
# (Spark's default 128 MB would give one task per ~90,000 drawings), at least this many per
# task slot, so the last task leaves few cores idle.
MAX_PARTITION_BYTES = 16 * 1024 * 1024
TASKS_PER_SLOT = 4

RESULT_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("digit", pa.int32()),
    pa.field("confidence", pa.float32()),
    pa.field("runner_up", pa.int32()),
    pa.field("runner_up_confidence", pa.float32()),
    pa.field("unsure", pa.bool_()),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("error", pa.string()),
]
RESULT_SCHEMA = pa.schema(RESULT_FIELDS)
RESULT_DDL = (
    "id string not null, digit int, confidence float, runner_up int, runner_up_confidence float, unsure boolean,"
    " model_version string not null, error string"
)

MISSING_INPUT_MESSAGE = "input {path} does not exist"
NO_IMAGE_COLUMN_MESSAGE = "{source}: no image column: expected one of {expected}, found {found}"
OUTPUT_EXISTS_MESSAGE = "output {path} already exists: choose another path or pass --overwrite"
NO_IMAGE_DATA_MESSAGE = "no image data"
PIXELS_LENGTH_MESSAGE = "pixels must be {expected} bytes, got {actual}"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that change no pixel of what `decode_image` returns. A PNG with any other chunk (tRNS,
# PLTE, eXIf, text chunks that may hold an EXIF or XMP orientation, ...) is left to Pillow.
PLAIN_PNG_CHUNKS = frozenset(
    {b"IHDR", b"IDAT", b"IEND", b"pHYs", b"sRGB", b"gAMA", b"cHRM", b"sBIT", b"bKGD", b"tIME"}
)
PLAIN_PNG_COLOUR_TYPES = (0, 2, 6)  # 8-bit grey, RGB, RGBA: Pillow's L, RGB and RGBA as they are


class ScoreInputError(ValueError):
    """The input cannot be scored at all (missing, no image column) or the output is taken."""


@dataclass
class Timings:
    """Seconds spent per phase of `score_batch`, added up over calls."""

    decode: float = 0.0
    preprocess: float = 0.0
    predict: float = 0.0
    arrow: float = 0.0
    images: int = 0


def image_column(names: list[str], source: str = "<input>") -> str:
    """The column holding the images: ``png`` if present, else ``pixels``."""
    for name in IMAGE_COLUMNS:
        if name in names:
            return name
    raise ScoreInputError(
        NO_IMAGE_COLUMN_MESSAGE.format(source=source, expected=list(IMAGE_COLUMNS), found=names)
    )


def to_input(value: bytes | None, kind: str, timings: Timings | None = None) -> np.ndarray:
    """One image value -> ``(784,)`` float32 in [0, 1], the model's input, as `/predict/image`
    makes it. ``kind`` is ``"png"`` (PNG/JPEG bytes, decoded by `decode_image`) or ``"pixels"``
    (784 bytes, a 28x28 grey image of either polarity). Raises ValueError (`ImageDecodeError`,
    `BlankCanvasError`, ...) with the sentence that goes into the ``error`` column."""
    image = _canvas_input(value, kind, timings).reshape(-1)
    # canvas_to_input's own blank check looks at the canvas; the API also refuses a 28x28
    # result too faint to be a digit, and so does this.
    if blank_inputs(image[None, :])[0]:
        raise ValueError(BLANK_CANVAS_MESSAGE)
    return image


def _canvas_input(value: bytes | None, kind: str, timings: Timings | None = None) -> np.ndarray:
    """`to_input` up to its last check: ``(28, 28)`` float32, not yet checked for a 28x28
    result too faint to be a digit (`score_batch` checks a whole batch at once)."""
    if value is None or len(value) == 0:
        raise ValueError(NO_IMAGE_DATA_MESSAGE)
    if timings is None:
        return canvas_to_input(_canvas(value, kind))
    started = time.perf_counter()
    canvas = _canvas(value, kind)
    decoded = time.perf_counter()
    image = canvas_to_input(canvas)
    timings.decode += decoded - started
    timings.preprocess += time.perf_counter() - decoded
    return image


def _canvas(value: bytes, kind: str) -> np.ndarray:
    """PNG/JPEG bytes decoded, or 784 bytes as the 28x28 grey image they hold. A plain PNG
    (`plain_png_size`) is decoded by libpng when imagecodecs is installed, anything else, and
    anything libpng refuses, by `decode_image`: the same array either way, and Pillow's
    verdict and sentence for every file that is not plain and sound."""
    if kind == "png":
        size = plain_png_size(value) if imagecodecs is not None else None
        if size is not None and size[0] * size[1] <= DEFAULT_MAX_PIXELS:
            try:
                pixels = imagecodecs.png_decode(value)
            except Exception:  # noqa: BLE001 - Pillow decides, and names the fault
                pixels = None
            if pixels is not None and pixels.shape[:2] == (size[1], size[0]):
                if pixels.ndim == 3 and pixels.shape[2] == 4 and alpha_holds_drawing(pixels[:, :, 3]):
                    return np.ascontiguousarray(pixels[:, :, 3])  # as decode_image(transparent_as_alpha=True)
                return pixels
        return decode_image(value, transparent_as_alpha=True)
    if len(value) != N_PIXELS:
        raise ValueError(PIXELS_LENGTH_MESSAGE.format(expected=N_PIXELS, actual=len(value)))
    return np.frombuffer(value, dtype=np.uint8).reshape(28, 28)


def plain_png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a sound, plain PNG, else None: the signature, then only
    `PLAIN_PNG_CHUNKS`, each whole and with a matching CRC, IHDR first (8 bits per sample, a
    colour type of `PLAIN_PNG_COLOUR_TYPES`, not interlaced), IEND last and nothing after it.
    Such a file decodes to the same pixels in any PNG decoder."""
    if data[:8] != PNG_SIGNATURE:
        return None
    view = memoryview(data)
    size = None
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(view[position : position + 4], "big")
        chunk = bytes(view[position + 4 : position + 8])
        end = position + 12 + length
        if chunk not in PLAIN_PNG_CHUNKS or end > len(data):
            return None
        if zlib.crc32(view[position + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            return None
        if chunk == b"IHDR":
            if position != 8 or length != 13:
                return None
            bit_depth, colour_type, compression, filtering, interlace = view[24:29]
            if (
                bit_depth != 8
                or colour_type not in PLAIN_PNG_COLOUR_TYPES
                or compression
                or filtering
                or interlace
            ):
                return None
            size = (int.from_bytes(view[16:20], "big"), int.from_bytes(view[20:24], "big"))
        elif size is None:
            return None
        if chunk == b"IEND":
            return size if end == len(data) and size[0] > 0 and size[1] > 0 else None
        position = end
    return None


def score_batch(model: Model, batch: pa.RecordBatch, timings: Timings | None = None) -> pa.RecordBatch:
    """Arrow batch with ``id`` (string) and ``png`` or ``pixels`` (binary) -> batch of
    `RESULT_SCHEMA`, one row per input row in the same order.

    Images are preprocessed one by one and classified together in one forward pass. A row whose
    image fails gets ``error`` (the reason) and nulls for the prediction columns.
    """
    kind = image_column(batch.schema.names, "batch")
    started = time.perf_counter()
    ids = batch.column("id").cast(pa.string())
    values = batch.column(kind).to_pylist()
    if timings is not None:
        timings.arrow += time.perf_counter() - started
    n = len(values)
    inputs = np.zeros((n, 28, 28), dtype=np.float32)
    errors: list[str | None] = [None] * n
    for row, value in enumerate(values):
        try:
            inputs[row] = _canvas_input(value, kind, timings)
        except Exception as exc:  # one bad image is one error row, never a failed job
            errors[row] = str(exc) or type(exc).__name__
    inputs = inputs.reshape(n, N_PIXELS)
    ok = np.array([error is None for error in errors], dtype=bool)
    # `to_input`'s last check, on the whole batch: a row that failed before is all zeros and
    # blank too, and keeps its first error.
    for row in np.flatnonzero(ok & blank_inputs(inputs)):
        errors[row] = BLANK_CANVAS_MESSAGE
        ok[row] = False
    digit = np.zeros(n, dtype=np.int32)
    confidence = np.zeros(n, dtype=np.float32)
    runner_up = np.zeros(n, dtype=np.int32)
    runner_up_confidence = np.zeros(n, dtype=np.float32)
    unsure = np.zeros(n, dtype=bool)
    started = time.perf_counter()
    if ok.any():
        probs = model.predict_proba(inputs[ok])
        answers = model.top_two(probs)  # as the API answers: runner-up, unsure margin
        rows = np.arange(len(probs))
        digit[ok] = answers.digits
        runner_up[ok] = answers.runner_ups
        confidence[ok] = probs[rows, answers.digits]
        runner_up_confidence[ok] = probs[rows, answers.runner_ups]
        unsure[ok] = answers.unsure
    if timings is not None:
        timings.predict += time.perf_counter() - started
        timings.images += n
    started = time.perf_counter()
    missing = ~ok
    result = pa.record_batch(
        [
            ids.fill_null(""),
            pa.array(digit, mask=missing),
            pa.array(confidence, mask=missing),
            pa.array(runner_up, mask=missing),
            pa.array(runner_up_confidence, mask=missing),
            pa.array(unsure, mask=missing),
            pa.array([model.version] * n, type=pa.string()),
            pa.array(errors, type=pa.string()),
        ],
        schema=RESULT_SCHEMA,
    )
    if timings is not None:
        timings.arrow += time.perf_counter() - started
    return result


def _broadcast_model(broadcast: Any) -> Model:
    """The model from its broadcast. PySpark keeps a broadcast's value in each Python worker
    once it is read, and reuses workers across tasks: the weights are shipped once per executor
    and unpacked once per worker, not once per task."""
    params, metadata = broadcast.value
    return Model(params=params, metadata=metadata)


def _score_partition(broadcast: Any, blas_threads: int):
    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - on the executor

        model = _broadcast_model(broadcast)
        # One task per core: a task's matrix products keep to its own core.
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            for batch in batches:
                if batch.num_rows:
                    yield score_batch(model, batch)

    return score_partition


def score_images(df, model: Model, *, blas_threads: int = 1):
    """DataFrame with ``id`` and ``png`` or ``pixels`` (binary) -> DataFrame of `RESULT_DDL`,
    one row per input row. The model is broadcast once; each task pins BLAS to ``blas_threads``.

    An input in fewer partitions than there are task slots (a Parquet file written as one row
    group, say) is spread over twice as many first, so every core gets work.
    """
    kind = image_column(df.columns)
    slots = df.sparkSession.sparkContext.defaultParallelism
    if df.rdd.getNumPartitions() < slots:
        df = df.repartition(2 * slots)
    broadcast = df.sparkSession.sparkContext.broadcast((dict(model.params), dict(model.metadata)))
    return df.selectExpr("cast(id as string) as id", kind).mapInArrow(
        _score_partition(broadcast, blas_threads), RESULT_DDL
    )


def read_images(spark, path: str | os.PathLike):
    """A folder of PNG/JPEG files (searched recursively; ``id`` = the path relative to the
    folder) or a Parquet file or folder (``id`` from its ``id``, ``path`` or ``index`` column,
    else ``<file name>:<row number>``) -> DataFrame with ``id`` and ``png`` or ``pixels``.

    Sets the session's file split sizes for scoring: at most `MAX_PARTITION_BYTES`, at least
    `TASKS_PER_SLOT` splits per task slot when the file's row groups allow, and a small per-file
    cost so that many small drawings share a task."""
    from pyspark.sql import functions as F  # noqa: PLC0415 - Spark only where it is used

    path = Path(path).resolve()
    if not path.exists():
        raise ScoreInputError(MISSING_INPUT_MESSAGE.format(path=path))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(MAX_PARTITION_BYTES))
    spark.conf.set(
        "spark.sql.files.minPartitionNum", str(TASKS_PER_SLOT * spark.sparkContext.defaultParallelism)
    )
    is_parquet = path.is_file() or path.suffix == ".parquet" or any(path.glob("*.parquet"))
    if not is_parquet:
        spark.conf.set("spark.sql.files.openCostInBytes", str(FILE_OPEN_COST_BYTES))
        files = (
            spark.read.format("binaryFile")
            .option("pathGlobFilter", IMAGE_GLOB)
            .option("recursiveFileLookup", "true")
            .load(path.as_uri())
        )
        # Spark names files "file:/folder/a%20b.png"; the id is "a b.png" (relative, decoded).
        prefix = len("file:" + str(path).rstrip("/") + "/")
        relative = F.substring(F.expr("url_decode(path)"), prefix + 1, 1 << 30)
        return files.select(relative.alias("id"), F.col("content").alias("png"))
    df = spark.read.parquet(path.as_uri())
    kind = image_column(df.columns, str(path))
    id_column = next((name for name in ID_COLUMNS if name in df.columns), None)
    if id_column is not None:
        ids = F.col(id_column).cast("string")
    else:
        ids = F.concat_ws(":", F.col("_metadata.file_name"), F.col("_metadata.row_index").cast("string"))
    return df.select(ids.alias("id"), F.col(kind).cast("binary").alias(kind))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m doodle.reading.score",
        description="Score a folder of PNG/JPEG drawings or a Parquet file of images with Spark.",
    )
    parser.add_argument("input", help="folder of .png/.jpg files, or Parquet with a png or pixels column")
    parser.add_argument("output", help="Parquet folder to write (one row per image)")
    parser.add_argument(
        "--model",
        default=os.environ.get("DOODLE_MODEL_PATH", "models"),
        help="model folder or .npz (default: $DOODLE_MODEL_PATH or models)",
    )
    parser.add_argument("--master", default="local[*]", help="Spark master URL (default local[*])")
    parser.add_argument("--driver-memory", default="2g", help="Spark driver memory (default 2g)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: exit 0 once every image has a row (errors included), 2 on bad input."""
    args = _parse_args(argv)
    output = Path(args.output).resolve()
    try:
        model = load_model(args.model)
        if not Path(args.input).exists():
            raise ScoreInputError(MISSING_INPUT_MESSAGE.format(path=args.input))
        if output.exists() and not args.overwrite:
            raise ScoreInputError(OUTPUT_EXISTS_MESSAGE.format(path=args.output))
    except (ScoreInputError, ModelFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from doodle.sources.spark_prep import spark_session  # noqa: PLC0415 - starts no JVM until called

    started = time.perf_counter()
    spark = spark_session(args.master, args.driver_memory, app_name="doodle-score")
    try:
        try:
            images = read_images(spark, args.input)
        except ScoreInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        score_images(images, model).write.mode("overwrite" if args.overwrite else "errorifexists").parquet(
            output.as_uri()
        )
    finally:
        spark.stop()
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pq.read_table(output, columns=["digit", "error"])
    errors = table.column("error").null_count
    failed = len(table) - errors
    print(
        f"scored {len(table)} images in {time.perf_counter() - started:.1f} s with model {model.version}:"
        f" {len(table) - failed} digits, {failed} errors -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
