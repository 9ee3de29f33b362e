"""The drawing dashboard: draw a digit with the mouse or a finger, see what the MLP reads.

`DoodleApp` holds every widget and all the state (no globals), so each Voilà page gets its
own pad. The strokes are kept as points in the kernel and rendered with Pillow for the model,
so nothing has to be read back from the browser; the browser canvas only shows them. The
drawing goes through `doodle.preprocess.canvas_to_input` and `Model.predict`, the same path as
the API's, and corrections go to the shared `FeedbackStore`.

The notebook is two lines::

    from doodle.dashboard import DoodleApp
    app = DoodleApp()
    app.layout
"""

from __future__ import annotations

import html
import io
import sqlite3
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
from ipycanvas import Canvas, hold_canvas
from PIL import Image, ImageDraw

from doodle.constants import CANVAS_SIZE, IMAGE_SIDE
from doodle.feedback import FeedbackStore
from doodle.model_io import Model, ModelFileError, load_model
from doodle.paths import feedback_db_path, model_path
from doodle.preprocess import BLANK_CANVAS_MESSAGE, BlankCanvasError, canvas_to_input

PEN_WIDTH = 20  # px on the 280 px pad: about 2 px once the digit is scaled to MNIST's 20 px box
INK_COLOUR = "white"  # white on black, like MNIST
BACKGROUND_COLOUR = "black"
INPUT_VIEW_SCALE = 5  # the 28x28 input shown at 140x140, pixelated
FEEDBACK_SOURCE = "dashboard"

PLACEHOLDER_MESSAGE = "draw a digit on the pad"
SAVE_FAILED_MESSAGE = "could not save the correction"
PICK_DIGIT_MESSAGE = "pick the digit you drew"
MODEL_MISSING_MESSAGE = "No model to load: run `make pipeline` (or set DOODLE_MODEL_PATH)"

Point = tuple[float, float]

_STYLE = """
<style>
.doodle-app { font-family: system-ui, sans-serif; }
.doodle-pad canvas, .doodle-pad { cursor: crosshair; touch-action: none; }
.doodle-guess-digit { font-size: 88px; line-height: 96px; font-weight: 700; text-align: center; }
.doodle-guess-text { font-size: 16px; text-align: center; color: #444; min-height: 1.4em; }
.doodle-guess-blank { font-size: 20px; line-height: 96px; color: #a33; text-align: center; }
.doodle-bar-row { display: flex; align-items: center; gap: 6px; height: 20px; font-size: 13px; }
.doodle-bar-digit { width: 1em; text-align: right; font-weight: 600; }
.doodle-bar { flex: 1; height: 12px; background: #eee; border-radius: 3px; overflow: hidden; }
.doodle-bar-fill { height: 100%; background: #8aa4c8; }
.doodle-bar-row.top .doodle-bar-fill { background: #2f6fbf; }
.doodle-prob { width: 4.2em; text-align: right; font-variant-numeric: tabular-nums; }
.doodle-input-view img { image-rendering: pixelated; border: 1px solid #ccc; }
.doodle-muted { color: #666; font-size: 12px; }
</style>
"""


@dataclass(frozen=True)
class Prediction:
    """What the model saw and said for one drawing."""

    digit: int
    probabilities: np.ndarray  # (10,) float32, sums to 1
    model_input: np.ndarray  # (28, 28) float32 in [0, 1]
    drawing_png: bytes  # the pad as rendered for the model, 280x280 grey PNG


def render_strokes(strokes: list[list[Point]], size: int = CANVAS_SIZE, pen_width: int = PEN_WIDTH) -> np.ndarray:
    """Stroke points in pad pixels -> ``(size, size)`` uint8, white round-pen ink on black.

    A dot at every point (round caps and joins, as the browser's ``line_cap``/``line_join``
    "round" draw them) and a line through consecutive points.
    """
    image = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(image)
    radius = pen_width / 2
    for stroke in strokes:
        if len(stroke) > 1:
            pen.line(stroke, fill=255, width=pen_width)
        for x, y in stroke:
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image)


def png_bytes(image: np.ndarray) -> bytes:
    """``(H, W)`` uint8 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def input_view_png(model_input: np.ndarray, scale: int = INPUT_VIEW_SCALE) -> bytes:
    """``(28, 28)`` float in [0, 1] -> PNG of the input enlarged ``scale`` times, hard pixel edges."""
    pixels = (np.clip(model_input, 0.0, 1.0) * 255).round().astype(np.uint8)
    return png_bytes(np.kron(pixels, np.ones((scale, scale), dtype=np.uint8)))


def format_percent(probability: float) -> str:
    return f"{100 * probability:.1f}%"


class DoodleApp:
    """One drawing pad with its prediction, probability bars, input view and correction form.

    ``model``: a loaded `Model` (default: `load_model(model_path())`; when that fails the app
    shows why instead of a pad that cannot predict). ``feedback_store`` defaults to the shared
    store at `feedback_db_path()`, opened on the first correction. ``live``: predict on every
    pen lift, not only on Predict.
    """

    def __init__(
        self,
        model: Model | None = None,
        feedback_store: FeedbackStore | None = None,
        *,
        live: bool = True,
        pen_width: int = PEN_WIDTH,
    ):
        self.model_error: str | None = None
        if model is None:
            try:
                model = load_model(model_path())
            except ModelFileError as error:
                self.model_error = f"{MODEL_MISSING_MESSAGE}. ({error})"
        self.model = model
        self._feedback_store = feedback_store
        self.live = live
        self.pen_width = pen_width
        self.strokes: list[list[Point]] = []
        self._pen_down = False
        self.prediction: Prediction | None = None
        self.predictions_made = 0
        self._build_widgets()
        self._show_idle()

    # ----- widgets -------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        px = f"{CANVAS_SIZE}px"
        self.canvas = Canvas(width=CANVAS_SIZE, height=CANVAS_SIZE, layout=widgets.Layout(width=px, height=px))
        self.canvas.add_class("doodle-pad")
        self.canvas.on_client_ready(self.repaint)
        self.canvas.on_mouse_down(self.handle_mouse_down)
        self.canvas.on_mouse_move(self.handle_mouse_move)
        self.canvas.on_mouse_up(self.handle_mouse_up)
        self.canvas.on_mouse_out(self.handle_mouse_out)
        self.canvas.on_touch_start(self.handle_touch_start)
        self.canvas.on_touch_move(self.handle_touch_move)
        self.canvas.on_touch_end(self.handle_touch_end)
        self.canvas.on_touch_cancel(self.handle_touch_end)

        def button(description: str, css_class: str, icon: str, style: str = "") -> widgets.Button:
            made = widgets.Button(description=description, icon=icon, button_style=style,
                                  layout=widgets.Layout(width="90px"))
            made.add_class(css_class)
            return made

        self.predict_button = button("Predict", "doodle-predict", "magic", "primary")
        self.undo_button = button("Undo", "doodle-undo", "undo")
        self.clear_button = button("Clear", "doodle-clear", "eraser")
        self.predict_button.on_click(lambda _: self.predict())
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_button.on_click(lambda _: self.clear())

        self.guess = widgets.HTML(layout=widgets.Layout(width="200px", height="140px"))
        self.guess.add_class("doodle-guess")
        self.bars = widgets.HTML(layout=widgets.Layout(width="220px"))
        self.bars.add_class("doodle-probs")
        view_px = f"{IMAGE_SIDE * INPUT_VIEW_SCALE}px"
        self.input_view = widgets.Image(format="png", layout=widgets.Layout(width=view_px, height=view_px))
        self.input_view.add_class("doodle-input-view")

        self.actual_picker = widgets.ToggleButtons(
            options=[str(digit) for digit in range(10)],
            value=None,
            style=widgets.ToggleButtonsStyle(button_width="34px"),
        )
        self.actual_picker.add_class("doodle-actual")
        self.submit_button = button("Submit", "doodle-submit", "check")
        self.submit_button.on_click(lambda _: self.submit_feedback())
        self.feedback_status = widgets.HTML()
        self.feedback_status.add_class("doodle-feedback-status")

        if self.model is None:
            for disabled in (self.predict_button, self.submit_button):
                disabled.disabled = True
            self.live = False
        version = self.model.version if self.model is not None else "none"
        header = widgets.HTML(
            _STYLE
            + "<h2 style='margin:4px 0'>Doodle Digits</h2>"
            + "<div class='doodle-muted'>Draw one digit 0-9 large in the black square."
            + f" A NumPy MLP reads it. Model {html.escape(version)}.</div>"
            + (f"<div class='doodle-guess-blank'>{html.escape(self.model_error)}</div>" if self.model_error else "")
        )
        pad_column = widgets.VBox(
            [self.canvas, widgets.HBox([self.predict_button, self.undo_button, self.clear_button])]
        )
        seen = widgets.VBox(
            [widgets.HTML("<div class='doodle-muted'>What the model saw (28x28)</div>"), self.input_view]
        )
        result_column = widgets.VBox([self.guess, seen], layout=widgets.Layout(margin="0 0 0 16px"))
        bars_column = widgets.VBox(
            [widgets.HTML("<div class='doodle-muted'>Probabilities</div>"), self.bars],
            layout=widgets.Layout(margin="0 0 0 16px"),
        )
        feedback_row = widgets.VBox(
            [
                widgets.HTML("<b>Wrong?</b> <span class='doodle-muted'>Pick the digit you drew and submit it:"
                             " it is saved to improve the next model.</span>"),
                widgets.HBox([self.actual_picker, self.submit_button]),
                self.feedback_status,
            ]
        )
        self.layout = widgets.VBox(
            [header, widgets.HBox([pad_column, result_column, bars_column]), feedback_row]
        )
        self.layout.layout.padding = "4px 8px"
        self.layout.add_class("doodle-app")

    # ----- the pad -------------------------------------------------------------------------

    def repaint(self) -> None:
        """Paint the background and every stroke (page connect, undo, clear)."""
        with hold_canvas():
            self.canvas.clear()
            self.canvas.fill_style = BACKGROUND_COLOUR
            self.canvas.fill_rect(0, 0, CANVAS_SIZE, CANVAS_SIZE)
            self._set_pen()
            for stroke in self.strokes:
                self._paint_stroke(stroke)

    def _set_pen(self) -> None:
        self.canvas.stroke_style = INK_COLOUR
        self.canvas.fill_style = INK_COLOUR
        self.canvas.line_width = self.pen_width
        self.canvas.line_cap = "round"
        self.canvas.line_join = "round"

    def _paint_stroke(self, stroke: list[Point]) -> None:
        if len(stroke) == 1:
            self.canvas.fill_circle(stroke[0][0], stroke[0][1], self.pen_width / 2)
        else:
            self.canvas.stroke_lines(stroke)

    def handle_mouse_down(self, x: float, y: float) -> None:
        self._pen_down = True
        self.strokes.append([(float(x), float(y))])
        with hold_canvas():
            self._set_pen()
            self._paint_stroke(self.strokes[-1])

    def handle_mouse_move(self, x: float, y: float) -> None:
        if not self._pen_down:
            return
        stroke = self.strokes[-1]
        last = stroke[-1]
        stroke.append((float(x), float(y)))
        with hold_canvas():
            self._set_pen()
            self.canvas.stroke_line(last[0], last[1], float(x), float(y))

    def handle_mouse_up(self, x: float | None = None, y: float | None = None) -> None:
        if not self._pen_down:
            return
        self._pen_down = False
        if self.live:
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
        if self.strokes:
            self.strokes.pop()
        self._pen_down = False
        self.repaint()
        if self.live and self.strokes:
            self.predict()
        else:
            self._show_idle()

    def clear(self) -> None:
        """Empty the pad and the result."""
        self.strokes = []
        self._pen_down = False
        self.repaint()
        self._show_idle()
        self.feedback_status.value = ""

    # ----- prediction ----------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The pad as the model gets it: ``(280, 280)`` uint8, white ink on black."""
        return render_strokes(self.strokes, CANVAS_SIZE, self.pen_width)

    def predict(self) -> Prediction | None:
        """Read the drawing; show and return the prediction, or ``None`` (and the blank-canvas
        message) when there is no digit."""
        if self.model is None:
            return None
        drawing = self.render()
        try:
            model_input = canvas_to_input(drawing)
        except BlankCanvasError as error:
            self.prediction = None
            self._show_blank(str(error))
            return None
        digits, probabilities = self.model.predict(model_input[None])
        self.prediction = Prediction(
            digit=int(digits[0]),
            probabilities=probabilities[0],
            model_input=model_input,
            drawing_png=png_bytes(drawing),
        )
        self._show_prediction(self.prediction)
        return self.prediction

    def _show_prediction(self, prediction: Prediction) -> None:
        self.predictions_made += 1
        confidence = float(prediction.probabilities[prediction.digit])
        # The guess goes last: once it is on the page, the bars and the input view are too.
        self.bars.value = self._bars_html(prediction.probabilities, prediction.digit)
        self.input_view.value = input_view_png(prediction.model_input)
        self.feedback_status.value = ""
        # Unsure: both top digits, "9 or 3?" (the answer first); the model still answers.
        second = self.model.top_two(prediction.probabilities[None])
        answer = f"{prediction.digit} or {second.runner_ups[0]}?" if second.unsure[0] else f"{prediction.digit}"
        self.guess.value = self._result_html(
            "guess",
            f"<div class='doodle-guess-digit'>{answer}</div>"
            f"<div class='doodle-guess-text'>confidence {format_percent(confidence)}</div>",
        )

    def _show_blank(self, message: str) -> None:
        self.predictions_made += 1
        self.bars.value = self._bars_html(None, None)
        self.input_view.value = input_view_png(np.zeros((28, 28), np.float32))
        blank = f"<div class='doodle-guess-blank'>{html.escape(message)}</div>"
        self.guess.value = self._result_html("blank", blank)

    def _show_idle(self) -> None:
        self.prediction = None
        self.bars.value = self._bars_html(None, None)
        self.input_view.value = input_view_png(np.zeros((28, 28), np.float32))
        self.guess.value = self._result_html(
            "idle",
            "<div class='doodle-guess-digit' style='color:#ccc'>?</div>"
            f"<div class='doodle-guess-text'>{PLACEHOLDER_MESSAGE}</div>",
        )

    def _result_html(self, state: str, body: str) -> str:
        """``data-state`` and ``data-seq`` (predictions shown so far) let a browser wait for
        a new answer rather than sleep."""
        return f"<div class='doodle-result' data-state='{state}' data-seq='{self.predictions_made}'>{body}</div>"

    def _bars_html(self, probabilities: np.ndarray | None, top: int | None) -> str:
        """Ten rows of digit, bar and percentage (empty when there is no prediction)."""
        rows = []
        for digit in range(10):
            p = 0.0 if probabilities is None else float(probabilities[digit])
            shown = "" if probabilities is None else format_percent(p)
            css = "doodle-bar-row top" if digit == top else "doodle-bar-row"
            rows.append(
                f"<div class='{css}' data-digit='{digit}'><span class='doodle-bar-digit'>{digit}</span>"
                f"<div class='doodle-bar'><div class='doodle-bar-fill' style='width:{100 * p:.1f}%'></div></div>"
                f"<span class='doodle-prob'>{shown}</span></div>"
            )
        return f"<div class='doodle-bars' data-seq='{self.predictions_made}'>{''.join(rows)}</div>"

    # ----- corrections ---------------------------------------------------------------------

    @property
    def feedback_store(self) -> FeedbackStore:
        if self._feedback_store is None:
            self._feedback_store = FeedbackStore(feedback_db_path())
        return self._feedback_store

    def submit_feedback(self, actual_digit: int | None = None) -> int | None:
        """Store the current drawing with the model's guess and the digit the person says they
        drew (``actual_digit``, default: the picker's value). Returns the row id, or ``None``
        with a message saying what is missing."""
        if actual_digit is None and self.actual_picker.value is not None:
            actual_digit = int(self.actual_picker.value)
        if actual_digit is None:
            self._feedback_message(PICK_DIGIT_MESSAGE, ok=False)
            return None
        if self.model is None:
            self._feedback_message(MODEL_MISSING_MESSAGE, ok=False)
            return None
        # Re-read the pad so the stored row is the drawing on screen, even if it changed since
        # the last prediction.
        prediction = self.predict()
        if prediction is None:
            self._feedback_message(BLANK_CANVAS_MESSAGE, ok=False)
            return None
        try:
            row_id = self.feedback_store.add(
                prediction.model_input,
                prediction.digit,
                int(actual_digit),
                source=FEEDBACK_SOURCE,
                model_version=self.model.version,
                drawing_png=prediction.drawing_png,
            )
        except (sqlite3.Error, OSError) as error:
            # A widget callback's exception would only reach the server log: say it on the page.
            self._feedback_message(f"{SAVE_FAILED_MESSAGE}: {error}", ok=False)
            return None
        said = prediction.digit
        verdict = "the model was right" if said == actual_digit else f"the model said {said}"
        self._feedback_message(f"Saved correction #{row_id}: you drew {actual_digit}, {verdict}. Thank you!", ok=True)
        self.actual_picker.value = None
        return row_id

    def _feedback_message(self, text: str, *, ok: bool) -> None:
        colour = "#276b2e" if ok else "#a33"
        state = "saved" if ok else "error"
        self.feedback_status.value = (
            f"<span class='doodle-feedback' data-state='{state}' style='color:{colour}'>"
            f"{html.escape(text)}</span>"
        )

