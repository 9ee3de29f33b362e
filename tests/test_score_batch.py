"""`score_batch` (and `score_images` on Spark) against the per-image path it stands for: each image
decoded by `decode_image`, made an input by `canvas_to_input`, refused when blank, and read by the
model on its own. On varied drawings (grey, RGBA, JPEG, 16-bit, palette, tiny, large) and on every
kind of bad value: the same digits, the same probabilities within float tolerance, the same error
sentences on the same rows, whatever the batches' boundaries."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drawing_helpers import synthetic_drawings
from PIL import Image

from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import (
    BLANK_CANVAS_MESSAGE,
    CORRUPT_IMAGE_MESSAGE,
    IMAGE_TOO_LARGE_MESSAGE,
    NOT_AN_IMAGE_MESSAGE,
    blank_inputs,
    canvas_to_input,
    decode_image,
)
from doodle.model import mlp, model_io
from doodle.reading import score

SEED = 20261207
# One image alone and the same image in a batch may differ in the last float32 bits of a
# matrix product; a digit may come out differently only when its top two are this close.
TIE = 1e-5


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> model_io.Model:
    params = mlp.init_params([784, 64, 10], seed=11)
    return model_io.save_model(
        tmp_path_factory.mktemp("model"),
        params,
        normalization={"mean": 0.13, "std": 0.31},
        metadata={"unsure_margin": 0.05},
    )


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def strokes_canvas(size: tuple[int, int], seed: int) -> np.ndarray:
    """White ink strokes on black, ``(height, width)`` uint8, somewhere inside ``size``."""
    rng = np.random.default_rng([SEED, seed])
    width, height = size
    side = min(width, height)
    points = [
        [
            (float(x * side * 0.6 + side * 0.2), float(y * side * 0.6 + side * 0.2))
            for x, y in rng.uniform(0, 1, (3, 2))
        ]
        for _ in range(3)
    ]
    square = render_strokes(points, side, max(2, side // 14))
    canvas = np.zeros((height, width), np.uint8)
    canvas[:side, :side] = square
    return canvas


def special_pngs() -> list[tuple[str, bytes, bool]]:
    """PNGs that only Pillow may decode, beside plain ones: ``(name, bytes, plain)``."""
    grey = Image.fromarray(255 - strokes_canvas((280, 280), 9))
    plain = encode(grey)
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG", dpi=(96, 96))
    with_phys = buffer.getvalue()
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG", transparency=0)  # black is transparent: Pillow makes it RGBA
    with_trns = buffer.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": Pillow turns the drawing
    buffer = io.BytesIO()
    Image.fromarray(255 - strokes_canvas((320, 240), 10)).save(buffer, format="PNG", exif=exif)
    with_exif = buffer.getvalue()
    bad_crc = bytearray(plain)
    bad_crc[-5] ^= 0xFF  # IEND's CRC
    buffer = io.BytesIO()
    grey.convert("LA").save(buffer, format="PNG")
    grey_alpha = buffer.getvalue()
    return [
        ("plain grey", plain, True),
        ("grey with pHYs", with_phys, True),
        ("grey with tRNS", with_trns, False),
        ("EXIF rotated", with_exif, False),
        ("bad CRC", bytes(bad_crc), False),
        ("grey and alpha", grey_alpha, False),
        ("trailing bytes", plain + b"more", False),
    ]


def varied_pngs() -> list[tuple[str, bytes | None]]:
    """Drawings of many kinds, then the values scoring must turn into error rows."""
    rows = [(name, data) for name, data in synthetic_drawings(36, SEED)]
    dark_on_light = 255 - strokes_canvas((280, 280), 1)
    rows.append(("grey 280", encode(Image.fromarray(dark_on_light))))
    rows.append(("light on dark", encode(Image.fromarray(strokes_canvas((280, 280), 2)))))
    rows.append(("tiny 28x28", encode(Image.fromarray(strokes_canvas((28, 28), 3)))))
    rows.append(
        ("large RGB 1200x900", encode(Image.fromarray(255 - strokes_canvas((1200, 900), 4)).convert("RGB")))
    )
    wide = (strokes_canvas((300, 300), 5).astype(np.uint16) * 257).astype(np.uint16)
    rows.append(("16-bit grey", encode(Image.fromarray(wide))))
    rows.append(("palette", encode(Image.fromarray(255 - strokes_canvas((280, 280), 6)).convert("P"))))
    rows.append(("grey JPEG", encode(Image.fromarray(255 - strokes_canvas((280, 280), 7)), "JPEG")))
    rows += [(name, data) for name, data, _ in special_pngs()]
    specks = np.full((280, 280), 255, np.uint8)
    specks[[40, 100, 200], [50, 150, 60]] = 0
    rows.append(("blank", encode(Image.new("L", (280, 280), 255))))
    rows.append(("specks only", encode(Image.fromarray(specks))))
    faint = np.full((280, 280), 255, np.uint8)
    faint[100:104, 100:104] = 0  # a dot: a digit to canvas_to_input, whatever the model makes of it
    rows.append(("small dot", encode(Image.fromarray(faint))))
    whole = rows[0][1]
    rows.append(("truncated", whole[: len(whole) // 2]))
    rows.append(("not an image", b"GIF89a no drawing here"))
    rows.append(("empty", b""))
    rows.append(("missing", None))
    rows.append(("too large 2100x2100", encode(Image.new("L", (2100, 2100), 255))))
    return rows


def reference_row(model: model_io.Model, value: bytes | None, kind: str) -> dict:
    """What one image alone gives: the error sentence, or the model's answer for it."""
    try:
        if value is None or len(value) == 0:
            raise ValueError(score.NO_IMAGE_DATA_MESSAGE)
        if kind == "png":
            canvas = decode_image(value)
        elif len(value) != 784:
            raise ValueError(score.PIXELS_LENGTH_MESSAGE.format(expected=784, actual=len(value)))
        else:
            canvas = np.frombuffer(value, np.uint8).reshape(28, 28)
        image = canvas_to_input(canvas).reshape(1, -1)
        if blank_inputs(image)[0]:
            raise ValueError(BLANK_CANVAS_MESSAGE)
    except ValueError as exc:
        return {"error": str(exc)}
    probs = model.predict_proba(image)[0]
    return {"error": None, "probs": probs}


def assert_matches(rows: list[dict], references: list[dict], model: model_io.Model) -> None:
    for row, reference in zip(rows, references, strict=True):
        assert row["error"] == reference["error"], row["id"]
        if reference["error"] is not None:
            assert row["digit"] is None and row["confidence"] is None and row["unsure"] is None, row["id"]
            continue
        probs = reference["probs"]
        order = np.argsort(probs)[::-1]
        assert row["confidence"] == pytest.approx(float(probs.max()), abs=1e-5), row["id"]
        if probs[order[0]] - probs[order[1]] > TIE:
            assert row["digit"] == int(order[0]), row["id"]
            assert row["runner_up"] == int(order[1]), row["id"]
            assert row["runner_up_confidence"] == pytest.approx(float(probs[order[1]]), abs=1e-5), row["id"]
            assert row["unsure"] == bool(probs[order[0]] - probs[order[1]] < model.unsure_margin), row["id"]
        assert row["model_version"] == model.version


@pytest.fixture(scope="module")
def pngs() -> list[tuple[str, bytes | None]]:
    return varied_pngs()


@pytest.fixture(scope="module")
def png_references(model, pngs) -> list[dict]:
    return [reference_row(model, value, "png") for _, value in pngs]


def png_batch(pngs, start: int = 0, stop: int | None = None) -> pa.RecordBatch:
    chosen = pngs[start:stop]
    return pa.record_batch(
        {"id": [name for name, _ in chosen], "png": pa.array([value for _, value in chosen], pa.binary())}
    )


def test_the_set_has_digits_and_every_error(png_references):
    errors = [reference["error"] for reference in png_references]
    assert sum(error is None for error in errors) >= 40
    assert {
        BLANK_CANVAS_MESSAGE,
        CORRUPT_IMAGE_MESSAGE,
        NOT_AN_IMAGE_MESSAGE,
        score.NO_IMAGE_DATA_MESSAGE,
    } <= set(errors)
    assert any(error and error.startswith(IMAGE_TOO_LARGE_MESSAGE) for error in errors)


def test_one_batch_gives_what_each_image_gives_alone(model, pngs, png_references):
    result = score.score_batch(model, png_batch(pngs))
    assert result.schema == score.RESULT_SCHEMA
    rows = result.to_pylist()
    assert [row["id"] for row in rows] == [name for name, _ in pngs]
    assert_matches(rows, png_references, model)
    assert len({row["digit"] for row in rows if row["digit"] is not None}) >= 3


def test_batch_boundaries_change_nothing(model, pngs, png_references):
    rows = []
    for start in range(0, len(pngs), 7):
        rows += score.score_batch(model, png_batch(pngs, start, start + 7)).to_pylist()
    assert_matches(rows, png_references, model)
    # Errors alone in a batch: nothing to classify, every row still there.
    only_errors = score.score_batch(model, png_batch(pngs, len(pngs) - 5)).to_pylist()
    assert [row["error"] for row in only_errors] == [reference["error"] for reference in png_references[-5:]]


def test_pixels_rows_of_every_kind(model, pngs):
    images = [canvas_to_input(decode_image(value)) for _, value in pngs[:12]]
    pixels = [(image * 255).round().astype(np.uint8).tobytes() for image in images]
    pixels += [(255 - np.frombuffer(pixels[0], np.uint8)).tobytes()]  # dark ink on white
    pixels += [pixels[1][:783], bytes(784), b"", None]
    names = [f"pixels-{i}" for i in range(len(pixels))]
    batch = pa.record_batch({"id": names, "pixels": pa.array(pixels, pa.binary())})
    rows = score.score_batch(model, batch).to_pylist()
    references = [reference_row(model, value, "pixels") for value in pixels]
    assert_matches(rows, references, model)
    assert [row["error"] for row in rows[-4:]] == [
        score.PIXELS_LENGTH_MESSAGE.format(expected=784, actual=783),
        BLANK_CANVAS_MESSAGE,
        score.NO_IMAGE_DATA_MESSAGE,
        score.NO_IMAGE_DATA_MESSAGE,
    ]


def test_spark_in_small_arrow_batches_gives_the_same_rows(spark, model, pngs, png_references, tmp_path):
    """Through Spark, in Arrow batches of 5 rows over several tasks: every row, none twice."""
    path = tmp_path / "varied.parquet"
    pq.write_table(pa.Table.from_batches([png_batch(pngs)]), path)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "5")
    try:
        rows = score.score_images(score.read_images(spark, path), model).toArrow().to_pylist()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(pngs)
    assert_matches([by_id[name] for name, _ in pngs], png_references, model)


def test_transparent_canvas_decodes_to_its_alpha_with_the_same_input():
    """Scoring decodes a drawing on a transparent canvas to its alpha channel: the same input as
    the RGBA image gives; an opaque RGBA image stays RGBA."""
    ink = strokes_canvas((300, 300), 8)
    transparent = encode(Image.fromarray(np.dstack([np.zeros((300, 300, 3), np.uint8), ink]), "RGBA"))
    alpha = decode_image(transparent, transparent_as_alpha=True)
    rgba = decode_image(transparent)
    assert rgba.shape == (300, 300, 4) and alpha.shape == (300, 300)
    np.testing.assert_array_equal(alpha, rgba[:, :, 3])
    np.testing.assert_array_equal(canvas_to_input(alpha), canvas_to_input(rgba))
    opaque = np.dstack([np.repeat((255 - ink)[:, :, None], 3, axis=2), np.full((300, 300), 255, np.uint8)])
    kept = decode_image(encode(Image.fromarray(opaque, "RGBA")), transparent_as_alpha=True)
    assert kept.shape == (300, 300, 4)


def test_plain_pngs_go_to_libpng_and_the_rest_to_pillow():
    """Which files the faster decoder may take: the set above holds both kinds, and RGB and RGBA
    drawings are plain too."""
    for name, data, plain in special_pngs():
        assert (score.plain_png_size(data) is not None) == plain, name
    assert score.plain_png_size(special_pngs()[0][1]) == (280, 280)
    drawings = dict(synthetic_drawings(12, SEED))
    kinds = {Image.open(io.BytesIO(data)).mode for name, data in drawings.items() if name.endswith(".png")}
    assert kinds == {"L", "RGBA"}
    assert all(score.plain_png_size(data) for name, data in drawings.items() if name.endswith(".png"))
    assert score.imagecodecs is not None, "imagecodecs (the pipeline extra) is installed"
