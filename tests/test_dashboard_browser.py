"""The dashboard end to end: Voilà serving the notebook, strokes drawn with the mouse in
headless Chromium, answers read off the page, a correction read back from SQLite."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from doodle.dashboard_driver import CHROMIUM_PATH, HAND_DRAWN_DIGITS, DashboardPage, VoilaServer, launch_chromium
from doodle.model_io import ModelFileError, load_model, save_model
from doodle.paths import ROOT, model_path
from doodle.preprocess import BLANK_CANVAS_MESSAGE

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def feedback_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feedback") / "feedback.sqlite"


@pytest.fixture(scope="module")
def voila(tmp_path_factory, feedback_db):
    try:
        load_model(model_path())
    except ModelFileError as error:
        pytest.skip(f"the dashboard needs a trained model (run `make pipeline`): {error}")
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH} (make system-deps)")
    workdir = tmp_path_factory.mktemp("voila")
    env = {"DOODLE_FEEDBACK_DB": str(feedback_db), "JUPYTER_RUNTIME_DIR": str(workdir / "runtime")}
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
    dashboard.page.wait_for_function(
        "() => { const c = document.querySelector('canvas.doodle-pad');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 0; i < d.length; i += 4) { if (d[i] > 127) return false; } return true; }"
    )
    assert dashboard.pad_ink_fraction() == 0.0


def test_undo_removes_the_last_stroke(dashboard):
    dashboard.draw(HAND_DRAWN_DIGITS[4])
    with_both = dashboard.pad_ink_fraction()
    seq = dashboard.read().seq
    dashboard.page.locator(".doodle-undo").click()
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
    try:
        trained = load_model(model_path())
    except ModelFileError as error:
        pytest.skip(f"the dashboard needs a trained model (run `make pipeline`): {error}")
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH} (make system-deps)")
    metadata = {key: value for key, value in trained.metadata.items() if key not in {"normalization", "temperature"}}
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
    }
    with VoilaServer(tmp_path / "voila.log", env=env) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 640})
        try:
            dashboard = DashboardPage(page, server.url).open()
            dashboard.draw(HAND_DRAWN_DIGITS[7])
            shown = dashboard.predict()
            text = page.locator(".doodle-guess-digit").text_content().strip()
        finally:
            page.close()
    match = re.fullmatch(r"(\d) or (\d)\?", text)
    assert match, text
    answer, runner_up = int(match.group(1)), int(match.group(2))
    assert answer == shown.digit != runner_up
    # The bars are rounded to 0.1 %: the runner-up's bar is the highest of the others (ties allowed).
    others = [p for digit, p in enumerate(shown.probabilities) if digit != answer]
    assert shown.probabilities[runner_up] == max(others)
