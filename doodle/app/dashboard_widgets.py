"""The drawing app's widgets: the page's layout, the pad painted from strokes, and what each answer
shows (a digit, a number, a blank pad, a correction's outcome).

`DashboardWidgets` holds no model and no drawing: `doodle.app.dashboard.DoodleApp`, the controller,
wires its buttons and pad events, decides what to show and hands it plain values; the HTML and
PNG come from `doodle.app.dashboard_view`, the page's CSS classes from `doodle.app.dashboard_contract`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
from ipycanvas import Canvas, hold_canvas

from doodle.app import dashboard_contract as page
from doodle.app import dashboard_view as view
from doodle.canvas.drawing import Point, Stroke
from doodle.constants import CANVAS_SIZE, IMAGE_SIDE
from doodle.reading.number_reading import NumberReading

INK_COLOUR = "white"  # white on black, like MNIST
BACKGROUND_COLOUR = "black"


def version_html(version: str) -> str:
    """The "Model in use" label, its version also in ``data-version`` for the page's scripts."""
    return (
        f"<span class='doodle-muted doodle-model-version' data-version='{html.escape(version)}'>"
        f"Model in use: {html.escape(version)}</span>"
    )


class DashboardWidgets:
    """One page's widgets, laid out in ``layout``. ``version`` and ``model_error`` fill the header;
    ``can_predict`` False disables Predict and Submit (no model). ``predictions_made`` numbers
    every answer shown, so the page (and its tests) can tell a new answer from the last one."""

    def __init__(self, version: str, model_error: str | None, *, can_predict: bool) -> None:
        self.predictions_made = 0
        self.boxes_painted = False
        px = f"{CANVAS_SIZE}px"
        self.canvas = Canvas(
            width=CANVAS_SIZE, height=CANVAS_SIZE, layout=widgets.Layout(width=px, height=px)
        )
        self.canvas.add_class(page.PAD)

        def button(description: str, css_class: str, icon: str, style: str = "") -> widgets.Button:
            made = widgets.Button(
                description=description, icon=icon, button_style=style, layout=widgets.Layout(width="90px")
            )
            made.add_class(css_class)
            return made

        self.predict_button = button("Predict", page.PREDICT, "magic", "primary")
        self.undo_button = button("Undo", page.UNDO, "undo")
        self.clear_button = button("Clear", page.CLEAR, "eraser")

        self.guess = widgets.HTML(layout=widgets.Layout(width="200px", height="140px"))
        self.guess.add_class(page.GUESS)
        self.bars = widgets.HTML(layout=widgets.Layout(width="220px"))
        self.bars.add_class(page.PROBS)
        view_px = f"{IMAGE_SIDE * view.INPUT_VIEW_SCALE}px"
        self.input_view = widgets.Image(format="png", layout=widgets.Layout(width=view_px, height=view_px))
        self.input_view.add_class(page.INPUT_VIEW)
        self.attribution_view = widgets.HTML()
        self.units_view = widgets.HTML(layout=widgets.Layout(max_width="380px"))

        self.actual_picker = widgets.ToggleButtons(
            options=[str(digit) for digit in range(10)],
            value=None,
            style=widgets.ToggleButtonsStyle(button_width="34px"),
        )
        self.actual_picker.add_class(page.ACTUAL)
        self.submit_button = button("Submit", page.SUBMIT, "check")
        self.feedback_status = widgets.HTML()
        self.feedback_status.add_class(page.FEEDBACK_STATUS)
        self.number_view = widgets.HTML()
        self.number_view.add_class(page.NUMBER_VIEW)
        # Which digit of a number a correction is for: shown only while a number is read.
        self.position_picker = widgets.ToggleButtons(
            options=[], value=None, style=widgets.ToggleButtonsStyle(button_width="64px")
        )
        self.position_picker.add_class(page.NUMBER_POSITION)
        self.position_row = widgets.HBox(
            [widgets.HTML("<span class='doodle-muted'>Which digit:</span>"), self.position_picker],
            layout=widgets.Layout(display="none", align_items="center"),
        )

        if not can_predict:
            for disabled in (self.predict_button, self.submit_button):
                disabled.disabled = True
        self.version_label = widgets.HTML(version_html(version))
        header = widgets.VBox([widgets.HTML(view.header_html(version, model_error)), self.version_label])
        pad_column = widgets.VBox(
            [self.canvas, widgets.HBox([self.predict_button, self.undo_button, self.clear_button])]
        )

        def titled(title: str, *children: widgets.Widget) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<div class='doodle-muted'>{title}</div>"), *children])

        # Rows wrap: on a phone-width page every column stacks under the previous one.
        def row(*children: widgets.Widget) -> widgets.HBox:
            made = widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap"))
            made.add_class("doodle-row")
            return made

        answer_row = row(pad_column, self.guess, titled("Probabilities", self.bars))
        number_row = row(self.number_view)
        why_row = row(
            titled("What the model saw (28x28)", self.input_view),
            titled("Why this digit", self.attribution_view),
            titled("What the most active hidden units look for (weights; activation)", self.units_view),
        )
        feedback_row = widgets.VBox(
            [
                widgets.HTML(
                    "<b>Wrong?</b> <span class='doodle-muted'>Pick the digit you drew and submit it:"
                    " it is saved to improve the next model.</span>"
                ),
                self.position_row,
                widgets.HBox([self.actual_picker, self.submit_button]),
                self.feedback_status,
            ]
        )
        self.layout = widgets.VBox([header, answer_row, number_row, why_row, feedback_row])
        self.layout.layout.padding = "4px 8px"
        self.layout.add_class(page.APP)

    # ----- the pad ---------------------------------------------------------------------------

    def repaint(self, strokes: Sequence[Stroke], pen_width: float) -> None:
        """Paint the background and every stroke (page connect, undo, clear)."""
        with hold_canvas():
            self.canvas.clear()
            self.canvas.fill_style = BACKGROUND_COLOUR
            self.canvas.fill_rect(0, 0, CANVAS_SIZE, CANVAS_SIZE)
            self._set_pen(pen_width)
            for stroke in strokes:
                self._paint_stroke(stroke, pen_width)
        self.boxes_painted = False

    def paint_stroke_start(self, stroke: Stroke, pen_width: float) -> None:
        """A new stroke's first point: a dot until the pen moves."""
        with hold_canvas():
            self._set_pen(pen_width)
            self._paint_stroke(stroke, pen_width)

    def paint_segment(self, start: Point, end: Point, pen_width: float) -> None:
        (xa, ya), (xb, yb) = start, end
        with hold_canvas():
            self._set_pen(pen_width)
            self.canvas.stroke_line(xa, ya, xb, yb)

    def paint_boxes(self, reading: NumberReading, pen_width: float) -> None:
        """Each digit's box around its ink, over the strokes."""
        margin = page.BOX_MARGIN
        with hold_canvas():
            self.canvas.stroke_style = page.BOX_COLOUR
            self.canvas.line_width = 2
            for digit in reading.digits:
                x, y, w, h = digit.box
                self.canvas.stroke_rect(x - margin, y - margin, w + 2 * margin, h + 2 * margin)
            self._set_pen(pen_width)
        self.boxes_painted = True

    def _set_pen(self, pen_width: float) -> None:
        self.canvas.stroke_style = INK_COLOUR
        self.canvas.fill_style = INK_COLOUR
        self.canvas.line_width = pen_width
        self.canvas.line_cap = "round"
        self.canvas.line_join = "round"

    def _paint_stroke(self, stroke: Stroke, pen_width: float) -> None:
        if len(stroke) == 1:
            self.canvas.fill_circle(stroke[0][0], stroke[0][1], pen_width / 2)
        else:
            self.canvas.stroke_lines(stroke)

    # ----- answers ---------------------------------------------------------------------------

    def show_version(self, version: str) -> None:
        self.version_label.value = version_html(version)

    def show_number(self, reading: NumberReading) -> None:
        """A number read: its digits' boxes are painted by the caller first (`paint_boxes`)."""
        self.predictions_made += 1
        seq = self.predictions_made
        self.bars.value = view.bars_html(None, None, seq)
        self.input_view.value = view.blank_input_png()
        self.attribution_view.value = view.attribution_html(view.blank_attribution_png(), seq)
        self.units_view.value = view.units_html([], [], [], seq)
        digits = [
            (d.digit, d.confidence, d.box, view.input_view_png(d.model_input, view.NUMBER_VIEW_SCALE))
            for d in reading.digits
        ]
        self.number_view.value = view.number_html(reading.number, digits, seq, reading.reason)
        options = [(f"#{index + 1}: {d.digit}", index) for index, d in enumerate(reading.digits)]
        if list(self.position_picker.options) != options:
            self.position_picker.options = options
            self.position_picker.value = None
        self.position_row.layout.display = "flex"
        self.feedback_status.value = ""
        self.guess.value = view.number_guess_html(
            reading.number, reading.lowest_confidence, seq, reading.views
        )

    def _hide_number(self, seq: int) -> None:
        self.number_view.value = view.number_html("", [], seq)
        self.position_row.layout.display = "none"
        if self.position_picker.options:
            self.position_picker.options = []
            self.position_picker.value = None

    def show_digit(
        self,
        answer: str,
        probabilities: np.ndarray,
        model_input: np.ndarray,
        explanation_png: bytes,
        guess: tuple[int, int],
        units: tuple[list[int], list[float], list[bytes]],
        *,
        top: int | None = None,
        views: tuple[str, ...] = ("pixels",),
    ) -> None:
        """One digit read: ``answer`` as the guess shows it ("7", or "9 or 3?" when unsure),
        ``probabilities`` ``(10,)``, what the model saw, the attribution PNG for ``guess``
        (digit, runner-up), and the most active units (numbers, activations, weight PNGs).
        ``top``: the answer's digit when it is not the pixel model's (both views pooled);
        ``views``: the views read, said under the guess."""
        self.predictions_made += 1
        seq = self.predictions_made
        digit, runner_up = guess
        answer_digit = digit if top is None else top
        # The guess goes last: once it is on the page, the other views are too.
        self.bars.value = view.bars_html(probabilities, answer_digit, seq)
        self.input_view.value = view.input_view_png(model_input)
        self.attribution_view.value = view.attribution_html(explanation_png, seq, digit, runner_up)
        self.units_view.value = view.units_html(*units, seq)
        self._hide_number(seq)
        self.feedback_status.value = ""
        self.guess.value = view.guess_html(answer, float(probabilities[answer_digit]), seq, views)

    def _show_empty_views(self) -> None:
        seq = self.predictions_made
        self.bars.value = view.bars_html(None, None, seq)
        self.input_view.value = view.blank_input_png()
        self.attribution_view.value = view.attribution_html(view.blank_attribution_png(), seq)
        self.units_view.value = view.units_html([], [], [], seq)
        self._hide_number(seq)

    def show_blank(self, message: str) -> None:
        """Nothing to read, and why."""
        self.predictions_made += 1
        self._show_empty_views()
        self.guess.value = view.blank_html(message, self.predictions_made)

    def show_idle(self) -> None:
        """No answer yet (a new, undone or cleared pad)."""
        self.boxes_painted = False  # undo and clear repaint the pad first
        self._show_empty_views()
        self.guess.value = view.idle_html(self.predictions_made)

    def show_feedback(self, text: str, *, ok: bool) -> None:
        self.feedback_status.value = view.feedback_html(text, ok=ok)

    def reset_pickers(self) -> None:
        self.actual_picker.value = None
        self.position_picker.value = None
