"""The pad's number mode without a browser: a drawing of several digits read as a number
(`doodle.reading.number_reading`), its boxes and per-digit views, and a correction for one digit of it
landing in SQLite with that digit's own 28x28 input."""

from __future__ import annotations

import io
import re
import sqlite3

import numpy as np
import pytest
from PIL import Image

from doodle.app import dashboard_contract as page
from doodle.app import dashboard_view as view
from doodle.app.dashboard import PICK_POSITION_MESSAGE, DoodleApp, NumberReading, Prediction
from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.canvas.preprocess import BlankCanvasError, canvas_to_input
from doodle.model import mlp, model_io, path_features
from doodle.model.path_io import pool
from doodle.reading.number_reading import TooManyDigitsError, read_number
from support.digits import HAND_DRAWN_DIGITS, NUMBER_PITCH, number_strokes
from support.digits import draw_on as draw

YEAR = number_strokes("2026")


def shown_number(app: DoodleApp) -> tuple[str, list[dict[str, str]]]:
    """The number view's ``data-number`` and, per digit, its data attributes."""
    number = re.search(rf"{page.DATA_NUMBER}='(\d*)'", app.view.number_view.value).group(1)
    cells = [
        dict(re.findall(r"(data-[a-z]+)='([^']*)'", cell))
        for cell in re.findall(rf"<div class='{page.NUMBER_DIGIT}'[^>]*>", app.view.number_view.value)
    ]
    return number, cells


# ----- the pure reading ---------------------------------------------------------------------


def test_a_written_year_is_four_boxes_left_to_right(tiny_model):
    image = render_strokes(YEAR)
    reading = read_number(tiny_model, image, YEAR, pen_width=PEN_WIDTH)
    assert len(reading) == 4 and reading.reason is None
    lefts = [d.box[0] for d in reading.digits]
    assert lefts == sorted(lefts)
    for index, digit in enumerate(reading.digits):
        x, y, w, h = digit.box
        centre = 140 + (index - 1.5) * NUMBER_PITCH
        assert abs(x + w / 2 - centre) < NUMBER_PITCH / 3  # each box sits on its own digit
        assert x + w <= (reading.digits[index + 1].box[0] if index < 3 else 280)  # boxes do not overlap
        assert digit.model_input.shape == (28, 28) and digit.model_input.dtype == np.float32
        assert digit.probabilities.shape == (10,) and digit.probabilities.sum() == pytest.approx(
            1.0, abs=1e-5
        )
        assert digit.confidence == pytest.approx(float(digit.probabilities.max()))
        assert digit.digit == int(digit.probabilities.argmax())
    assert reading.number == "".join(str(d.digit) for d in reading.digits)


def test_each_digit_is_read_as_if_drawn_alone(tiny_model):
    """The second digit's input is its own ink: the same as a 0 drawn alone where it stands."""
    reading = read_number(tiny_model, render_strokes(YEAR), YEAR, pen_width=PEN_WIDTH)
    zero = number_strokes("2026")[1:2]  # the 0's only stroke, in place
    alone = canvas_to_input(render_strokes(zero))
    assert np.abs(reading.digits[1].model_input - alone).max() < 0.05


def test_trained_model_reads_the_year(trained_model):
    reading = read_number(trained_model, render_strokes(YEAR), YEAR, pen_width=PEN_WIDTH)
    assert reading.number == "2026", [(d.digit, round(d.confidence, 3)) for d in reading.digits]


def test_a_blank_pad_and_too_many_digits_are_said(tiny_model):
    with pytest.raises(BlankCanvasError):
        read_number(tiny_model, render_strokes([]), [], pen_width=PEN_WIDTH)
    with pytest.raises(TooManyDigitsError, match="4 digits found"):
        read_number(tiny_model, render_strokes(YEAR), YEAR, pen_width=PEN_WIDTH, max_digits=3)


# ----- the widgets ----------------------------------------------------------------------------


def test_one_digit_keeps_the_single_digit_answer(app):
    draw(app, HAND_DRAWN_DIGITS[4])  # two strokes, one digit
    answer = app.predict()
    assert isinstance(answer, Prediction) and app.number is None
    assert "data-state='guess'" in app.view.guess.value
    assert shown_number(app) == ("", [])
    assert app.view.position_row.layout.display == "none"


def test_a_number_shows_the_number_the_digits_and_their_views(app):
    draw(app, YEAR)
    reading = app.predict()
    assert isinstance(reading, NumberReading) and len(reading) == 4
    assert app.prediction is None and app.number is reading
    assert f"data-state='{page.STATE_NUMBER}'" in app.view.guess.value
    assert f">{reading.number}</div>" in app.view.guess.value
    number, cells = shown_number(app)
    assert number == reading.number
    assert [cell[page.DATA_INDEX] for cell in cells] == ["0", "1", "2", "3"]
    for cell, digit in zip(cells, reading.digits):
        assert cell[page.DATA_DIGIT] == str(digit.digit)
        assert cell[page.DATA_BOX] == ",".join(map(str, digit.box))
        assert float(cell[page.DATA_CONFIDENCE]) == pytest.approx(digit.confidence, abs=1e-4)
        # Each digit's small view is its own 28x28 input, enlarged.
        png = view.data_url(view.input_view_png(digit.model_input, view.NUMBER_VIEW_SCALE))
        assert png in app.view.number_view.value
    assert len(re.findall(r"<img ", app.view.number_view.value)) == 4
    assert app.view.position_row.layout.display != "none"
    assert [value for _, value in app.view.position_picker.options] == [0, 1, 2, 3]
    # Every part of the answer moved on together (the browser waits on data-seq).
    seqs = {
        int(s)
        for part in (
            app.view.guess,
            app.view.bars,
            app.view.number_view,
            app.view.attribution_view,
            app.view.units_view,
        )
        for s in re.findall(r"data-seq='(\d+)'", part.value)
    }
    assert seqs == {app.view.predictions_made}


def test_boxes_are_painted_on_the_pad_and_go_with_the_number(app, monkeypatch):
    painted = []
    monkeypatch.setattr(app.view.canvas, "stroke_rect", lambda *box: painted.append(box))
    draw(app, YEAR)
    reading = app.predict()
    margin = page.BOX_MARGIN
    assert painted == [
        (x - margin, y - margin, w + 2 * margin, h + 2 * margin)
        for x, y, w, h in (d.box for d in reading.digits)
    ]
    repaints = []
    monkeypatch.setattr(app, "repaint", lambda: repaints.append(1))
    app.drawing.strokes[:] = app.drawing.strokes[:1]  # only the 2 left
    assert isinstance(app.predict(), Prediction)
    assert repaints == [1]  # the boxes are wiped with a repaint
    assert shown_number(app) == ("", []) and app.view.position_row.layout.display == "none"


def test_clear_after_a_number_is_idle(app):
    draw(app, YEAR)
    app.predict()
    app.clear()
    assert "data-state='idle'" in app.view.guess.value and app.number is None
    assert shown_number(app) == ("", [])


def test_a_correction_names_its_digit_and_stores_that_digits_input(app, store):
    draw(app, YEAR)
    reading = app.predict()
    app.view.actual_picker.value = "6"
    assert app.submit_feedback() is None  # which digit?
    assert PICK_POSITION_MESSAGE in app.view.feedback_status.value and store.count() == 0
    app.view.position_picker.value = 2
    app.view.actual_picker.value = "2"
    row_id = app.submit_feedback()
    assert row_id is not None
    assert (
        "digit 3 of 4" in app.view.feedback_status.value
        and "data-state='saved'" in app.view.feedback_status.value
    )
    third = reading.digits[2]
    with sqlite3.connect(store.path) as conn:
        predicted, actual, source, image, png = conn.execute(
            "SELECT predicted_digit, actual_digit, source, image, drawing_png FROM feedback WHERE id = ?",
            (row_id,),
        ).fetchone()
    assert (predicted, actual, source) == (third.digit, 2, "dashboard")
    stored = np.frombuffer(image, dtype=np.float32).reshape(28, 28)
    np.testing.assert_allclose(stored, third.model_input)
    assert not np.allclose(stored, reading.digits[1].model_input)  # not its neighbour's
    crop = np.asarray(Image.open(io.BytesIO(png)))
    assert crop.shape[1] < 140 and crop.shape[0] >= third.box[3]  # the digit's crop, not the whole pad
    assert app.view.position_picker.value is None and app.view.actual_picker.value is None


def test_a_correction_by_argument_for_the_last_digit(app, store):
    draw(app, YEAR)
    reading = app.predict()
    row_id = app.submit_feedback(6, position=3)
    (record,) = store.recent(1)
    assert record.id == row_id and record.predicted_digit == reading.digits[3].digit
    # That digit's own strokes travel with it (the 6's, the last drawn), for the path model.
    six = YEAR[-len(HAND_DRAWN_DIGITS[6]) :]
    assert [stroke.tolist() for stroke in record.strokes] == [np.asarray(stroke).tolist() for stroke in six]
    assert record.model_version == reading.model_version == app.model.version
    np.testing.assert_allclose(record.image, reading.digits[3].model_input)
    assert app.submit_feedback(6, position=4) is None  # no fifth digit
    assert store.count() == 1


# ----- both views, digit by digit -------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory) -> model_io.Model:
    """The tiny model's pixel weights with an untrained path model beside them (pool weight 0.7)."""
    folder = tmp_path_factory.mktemp("pair")
    pixel = model_io.save_model(
        folder, mlp.init_params([784, 16, 10], seed=3), normalization={"mean": 0.13, "std": 0.31}
    )
    model_io.save_path_model(
        folder,
        mlp.init_params([path_features.feature_size(8), 12, 10], seed=5),
        points=8,
        temperature=0.5,
        pool_weight=0.7,
        pixel_sha256=pixel.sha256,
    )
    return model_io.load_model(folder)


def year_digit_strokes() -> list[list]:
    """YEAR's strokes, digit by digit."""
    digits, start = [], 0
    for digit in "2026":
        count = len(HAND_DRAWN_DIGITS[int(digit)])
        digits.append([np.asarray(stroke).tolist() for stroke in YEAR[start : start + count]])
        start += count
    return digits


def test_a_number_drawn_on_the_pad_reads_each_digit_from_its_ink_and_its_path(pair_model):
    image = render_strokes(YEAR)
    reading = read_number(pair_model, image, YEAR, pen_width=PEN_WIDTH)
    assert len(reading) == 4 and reading.views == ("pixels", "path")
    pooled_moved = False
    for digit, strokes in zip(reading.digits, year_digit_strokes()):
        assert [stroke.tolist() for stroke in digit.strokes] == strokes  # its own strokes, in order
        assert digit.views == ("pixels", "path")
        pixels = pair_model.predict_proba(digit.model_input.reshape(1, -1))
        expected = pool(pixels, pair_model.path.predict_proba([digit.strokes]), 0.7)[0]
        np.testing.assert_allclose(digit.probabilities, expected, rtol=1e-5, atol=1e-6)
        assert digit.digit == int(expected.argmax())
        pooled_moved |= not np.allclose(digit.probabilities, pixels[0], atol=1e-4)
    assert pooled_moved  # the path view changed the answer's probabilities
    # An upload has no strokes: its digits are read from the pixels alone.
    upload = read_number(pair_model, image)
    assert upload.views == ("pixels",)
    for digit in upload.digits:
        assert digit.strokes is None and digit.views == ("pixels",)
        np.testing.assert_allclose(
            digit.probabilities, pair_model.predict_proba(digit.model_input.reshape(1, -1))[0], rtol=1e-5
        )


def test_the_pad_says_a_number_was_read_with_both_views_and_a_correction_keeps_its_strokes(pair_model, store):
    app = DoodleApp(model=pair_model, feedback_store=store, live=False)
    draw(app, YEAR)
    reading = app.predict()
    assert isinstance(reading, NumberReading) and reading.views == ("pixels", "path")
    assert f"{page.DATA_VIEWS}='pixels path'" in app.view.guess.value
    row_id = app.submit_feedback(0, position=2)
    (record,) = store.recent(1)
    assert record.id == row_id
    assert [stroke.tolist() for stroke in record.strokes] == year_digit_strokes()[2]
    # A single digit: the pad's strokes.
    app.clear()
    draw(app, HAND_DRAWN_DIGITS[7])
    assert app.predict().views == ("pixels", "path")
    app.submit_feedback(7)
    (record,) = store.recent(1)
    assert [stroke.tolist() for stroke in record.strokes] == [
        np.asarray(stroke, dtype=np.float64).tolist() for stroke in HAND_DRAWN_DIGITS[7]
    ]
