"""POST /predict/number over real HTTP: several digits read from one upload, its limits and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import png_bytes, run_server

from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import decode_image
from doodle.canvas.segment import segment
from doodle.reading.number_reading import read_number
from doodle.study import numbers
from serving import messages

# Digit shapes as polylines on a unit square.
SHAPES = {
    "1": [(0.5, 0.05), (0.5, 0.95)],
    "2": [(0.1, 0.25), (0.5, 0.05), (0.9, 0.25), (0.1, 0.95), (0.9, 0.95)],
    "7": [(0.1, 0.1), (0.9, 0.1), (0.4, 0.95)],
    "4": [(0.7, 0.95), (0.7, 0.05), (0.1, 0.6), (0.9, 0.6)],
}


def number_png(text: str, height: int = 100, gap: float = 0.5, mode: str = "RGBA") -> bytes:
    """``text`` (digits from SHAPES, or "0") drawn left to right, black on white, as PNG bytes."""
    digit_w = 0.6 * height
    width = int(len(text) * digit_w + (len(text) - 1) * gap * height + 60)
    canvas = Image.new(mode, (width, height + 60), "white")
    pen = ImageDraw.Draw(canvas)
    for i, char in enumerate(text):
        x0, y0 = 30 + i * (digit_w + gap * height), 30
        if char == "0":
            pen.ellipse((x0, y0, x0 + digit_w, y0 + height), outline="black", width=10)
            continue
        points = [(x0 + x * digit_w, y0 + y * height) for x, y in SHAPES[char]]
        pen.line(points, fill="black", width=10, joint="curve")
    return png_bytes(np.asarray(canvas))


def pad_number(seed: int, band: str) -> np.ndarray:
    """A number as the pad renders it (`doodle.canvas.drawing.render_strokes`, white on black): 3-6
    pen-stroke digits by held-out writers composed with their strokes (`doodle.study.numbers`) at the gaps
    of a spacing ``band`` (overlapping: where digits touch, cut boxes may be joined again)."""
    rng = np.random.default_rng([2026, seed])
    source = numbers.stroke_source(with_strokes=True)
    drawings, labels = zip(*(source(rng) for _ in range(int(rng.integers(3, 7)))))
    number = numbers.compose_number(drawings, labels, rng, numbers.SPACING_BANDS[band])
    return render_strokes(number.strokes.strokes, number.canvas.shape, number.strokes.pen_width)


def post(client, data: bytes, name: str = "number.png"):
    return client.post("/predict/number", files={"file": (name, data)})


def histogram(client, name: str) -> dict[str, float]:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {s.name.removeprefix(name): s.value for s in family.samples if not s.labels.get("le")}
    raise AssertionError(f"{name} not exported")


def test_a_number_is_read_digit_by_digit_left_to_right(client, model):
    data = number_png("2074")
    response = post(client, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"number", "digits", "model_version", "reason"}
    assert body["reason"] is None
    assert len(body["digits"]) == 4
    expected = segment(decode_image(data)).inputs().reshape(4, -1)
    probs = model.predict_proba(expected)
    assert body["number"] == "".join(str(d["digit"]) for d in body["digits"])
    xs = [d["box"][0] for d in body["digits"]]
    assert xs == sorted(xs)
    for digit, image, p in zip(body["digits"], expected, probs):
        assert set(digit) == {"digit", "confidence", "box", "probabilities", "image_vector"}
        assert digit["image_vector"] == pytest.approx(image.tolist(), abs=1e-6)
        assert digit["probabilities"] == pytest.approx(p.tolist(), abs=1e-5)
        assert digit["digit"] == int(p.argmax())
        assert digit["confidence"] == pytest.approx(float(p.max()), abs=1e-5)
        x, y, w, h = digit["box"]
        assert 90 <= h <= 112 and 5 <= w <= 75 and 20 <= y <= 40


def test_the_api_reads_the_pads_renders_as_the_pad_reads_them(client, model):
    """/predict/number and the pad's reading (`doodle.reading.number_reading.read_number`) answer the same
    drawings identically: the same digits, boxes, probabilities and inputs, pieces joined alike."""
    joined = 0
    for seed, band in itertools.product(range(6, 12), numbers.SPACING_BANDS):
        pad = pad_number(seed, band)
        reading = read_number(model, pad)
        joined += len(reading) < len(segment(pad))
        response = post(client, png_bytes(pad))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["number"] == reading.number, (seed, band)
        assert body["reason"] == reading.reason
        assert [d["box"] for d in body["digits"]] == [list(d.box) for d in reading.digits]
        for answer, digit in zip(body["digits"], reading.digits):
            assert answer["probabilities"] == pytest.approx(digit.probabilities.tolist(), abs=1e-5)
            assert answer["image_vector"] == pytest.approx(digit.model_input.reshape(-1).tolist(), abs=1e-6)
    assert joined, "no drawing needed a join: the test would not tell the readings apart"


def test_one_digit_is_a_number_too(client):
    response = post(client, number_png("7", mode="L"))
    assert response.status_code == 200
    assert len(response.json()["number"]) == 1


def test_digits_per_request_are_counted(client):
    before = histogram(client, "doodle_number_digits")
    assert post(client, number_png("120")).status_code == 200
    after = histogram(client, "doodle_number_digits")
    assert after["_count"] - before["_count"] == 1
    assert after["_sum"] - before["_sum"] == 3


def test_blank_upload_is_reported_not_guessed(client):
    blank = np.full((120, 400, 4), 255, dtype=np.uint8)
    response = post(client, png_bytes(blank))
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BLANK_CANVAS}


@pytest.mark.parametrize(
    ("what", "data", "status", "message"),
    [
        (
            "text file",
            b"this is not an image",
            415,
            messages.NOT_AN_IMAGE.format(reason="not a PNG or JPEG image"),
        ),
        (
            "truncated PNG",
            number_png("12")[:300],
            422,
            messages.NOT_AN_IMAGE.format(reason="image is truncated or corrupt"),
        ),
        ("empty file", b"", 400, messages.EMPTY_UPLOAD),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else "",
)
def test_bad_uploads_get_a_message_and_the_server_keeps_serving(client, what, data, status, message):
    response = post(client, data)
    assert response.status_code == status, what
    assert response.json() == {"detail": message}
    assert post(client, number_png("41")).status_code == 200


def test_noise_is_no_number(client):
    speckle = np.full((400, 400), 255, dtype=np.uint8)
    for dy in range(5):
        for dx in range(5):
            speckle[5 + dy : 395 : 10, 5 + dx : 395 : 10] = 0
    response = post(client, png_bytes(speckle))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(messages.NUMBER_UNREADABLE.format(reason=""))


def test_more_digits_than_the_limit_is_refused(tmp_path, model_dir):
    with run_server(tmp_path, model_dir, DOODLE_MAX_NUMBER_DIGITS="3") as server, server.client() as http:
        assert post(http, number_png("127")).status_code == 200
        response = post(http, number_png("1274"))
        assert response.status_code == 422
        assert response.json() == {"detail": messages.TOO_MANY_DIGITS.format(count=4, limit=3)}
        counted = histogram(http, "doodle_number_digits")
        assert counted["_count"] == 1  # the refused request read nothing
