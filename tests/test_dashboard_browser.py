"""The dashboard end to end: Voilà serving the notebook, strokes drawn with the mouse in
headless Chromium, answers read off the page, a correction read back from SQLite."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from doodle.app import dashboard_contract as contract
from doodle.canvas.drawing import render_strokes
from doodle.canvas.preprocess import BLANK_CANVAS_MESSAGE, canvas_to_input
from doodle.model.model_io import save_model
from doodle.paths import ROOT
from support.browser import SELECTORS, DashboardPage, chromium_or_skip, launch_chromium, trained_model_or_skip
from support.digits import HAND_DRAWN_DIGITS, number_strokes
from support.voila import VoilaServer

# Every test reads the trained model (through the dashboard or directly).
pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def feedback_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feedback") / "feedback.sqlite"


@pytest.fixture(scope="module")
def voila(tmp_path_factory, feedback_db):
    trained_model_or_skip()
    chromium_or_skip()
    workdir = tmp_path_factory.mktemp("voila")
    env = {
        "DOODLE_FEEDBACK_DB": str(feedback_db),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "DOODLE_DASHBOARD_POOL": "2",  # a few pages at a time: the default budget's pool would cost CPU
    }
    with VoilaServer(workdir / "voila.log", env=env) as server:
        yield server
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(workdir / "voila.log", ARTIFACTS / "voila.log")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard(voila, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 640})
    try:
        yield DashboardPage(page, voila.url).open()
    finally:
        page.close()


@pytest.mark.parametrize("digit", [1, 0, 7])
def test_drawn_digit_is_read(dashboard, digit):
    dashboard.draw(HAND_DRAWN_DIGITS[digit])
    assert dashboard.pad_ink_fraction() > 0.02  # the strokes show on the pad
    shown = dashboard.predict()
    assert shown.state == "guess"
    assert shown.digit == digit, shown
    assert sum(shown.probabilities) == pytest.approx(1.0, abs=0.006)  # ten values rounded to 0.1 %
    assert max(shown.probabilities) == shown.probabilities[digit]
    assert shown.confidence == f"confidence {100 * shown.probabilities[digit]:.1f}%"
    if digit == 7:
        ARTIFACTS.mkdir(exist_ok=True)
        dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard.png"))


def test_finger_strokes_draw_too(voila, browser):
    context = browser.new_context(has_touch=True, viewport={"width": 1000, "height": 640})
    try:
        dashboard = DashboardPage(context.new_page(), voila.url).open()
        shown = dashboard.draw_by_touch(HAND_DRAWN_DIGITS[7])  # live: read on the finger's lift
        assert dashboard.pad_ink_fraction() > 0.02
        assert (shown.state, shown.digit) == ("guess", 7)
    finally:
        context.close()


def test_clear_empties_the_pad_and_the_guess(dashboard):
    dashboard.draw(HAND_DRAWN_DIGITS[7])
    assert dashboard.predict().state == "guess"
    shown = dashboard.clear()
    assert shown.state == "idle" and shown.digit is None
    assert shown.probabilities == [0.0] * 10
    dashboard.wait_for_empty_pad()
    assert dashboard.pad_ink_fraction() == 0.0


def test_undo_removes_the_last_stroke(dashboard):
    dashboard.draw(HAND_DRAWN_DIGITS[4])
    with_both = dashboard.pad_ink_fraction()
    seq = dashboard.read().seq
    dashboard.undo()
    dashboard.wait_for_seq_above(seq)  # live mode re-reads the single stroke left
    assert 0.0 < dashboard.pad_ink_fraction() < with_both


def test_blank_canvas_asks_for_a_digit(dashboard):
    shown = dashboard.predict()
    assert shown.state == "blank"
    assert shown.message == BLANK_CANVAS_MESSAGE
    assert shown.probabilities == [0.0] * 10


def test_correction_lands_in_the_feedback_store(dashboard, feedback_db):
    dashboard.draw(HAND_DRAWN_DIGITS[1])
    predicted = dashboard.predict().digit
    actual = 7 if predicted != 7 else 4
    confirmation = dashboard.submit_correction(actual)
    assert confirmation.startswith("Saved correction #")
    row_id = int(confirmation.split("#")[1].split(":")[0])
    with sqlite3.connect(feedback_db) as conn:
        row = conn.execute(
            "SELECT predicted_digit, actual_digit, is_error, source, length(image), length(drawing_png)"
            " FROM feedback WHERE id = ?",
            (row_id,),
        ).fetchone()
    assert row is not None
    assert row[:4] == (predicted, actual, 1, "dashboard")
    assert row[4] == 784 * 4 and row[5] > 100  # float32 input and a PNG of the pad


def test_an_unsure_answer_shows_both_digits(tmp_path, browser):
    """A copy of the trained model whose unsure margin flags every answer: the page reads "7 or 1?"
    style text, answer first, the runner-up being the second-highest bar."""
    trained = trained_model_or_skip()
    chromium_or_skip()
    metadata = {
        key: value for key, value in trained.metadata.items() if key not in {"normalization", "temperature"}
    }
    save_model(
        tmp_path / "model",
        trained.params,
        normalization=trained.metadata["normalization"],
        temperature=trained.temperature,
        metadata={**metadata, "unsure_margin": 1.01},
    )
    env = {
        "DOODLE_MODEL_PATH": str(tmp_path / "model"),
        "DOODLE_FEEDBACK_DB": str(tmp_path / "feedback.sqlite"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "DOODLE_DASHBOARD_POOL": "1",
    }
    with VoilaServer(tmp_path / "voila.log", env=env) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 640})
        try:
            dashboard = DashboardPage(page, server.url).open()
            dashboard.draw(HAND_DRAWN_DIGITS[7])
            shown = dashboard.predict()
            text = page.locator(SELECTORS["guessDigit"]).text_content().strip()
        finally:
            page.close()
    match = re.fullmatch(r"(\d) or (\d)\?", text)
    assert match, text
    answer, runner_up = int(match.group(1)), int(match.group(2))
    assert answer == shown.digit != runner_up
    # The bars are rounded to 0.1 %: the runner-up's bar is the highest of the others (ties allowed).
    others = [p for digit, p in enumerate(shown.probabilities) if digit != answer]
    assert shown.probabilities[runner_up] == max(others)


def _colours(data_url: str) -> tuple[int, int]:
    """Pixels of a data:image/png URL that are clearly red, and clearly blue."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    ).astype(int)
    red = (rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2]) > 60).sum()
    blue = (rgb[..., 2] - np.maximum(rgb[..., 0], rgb[..., 1]) > 60).sum()
    return int(red), int(blue)


def test_why_views_appear_and_follow_the_drawing(dashboard):
    idle = dashboard.read_views()
    assert idle.units == [] and _colours(idle.attribution_png) == (0, 0)
    dashboard.draw(HAND_DRAWN_DIGITS[1])
    one_shown = dashboard.predict()
    one = dashboard.read_views()
    assert len(one.units) == 8 and len(set(one.units)) == 8
    assert one.activations == sorted(one.activations, reverse=True) and one.activations[-1] >= 0
    assert f"toward {one_shown.digit}" in one.legend
    red, _ = _colours(one.attribution_png)
    assert red > 0  # some strokes argue for the guess
    dashboard.clear()
    dashboard.draw(HAND_DRAWN_DIGITS[0])
    zero_shown = dashboard.predict()
    zero = dashboard.read_views()
    assert zero.attribution_png != one.attribution_png
    assert (zero.units, zero.activations) != (one.units, one.activations)
    assert f"toward {zero_shown.digit}" in zero.legend


def test_phone_width_page_stacks(voila, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        dashboard = DashboardPage(page, voila.url).open()
        dashboard.draw(HAND_DRAWN_DIGITS[7])
        boxes = {
            name: page.locator(sel).first.bounding_box()
            for name, sel in [
                ("pad", SELECTORS["pad"]),
                ("attribution", SELECTORS["attribution"]),
                ("units", SELECTORS["units"]),
            ]
        }
        for name, box in boxes.items():
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, (name, box)
        assert boxes["attribution"]["y"] >= boxes["pad"]["y"] + boxes["pad"]["height"]  # below, not beside
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    finally:
        page.close()


def _is_box_colour(rgb: tuple[int, int, int]) -> bool:
    want = [int(contract.BOX_COLOUR[i : i + 2], 16) for i in (1, 3, 5)]
    return all(abs(got - wanted) <= 40 for got, wanted in zip(rgb, want))


def test_a_written_number_is_read_boxed_and_corrected_digit_by_digit(dashboard, feedback_db):
    """ "2026" drawn with the mouse, four strokes: the page reads 2026, lists four digits and
    paints four boxes on the pad; a correction for the second digit lands in SQLite with that
    digit's own 28x28 input."""
    dashboard.draw(number_strokes("2026"))  # live: every pen lift re-reads the pad
    shown = dashboard.read_number()
    assert shown.state == contract.STATE_NUMBER
    assert shown.text == shown.number == "2026", shown
    assert [d.index for d in shown.digits] == [0, 1, 2, 3]
    assert [d.digit for d in shown.digits] == [2, 0, 2, 6]
    assert all(0.0 < d.confidence <= 1.0 for d in shown.digits)
    lefts = [d.box[0] for d in shown.digits]
    assert lefts == sorted(lefts) and len(set(lefts)) == 4
    # Each box is on the pad: its top edge, above the digit's ink, in the box colour; inside
    # the box, between the edges, the ink or the black pad.
    margin = contract.BOX_MARGIN
    for digit in shown.digits:
        x, y, w, h = digit.box
        edge = [(x + w // 2 + dx, y - margin + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        assert any(_is_box_colour(rgb) for rgb in dashboard.pad_pixels(edge)), (
            digit,
            dashboard.pad_pixels(edge),
        )
    ARTIFACTS.mkdir(exist_ok=True)
    dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-number.png"))
    confirmation = dashboard.submit_correction(8, position=1)
    assert confirmation.startswith("Saved correction #") and "digit 2 of 4" in confirmation, confirmation
    row_id = int(confirmation.split("#")[1].split(":")[0])
    with sqlite3.connect(feedback_db) as conn:
        row = conn.execute(
            "SELECT predicted_digit, actual_digit, is_error, source, image FROM feedback WHERE id = ?",
            (row_id,),
        ).fetchone()
    assert row is not None
    assert row[:4] == (0, 8, 1, "dashboard")
    # The 0's own input (each digit of "2026" is one stroke), not the pad's nor a neighbour's.
    stored = np.frombuffer(row[4], dtype=np.float32).reshape(28, 28)
    alone = [canvas_to_input(render_strokes([stroke])) for stroke in number_strokes("2026")]
    distances = [float(np.abs(stored - each).mean()) for each in alone]
    assert distances[1] < 0.05 and distances[1] < min(distances[0], distances[3]), distances


def test_the_page_marks_its_phases_in_order(dashboard):
    """The page script's marks, which `benchmarks/dashboard_ready.py` reads to say where a load's
    time goes: each once, in the order the page goes through them, the last before the page is
    ready."""
    names = ["doodle:script", "doodle:start", "doodle:connected", "doodle:state", "doodle:shown"]
    marks = dashboard.page.evaluate(
        "(names) => names.map((name) => performance.getEntriesByName(name, 'mark').map((m) => m.startTime))",
        names,
    )
    assert [len(times) for times in marks] == [1] * len(names), dict(zip(names, marks))
    times = [found[0] for found in marks]
    assert times == sorted(times) and times[0] > 0
    assert times[-1] <= dashboard.wait_until_ready()
