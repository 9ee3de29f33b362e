"""The drawing dashboard: draw a digit with the mouse or a finger, see what the MLP reads.

Four parts: `doodle.canvas.drawing.Drawing` keeps the strokes (no widgets), `doodle.app.dashboard_view`
builds what the page shows (HTML and PNG from plain values), `doodle.app.dashboard_widgets` lays out
the widgets and paints the pad, and `DoodleApp` here is the controller: it turns ipycanvas
events into strokes, watches for a new model, runs the model (`doodle.reading.explain`: the guess, the
runner-up, the attribution map and the most active hidden units), tells the widgets what to
show and stores corrections. Every widget and all state belong to one `DoodleApp` (no globals),
so each Voilà page gets its own pad. The drawing goes through `doodle.canvas.preprocess.canvas_to_input` and
`Model.predict`, the same path as the API's, and corrections go to the shared `FeedbackStore`.

When the pad holds more than one digit it reads them as a number on its own
(`doodle.reading.number_reading`, the reading of `/predict/number`): each digit's box is painted on the pad,
the number goes where the single guess would, and each digit is listed with its confidence and
its 28x28 input; a correction then names the digit it is for and stores that digit's own input.

The notebook is two lines::

    from doodle.app.dashboard import DoodleApp
    app = DoodleApp()
    app.layout
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from doodle.app import dashboard_view as view
from doodle.app.dashboard_widgets import DashboardWidgets
from doodle.canvas.drawing import PEN_WIDTH, Drawing, Point, Stroke
from doodle.canvas.preprocess import BLANK_CANVAS_MESSAGE, BlankCanvasError, canvas_to_input
from doodle.constants import CANVAS_SIZE
from doodle.loop.feedback import FeedbackDatabaseError, FeedbackNotStored, FeedbackStore
from doodle.loop.feedback_store import open_store
from doodle.loop.model_watch import ModelWatcher, file_fingerprint
from doodle.model.model_io import Model, ModelFileError, load_model, top_two
from doodle.model.path_io import read_views
from doodle.paths import feedback_db_path, feedback_url, model_path
from doodle.reading.explain import Explanation, explain, unit_pattern
from doodle.reading.number_reading import NumberReading, TooManyDigitsError, read_number

__all__ = ["CANVAS_SIZE", "PEN_WIDTH", "DoodleApp", "NumberReading", "Prediction"]

FEEDBACK_SOURCE = "dashboard"
TOP_UNITS = 8  # first-layer units shown for each drawing
# How often a page looks for a newly promoted model in models/ (see doodle.loop.model_watch).
MODEL_POLL_SECONDS = 2.0

SAVE_FAILED_MESSAGE = "could not save the correction"
PICK_DIGIT_MESSAGE = "pick the digit you drew"
PICK_POSITION_MESSAGE = "pick which digit of the number the correction is for"
MODEL_MISSING_MESSAGE = "No model to load: run `make pipeline` (or set DOODLE_MODEL_PATH)"


@dataclass(frozen=True)
class Prediction:
    """What the model saw and said for one drawing."""

    digit: int
    probabilities: np.ndarray  # (10,) float32, sums to 1
    model_input: np.ndarray  # (28, 28) float32 in [0, 1]
    drawing_png: bytes  # the pad as rendered for the model, 280x280 grey PNG
    explanation: Explanation  # runner-up, attribution map, most active first-layer units
    model_version: str | None = None  # the model that made this prediction
    # The views read: ("pixels",), or ("pixels", "path") when the model has a path model and the
    # answer pools both (then digit, probabilities, runner_up and unsure are the pool's).
    views: tuple[str, ...] = ("pixels",)
    runner_up: int | None = None
    unsure: bool | None = None


class DoodleApp:
    """One drawing pad with its prediction, probability bars, input view and correction form.

    ``model``: a loaded `Model` (default: `load_model(model_path())`; when that fails the app
    shows why instead of a pad that cannot predict). ``feedback_store`` defaults to the shared
    store (`DOODLE_FEEDBACK_URL`, else `feedback_db_path()`), opened on the first correction. ``live``: predict on every
    pen lift, not only on Predict. With the default model, a background thread polls its files
    every ``model_poll_seconds`` (0: never) and the next prediction uses a newly promoted model
    once it has loaded and checked (`doodle.loop.model_watch`); the page shows the version in use.
    The widgets are ``view`` (`DashboardWidgets`); ``layout`` is the page.
    """

    def __init__(
        self,
        model: Model | None = None,
        feedback_store: FeedbackStore | None = None,
        *,
        live: bool = True,
        pen_width: int = PEN_WIDTH,
        model_poll_seconds: float = MODEL_POLL_SECONDS,
    ):
        self.model_error: str | None = None
        self._watcher: ModelWatcher | None = None
        self._stop_polling = threading.Event()
        if model is None:
            source = model_path()
            self._watcher = ModelWatcher(lambda: load_model(source), lambda: file_fingerprint(source))
            try:
                model = self._watcher.load_initial()
            except ModelFileError as error:
                self.model_error = f"{MODEL_MISSING_MESSAGE}. ({error})"
            if model is not None and model_poll_seconds > 0:
                threading.Thread(
                    target=self._poll_model, args=(model_poll_seconds,), name="doodle-model-poll", daemon=True
                ).start()
        self._model = model
        self._shown_version = model.version if model is not None else None
        self._feedback_store = feedback_store
        self.live = live and model is not None
        self.drawing = Drawing(CANVAS_SIZE, pen_width)
        self.prediction: Prediction | None = None
        self.number: NumberReading | None = None  # the last reading when it was several digits
        self._unit_pngs: dict[int, bytes] = {}  # weight patterns do not change: drawn once per unit
        self.view = DashboardWidgets(
            model.version if model is not None else "none", self.model_error, can_predict=model is not None
        )
        self._connect()
        self._show_idle()

    @property
    def model(self) -> Model | None:
        """The model the next prediction uses: the newest one that loaded and checked."""
        return self._watcher.model if self._watcher is not None else self._model

    def _poll_model(self, interval_s: float) -> None:
        # Only swaps the watcher's reference; the page's version label changes with the next
        # prediction, on the kernel's own thread.
        while not self._stop_polling.wait(interval_s):
            self._watcher.poll()

    def stop_polling(self) -> None:
        """Stop looking for new models (the thread also ends with the kernel)."""
        self._stop_polling.set()

    @property
    def layout(self) -> widgets.VBox:
        """The page: every widget of this app."""
        return self.view.layout

    @property
    def strokes(self) -> list[Stroke]:
        return self.drawing.strokes

    @property
    def pen_width(self) -> int:
        return self.drawing.pen_width

    @pen_width.setter
    def pen_width(self, width: int) -> None:
        self.drawing.pen_width = width

    def _connect(self) -> None:
        """The pad's pointer events and the buttons, to this controller."""
        canvas = self.view.canvas
        canvas.on_client_ready(self.repaint)
        canvas.on_mouse_down(self.handle_mouse_down)
        canvas.on_mouse_move(self.handle_mouse_move)
        canvas.on_mouse_up(self.handle_mouse_up)
        canvas.on_mouse_out(self.handle_mouse_out)
        canvas.on_touch_start(self.handle_touch_start)
        canvas.on_touch_move(self.handle_touch_move)
        canvas.on_touch_end(self.handle_touch_end)
        canvas.on_touch_cancel(self.handle_touch_end)
        self.view.predict_button.on_click(lambda _: self.predict())
        self.view.undo_button.on_click(lambda _: self.undo())
        self.view.clear_button.on_click(lambda _: self.clear())
        self.view.submit_button.on_click(lambda _: self.submit_feedback())

    # ----- the pad: events -> Drawing -> canvas --------------------------------------------

    def repaint(self) -> None:
        """Paint the background and every stroke (page connect, undo, clear)."""
        self.view.repaint(self.drawing.strokes, self.drawing.pen_width)

    def handle_mouse_down(self, x: float, y: float) -> None:
        self.view.paint_stroke_start(self.drawing.pen_down(x, y), self.drawing.pen_width)

    def handle_mouse_move(self, x: float, y: float) -> None:
        segment = self.drawing.pen_move(x, y)
        if segment is not None:
            self.view.paint_segment(*segment, self.drawing.pen_width)

    def handle_mouse_up(self, x: float | None = None, y: float | None = None) -> None:
        if self.drawing.pen_up() and self.live:
            self.predict()

    def handle_mouse_out(self, x: float, y: float) -> None:
        """Leaving the pad with the button held ends the stroke there."""
        self.handle_mouse_up(x, y)

    def handle_touch_start(self, touches: list[Point]) -> None:
        if touches:
            self.handle_mouse_down(*touches[0])

    def handle_touch_move(self, touches: list[Point]) -> None:
        if touches:
            self.handle_mouse_move(*touches[0])

    def handle_touch_end(self, touches: list[Point]) -> None:
        self.handle_mouse_up()

    def undo(self) -> None:
        """Remove the last stroke, then re-predict (live) or reset the result."""
        self.drawing.undo()
        self.repaint()
        if self.live and not self.drawing.is_empty:
            self.predict()
        else:
            self._show_idle()

    def clear(self) -> None:
        """Empty the pad and the result."""
        self.drawing.clear()
        self.repaint()
        self._show_idle()
        self.view.feedback_status.value = ""

    # ----- prediction ----------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The pad as the model gets it: ``(280, 280)`` uint8, white ink on black."""
        return self.drawing.render()

    def predict(self) -> Prediction | NumberReading | None:
        """Read the drawing; show and return the prediction (one digit), the number reading
        (more than one digit), or ``None`` (and the message saying why) when nothing can be read."""
        model = self.model  # read once: a switch meanwhile does not mix versions
        if model is None:
            return None
        if model.version != self._shown_version:
            self._shown_version = model.version
            self._unit_pngs.clear()  # another model's weight patterns
            self.view.show_version(model.version)
        drawing = self.render()
        self.prediction = None
        self.number = None
        try:
            model_input = canvas_to_input(drawing)
        except BlankCanvasError as error:
            self._unpaint_boxes()
            self.view.show_blank(str(error))
            return None
        try:
            reading = read_number(model, drawing, self.drawing.strokes, pen_width=self.drawing.pen_width)
        except TooManyDigitsError as error:
            self._unpaint_boxes()
            self.view.show_blank(str(error))
            return None
        except BlankCanvasError:
            reading = None  # a piece too faint to read alone: the drawing is read as one digit
        if reading is not None and len(reading) > 1:
            self.number = reading
            self._unpaint_boxes()
            self.view.paint_boxes(reading, self.drawing.pen_width)
            self.view.show_number(reading)
            return reading
        self._unpaint_boxes()
        explanation = explain(model, model_input, top_units=TOP_UNITS)
        # The pen's path too, when the model has a path model: the pad has the strokes.
        strokes = [np.asarray(stroke, dtype=np.float64) for stroke in self.drawing.strokes]
        reading = read_views(model, model_input.reshape(1, -1), [strokes])
        both = top_two(reading.probabilities, model.unsure_margin)
        self.prediction = Prediction(
            digit=int(both.digits[0]),
            probabilities=reading.probabilities[0].astype(np.float32),
            model_input=model_input,
            drawing_png=view.png_bytes(drawing),
            explanation=explanation,
            model_version=model.version,
            views=tuple(reading.views),
            runner_up=int(both.runner_ups[0]),
            unsure=bool(both.unsure[0]),
        )
        self._show_prediction(self.prediction, model)
        return self.prediction

    def _unpaint_boxes(self) -> None:
        if self.view.boxes_painted:
            self.repaint()

    def _unit_png(self, model: Model, unit: int) -> bytes:
        if unit not in self._unit_pngs:
            self._unit_pngs[unit] = view.unit_png(unit_pattern(model, unit))
        return self._unit_pngs[unit]

    def _show_prediction(self, prediction: Prediction, model: Model) -> None:
        why = prediction.explanation
        units = [int(unit) for unit in why.units]
        # Unsure: both top digits, "9 or 3?" (the answer first); the model still answers.
        digit = prediction.digit
        runner_up = why.runner_up if prediction.runner_up is None else prediction.runner_up
        unsure = why.unsure if prediction.unsure is None else prediction.unsure
        answer = f"{digit} or {runner_up}?" if unsure else f"{digit}"
        self.view.show_digit(
            answer,
            prediction.probabilities,
            prediction.model_input,
            view.attribution_png(prediction.model_input, why.attribution),
            (why.digit, why.runner_up),
            (units, [float(a) for a in why.activations], [self._unit_png(model, unit) for unit in units]),
            top=digit,
            views=prediction.views,
        )

    def _show_idle(self) -> None:
        self.prediction = None
        self.number = None
        self.view.show_idle()

    # ----- corrections ---------------------------------------------------------------------

    @property
    def feedback_store(self) -> FeedbackStore:
        if self._feedback_store is None:
            self._feedback_store = open_store(feedback_url(), feedback_db_path())
        return self._feedback_store

    def submit_feedback(self, actual_digit: int | None = None, position: int | None = None) -> int | None:
        """Store the current drawing with the model's guess and the digit the person says they
        drew (``actual_digit``, default: the picker's value). When the pad holds a number,
        ``position`` (0-based, left to right; default: the position picker's value) says which
        digit: that digit's own 28x28 input, its crop of the pad and its own strokes are stored
        (a single digit: the pad's strokes), so the path model can learn from the correction too.
        Returns the row id, or ``None`` with a message saying what is missing."""
        if actual_digit is None and self.view.actual_picker.value is not None:
            actual_digit = int(self.view.actual_picker.value)
        if actual_digit is None:
            self.view.show_feedback(PICK_DIGIT_MESSAGE, ok=False)
            return None
        if self.model is None:
            self.view.show_feedback(MODEL_MISSING_MESSAGE, ok=False)
            return None
        if position is None and self.view.position_picker.value is not None:
            position = int(self.view.position_picker.value)
        # Re-read the pad so the stored row is the drawing on screen, even if it changed since
        # the last prediction.
        reading = self.predict()
        if reading is None:
            self.view.show_feedback(BLANK_CANVAS_MESSAGE, ok=False)
            return None
        if isinstance(reading, NumberReading):
            if position is None or not 0 <= position < len(reading):
                self.view.show_feedback(PICK_POSITION_MESSAGE, ok=False)
                return None
            digit = reading.digits[position]
            said, model_input, drawing_png = digit.digit, digit.model_input, view.png_bytes(digit.canvas)
            strokes = digit.strokes
            which = f"digit {position + 1} of {len(reading)}: "
        else:
            said, model_input, drawing_png = reading.digit, reading.model_input, reading.drawing_png
            strokes = [stroke for stroke in self.drawing.strokes if len(stroke)] or None
            which = ""
        try:
            row_id = self.feedback_store.add(
                model_input,
                said,
                int(actual_digit),
                source=FEEDBACK_SOURCE,
                model_version=reading.model_version,
                drawing_png=drawing_png,
                strokes=strokes,
            )
        except (sqlite3.Error, OSError, FeedbackDatabaseError, FeedbackNotStored) as error:
            # A widget callback's exception would only reach the server log: say it on the page.
            self.view.show_feedback(f"{SAVE_FAILED_MESSAGE}: {error}", ok=False)
            return None
        verdict = "the model was right" if said == actual_digit else f"the model said {said}"
        self.view.show_feedback(
            f"Saved correction #{row_id}: {which}you drew {actual_digit}, {verdict}. Thank you!", ok=True
        )
        self.view.reset_pickers()
        return row_id
