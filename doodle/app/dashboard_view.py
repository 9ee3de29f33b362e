"""What the drawing page shows, as HTML strings and PNG bytes built from plain values.

No widgets here: `doodle.app.dashboard` puts these strings into its widgets, and tests read them
directly. Class names and data attributes come from `doodle.app.dashboard_contract`.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from doodle.app import dashboard_contract as page
from doodle.constants import IMAGE_SIDE

INPUT_VIEW_SCALE = 5  # the 28x28 input shown at 140x140, pixelated
PLACEHOLDER_MESSAGE = "draw a digit on the pad"

STYLE = f"""
<style>
.{page.APP} {{ font-family: system-ui, sans-serif; }}
.{page.PAD} canvas, .{page.PAD} {{ cursor: crosshair; touch-action: none; }}
.{page.GUESS_DIGIT} {{ font-size: 88px; line-height: 96px; font-weight: 700; text-align: center; }}
.{page.GUESS_TEXT} {{ font-size: 16px; text-align: center; color: #444; min-height: 1.4em; }}
.{page.GUESS_BLANK} {{ font-size: 20px; line-height: 96px; color: #a33; text-align: center; }}
.{page.BAR_ROW} {{ display: flex; align-items: center; gap: 6px; height: 20px; font-size: 13px; }}
.doodle-bar-digit {{ width: 1em; text-align: right; font-weight: 600; }}
.doodle-bar {{ flex: 1; height: 12px; background: #eee; border-radius: 3px; overflow: hidden; }}
.doodle-bar-fill {{ height: 100%; background: #8aa4c8; }}
.{page.BAR_ROW}.{page.TOP} .doodle-bar-fill {{ background: #2f6fbf; }}
.{page.PROB} {{ width: 4.2em; text-align: right; font-variant-numeric: tabular-nums; }}
.{page.INPUT_VIEW} img {{ image-rendering: pixelated; border: 1px solid #ccc; }}
.doodle-muted {{ color: #666; font-size: 12px; }}
.{page.ATTRIBUTION} img {{ image-rendering: pixelated; border: 1px solid #ccc; display: block; }}
.doodle-legend {{ font-size: 12px; line-height: 1.35; color: #444; max-width: 150px; margin-top: 4px; }}
.doodle-legend .pro {{ color: #c62828; font-weight: 600; }}
.doodle-legend .con {{ color: #1f5fbf; font-weight: 600; }}
.doodle-unit-grid {{ display: flex; flex-wrap: wrap; gap: 6px; max-width: 100%; }}
.{page.UNIT} {{ text-align: center; font-size: 11px; color: #444; font-variant-numeric: tabular-nums; }}
.{page.UNIT} img {{ image-rendering: pixelated; border: 1px solid #ccc; display: block; }}
.doodle-row {{ flex-wrap: wrap; gap: 8px 16px; }}
.doodle-number-grid {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.{page.NUMBER_DIGIT} {{ text-align: center; font-size: 12px; color: #444; font-variant-numeric: tabular-nums; }}
.{page.NUMBER_DIGIT} img {{ image-rendering: pixelated; border: 2px solid {page.BOX_COLOUR}; display: block; }}
.{page.NUMBER_DIGIT} b {{ font-size: 22px; color: #000; }}
</style>
"""


def png_bytes(image: np.ndarray) -> bytes:
    """``(H, W)`` or ``(H, W, 3)`` uint8 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def input_view_png(model_input: np.ndarray, scale: int = INPUT_VIEW_SCALE) -> bytes:
    """``(28, 28)`` float in [0, 1] -> PNG of the input enlarged ``scale`` times, hard pixel edges."""
    pixels = (np.clip(model_input, 0.0, 1.0) * 255).round().astype(np.uint8)
    return png_bytes(np.kron(pixels, np.ones((scale, scale), dtype=np.uint8)))


def blank_input_png() -> bytes:
    return input_view_png(np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.float32))


def format_percent(probability: float) -> str:
    return f"{100 * probability:.1f}%"


def header_html(model_version: str, model_error: str | None) -> str:
    """Title, one line of instructions, and why nothing can be predicted when there is no model."""
    error = f"<div class='{page.GUESS_BLANK}'>{html.escape(model_error)}</div>" if model_error else ""
    return (
        STYLE
        + "<h2 style='margin:4px 0'>Doodle Digits</h2>"
        + "<div class='doodle-muted'>Draw one digit 0-9 large in the black square, or a number side by side."
        + f" A NumPy MLP reads it. Model {html.escape(model_version)}.</div>"
        + error
    )


def _result_html(state: str, seq: int, body: str) -> str:
    """``data-state`` and ``data-seq`` (answers shown so far) let a browser wait for a new
    answer rather than sleep."""
    return f"<div class='{page.RESULT}' {page.DATA_STATE}='{state}' {page.DATA_SEQ}='{seq}'>{body}</div>"


VIEW_NAMES = {"pixels": "the ink", "path": "the pen's path"}


def guess_html(answer: int | str, confidence: float, seq: int, views: tuple[str, ...] = ("pixels",)) -> str:
    """The answer (a digit, or "9 or 3?" when the model is unsure), its confidence and the views it
    was read from ("read from the ink and the pen's path")."""
    said = " and ".join(VIEW_NAMES.get(name, name) for name in views)
    return _result_html(
        page.STATE_GUESS,
        seq,
        f"<div class='{page.GUESS_DIGIT}'>{html.escape(str(answer))}</div>"
        f"<div class='{page.GUESS_TEXT}'>confidence {format_percent(confidence)}</div>"
        f"<div class='{page.GUESS_VIEWS} doodle-muted' {page.DATA_VIEWS}='{html.escape(' '.join(views))}'>"
        f"read from {html.escape(said)}</div>",
    )


def number_guess_html(
    number: str, lowest_confidence: float, seq: int, views: tuple[str, ...] = ("pixels",)
) -> str:
    """The number read (``"2026"``), its least sure digit's confidence and the views its digits
    were read from."""
    size = _number_font_px(len(number))
    said = " and ".join(VIEW_NAMES.get(name, name) for name in views)
    return _result_html(
        page.STATE_NUMBER,
        seq,
        f"<div class='{page.GUESS_DIGIT}' style='font-size:{size}px'>{html.escape(number)}</div>"
        f"<div class='{page.GUESS_TEXT}'>{len(number)} digits; least sure {format_percent(lowest_confidence)}</div>"
        f"<div class='{page.GUESS_VIEWS} doodle-muted' {page.DATA_VIEWS}='{html.escape(' '.join(views))}'>"
        f"read from {html.escape(said)}</div>",
    )


def _number_font_px(length: int) -> int:
    """The number fits the 200 px guess box (a bold digit is about 0.6 em wide)."""
    return max(16, min(88, 300 // max(1, length)))


NUMBER_VIEW_SCALE = 3  # each digit's 28x28 input at 84x84


def number_html(
    number: str,
    digits: list[tuple[int, float, tuple[int, int, int, int], bytes]],
    seq: int,
    reason: str | None = None,
) -> str:
    """The digits of a number, left to right: each ``(digit, confidence, (x, y, w, h) box on the
    pad, PNG of its 28x28 input from `input_view_png`)``. Empty (but carrying ``seq``) when
    ``digits`` is empty, as when the pad holds one digit."""
    size = IMAGE_SIDE * NUMBER_VIEW_SCALE
    cells = "".join(
        f"<div class='{page.NUMBER_DIGIT}' {page.DATA_INDEX}='{index}' {page.DATA_DIGIT}='{digit}'"
        f" {page.DATA_CONFIDENCE}='{confidence:.4f}' {page.DATA_BOX}='{','.join(str(int(v)) for v in box)}'>"
        f"<img src='{data_url(png)}' width='{size}' height='{size}' alt='digit {index + 1} as the model saw it'>"
        f"#{index + 1}: <b>{digit}</b> {format_percent(confidence)}</div>"
        for index, (digit, confidence, box, png) in enumerate(digits)
    )
    title = (
        "<div class='doodle-muted'>Each digit as the model saw it (28x28), left to right</div>"
        if digits
        else ""
    )
    note = f"<div class='doodle-muted'>{html.escape(reason)}</div>" if digits and reason else ""
    return (
        f"<div class='{page.NUMBER}' {page.DATA_SEQ}='{seq}' {page.DATA_NUMBER}='{html.escape(number)}'"
        f" {page.DATA_COUNT}='{len(digits)}'>{title}<div class='doodle-number-grid'>{cells}</div>{note}</div>"
    )


def blank_html(message: str, seq: int) -> str:
    return _result_html(
        page.STATE_BLANK, seq, f"<div class='{page.GUESS_BLANK}'>{html.escape(message)}</div>"
    )


def idle_html(seq: int) -> str:
    return _result_html(
        page.STATE_IDLE,
        seq,
        f"<div class='{page.GUESS_DIGIT}' style='color:#ccc'>?</div>"
        f"<div class='{page.GUESS_TEXT}'>{PLACEHOLDER_MESSAGE}</div>",
    )


def bars_html(probabilities: np.ndarray | None, top: int | None, seq: int) -> str:
    """Ten rows of digit, bar and percentage (empty when ``probabilities`` is ``None``).

    ``probabilities``: ``(10,)`` float summing to 1; ``top``: the row to highlight.
    """
    rows = []
    for digit in range(10):
        p = 0.0 if probabilities is None else float(probabilities[digit])
        shown = "" if probabilities is None else format_percent(p)
        css = f"{page.BAR_ROW} {page.TOP}" if digit == top else page.BAR_ROW
        rows.append(
            f"<div class='{css}' {page.DATA_DIGIT}='{digit}'><span class='doodle-bar-digit'>{digit}</span>"
            f"<div class='doodle-bar'><div class='doodle-bar-fill' style='width:{100 * p:.1f}%'></div></div>"
            f"<span class='{page.PROB}'>{shown}</span></div>"
        )
    return f"<div class='{page.BARS}' {page.DATA_SEQ}='{seq}'>{''.join(rows)}</div>"


def feedback_html(text: str, *, ok: bool) -> str:
    """The correction form's status line: green when saved, red when something is missing or failed."""
    colour = "#276b2e" if ok else "#a33"
    state = page.FEEDBACK_SAVED if ok else page.FEEDBACK_ERROR
    return (
        f"<span class='{page.FEEDBACK}' {page.DATA_STATE}='{state}' style='color:{colour}'>"
        f"{html.escape(text)}</span>"
    )


# Red for what argues for the guess, blue for the runner-up, as in the legend.
_RED = np.array([198, 40, 40], np.float32)
_BLUE = np.array([31, 95, 191], np.float32)
UNIT_VIEW_SCALE = 3  # each unit's 28x28 weights at 84x84


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def diverging_rgb(values: np.ndarray, scale: float | None = None, gamma: float = 1.0) -> np.ndarray:
    """``(H, W)`` signed floats -> ``(H, W, 3)`` uint8: white at 0, red for positive, blue for
    negative, full colour at ``scale`` (default: the largest magnitude). ``gamma < 1`` makes
    middling values show more strongly."""
    values = np.asarray(values, np.float32)
    top = float(np.abs(values).max()) if scale is None else float(scale)
    if top > 0:
        strength = (np.clip(np.abs(values) / top, 0.0, 1.0) ** gamma)[..., None]
    else:
        strength = np.zeros(values.shape + (1,), np.float32)
    colour = np.where(values[..., None] >= 0, _RED, _BLUE)
    rgb = 255.0 * (1.0 - strength) + colour * strength
    return rgb.round().astype(np.uint8)


def attribution_png(model_input: np.ndarray, attribution: np.ndarray, scale: int = INPUT_VIEW_SCALE) -> bytes:
    """The input's ink in grey with the attribution over it: ``(28, 28)`` float in [0, 1] and
    ``(784,)`` signed -> PNG ``scale`` times larger. Red pixels pushed toward the guess, blue
    ones toward the runner-up; the strongest pixel is fully coloured."""
    ink = np.clip(np.asarray(model_input, np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE), 0.0, 1.0)
    # A few pixels usually dominate: a square-root scale lets the rest of the strokes show.
    coloured = diverging_rgb(
        np.asarray(attribution, np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE), gamma=0.5
    ).astype(np.float32)
    # Where attribution is faint, the drawing shows through as light grey.
    grey = (255.0 - 70.0 * ink)[..., None]
    weight = np.abs(255.0 - coloured).max(axis=2, keepdims=True) / 255.0
    rgb = (coloured * weight + grey * (1.0 - weight)).round().astype(np.uint8)
    return png_bytes(np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8)))


def blank_attribution_png(scale: int = INPUT_VIEW_SCALE) -> bytes:
    return png_bytes(np.full((IMAGE_SIDE * scale, IMAGE_SIDE * scale, 3), 255, np.uint8))


def attribution_html(png: bytes, seq: int, digit: int | None = None, runner_up: int | None = None) -> str:
    """The attribution map with its legend (``digit`` over ``runner_up``; no legend when idle)."""
    size = IMAGE_SIDE * INPUT_VIEW_SCALE
    if digit is None or runner_up is None:
        legend = "<div class='doodle-legend'>Which strokes made the guess.</div>"
    else:
        legend = (
            f"<div class='doodle-legend'><span class='pro'>red</span>: pushed toward {digit};"
            f" <span class='con'>blue</span>: toward {runner_up}, the runner-up.</div>"
        )
    return (
        f"<div class='{page.ATTRIBUTION}' {page.DATA_SEQ}='{seq}'>"
        f"<img src='{data_url(png)}' width='{size}' height='{size}' alt='attribution map'>{legend}</div>"
    )


def unit_png(weights: np.ndarray, scale: int = UNIT_VIEW_SCALE) -> bytes:
    """A first-layer unit's ``(28, 28)`` incoming weights as a red/blue PNG ``scale`` times larger."""
    rgb = diverging_rgb(weights)
    return png_bytes(np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8)))


def units_html(units: list[int], activations: list[float], pngs: list[bytes], seq: int) -> str:
    """The most active first-layer units, each its weight pattern (``pngs``, from `unit_png`) over
    its number and activation; an empty grid when ``units`` is empty."""
    size = IMAGE_SIDE * UNIT_VIEW_SCALE
    cells = "".join(
        f"<div class='{page.UNIT}' {page.DATA_UNIT}='{unit}' {page.DATA_ACTIVATION}='{activation:.4g}'>"
        f"<img src='{data_url(png)}' width='{size}' height='{size}' alt='unit {unit} weights'>"
        f"#{unit} &middot; {activation:.2f}</div>"
        for unit, activation, png in zip(units, activations, pngs)
    )
    return (
        f"<div class='{page.UNITS}' {page.DATA_SEQ}='{seq}'><div class='doodle-unit-grid'>{cells}</div></div>"
    )
