"""The drawing page in headless Chromium (Playwright): open it, draw with the mouse or a finger,
and read what the page shows, finding everything by `doodle.app.dashboard_contract`.

Playwright is a test dependency; it is imported only when a browser is launched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doodle.app import dashboard_contract as contract
from doodle.app.dashboard_contract import selector
from doodle.model.model_io import Model, ModelFileError, load_model
from doodle.paths import model_path

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM_PATH = os.environ.get("DOODLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing leaves the machine: every host name but the loopback ones fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]

# Selectors handed to the page scripts below, so the scripts name no class themselves.
SELECTORS = {
    "app": selector(contract.APP),
    "pad": selector(contract.PAD),
    "predict": selector(contract.PREDICT),
    "result": selector(contract.RESULT),
    "guessDigit": selector(contract.GUESS_DIGIT),
    "guessText": selector(contract.GUESS_TEXT),
    "guessBlank": selector(contract.GUESS_BLANK),
    "guessViews": selector(contract.GUESS_VIEWS),
    "bars": f"{selector(contract.PROBS)} {selector(contract.BARS)}",
    "barRow": f"{selector(contract.PROBS)} {selector(contract.BAR_ROW)}",
    "prob": selector(contract.PROB),
    "attribution": selector(contract.ATTRIBUTION),
    "units": selector(contract.UNITS),
    "unit": selector(contract.UNIT),
    "number": f"{selector(contract.NUMBER_VIEW)} {selector(contract.NUMBER)}",
    "numberDigit": selector(contract.NUMBER_DIGIT),
}


def trained_model_or_skip() -> Model:
    """The pipeline's model (what the dashboard serves), or a skip of the test that needs it."""
    try:
        return load_model(model_path())
    except ModelFileError as error:
        from support.pipeline import outputs_missing  # only tests need it; benchmarks import this module

        outputs_missing(f"the dashboard needs a trained model (run `make pipeline`): {error}")


def chromium_or_skip() -> None:
    """Skip the test that needs a browser when Chromium is not installed."""
    import pytest

    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH} (make system-deps)")


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Debian Chromium; Playwright downloads nothing when given the executable."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)


Stroke = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class ShownResult:
    """What the page shows after a prediction."""

    state: str  # contract.STATE_GUESS, STATE_BLANK or STATE_IDLE
    seq: int  # how many answers the page has shown
    digit: int | None
    confidence: str
    message: str
    probabilities: list[float]  # the ten percentages as shown, divided by 100 (0.0 when empty)
    views: tuple[str, ...] = ()  # the views the answer was read from ("pixels", "path"); () without an answer
    views_text: str = ""  # how the page says it


_READ_RESULT_JS = """
(s) => {
  const result = document.querySelector(s.result);
  const bars = Array.from(document.querySelectorAll(s.barRow));
  return {
    state: result.dataset.state,
    seq: Number(result.dataset.seq),
    digit: (result.querySelector(s.guessDigit) || {}).textContent || '',
    confidence: (result.querySelector(s.guessText) || {}).textContent || '',
    message: (result.querySelector(s.guessBlank) || {}).textContent || '',
    views: ((result.querySelector(s.guessViews) || {dataset: {}}).dataset.views) || '',
    viewsText: (result.querySelector(s.guessViews) || {}).textContent || '',
    probs: bars.map(row => row.querySelector(s.prob).textContent),
  };
}
"""

# True once every part of the answer (`waitFor` selectors, each with data-seq) is newer than `old`.
_ANSWER_SHOWN_JS = """
({s, old, waitFor}) => waitFor.every(sel => {
  const el = document.querySelector(sel);
  return el && Number(el.dataset.seq) > old;
})
"""

# Click Predict and resolve, in milliseconds, when a newer answer is on the page (every part in
# `waitFor`): measured inside the page so no Playwright round trip is counted.
_TIMED_PREDICT_JS = """
({s, old, waitFor}) => new Promise((resolve) => {
  const done = () => waitFor.every(sel => {
    const el = document.querySelector(sel);
    return el && Number(el.dataset.seq) > old;
  });
  const root = document.querySelector(s.app);
  const start = performance.now();
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(performance.now() - start); }
  });
  observer.observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
  document.querySelector(s.predict).click();
})
"""


# The page is ready: the pad is visible (laid out, not hidden), the result panel has its state and
# every part of the answer is attached (an empty view, no units yet, has no height). Resolves to
# performance.now(), the milliseconds since navigation started.
_READY_JS = """
(s) => {
  const pad = document.querySelector(s.pad);
  if (!pad) return false;
  const box = pad.getBoundingClientRect();
  if (box.width === 0 || box.height === 0 || getComputedStyle(pad).visibility === 'hidden') return false;
  const result = document.querySelector(s.result);
  if (!result || !result.hasAttribute(s.dataState)) return false;
  if (!s.parts.every(sel => document.querySelector(sel) !== null)) return false;
  return performance.now();
}
"""


@dataclass(frozen=True)
class ShownViews:
    """The "why" views as shown: the attribution map and the most active hidden units."""

    attribution_png: str  # the map's data: URL (it changes when the map does)
    legend: str
    units: list[int]
    activations: list[float]


_READ_VIEWS_JS = """
(s) => {
  const map = document.querySelector(s.attribution);
  const cells = Array.from(document.querySelectorAll(s.unit));
  return {
    src: map.querySelector('img').getAttribute('src'),
    legend: map.textContent,
    units: cells.map(cell => Number(cell.dataset.unit)),
    activations: cells.map(cell => Number(cell.dataset.activation)),
  };
}
"""


@dataclass(frozen=True)
class ShownDigit:
    """One digit of a number as the page lists it."""

    index: int
    digit: int
    confidence: float
    box: tuple[int, int, int, int]  # x, y, w, h of its ink in pad pixels


@dataclass(frozen=True)
class ShownNumber:
    """What the page shows when the pad holds several digits."""

    state: str  # contract.STATE_NUMBER when a number is read
    seq: int
    text: str  # the number in the guess box, "2026"
    number: str  # the digit list's data-number
    digits: list[ShownDigit]


_READ_NUMBER_JS = """
(s) => {
  const result = document.querySelector(s.result);
  const view = document.querySelector(s.number);
  const cells = Array.from(view.querySelectorAll(s.numberDigit));
  return {
    state: result.dataset.state,
    seq: Number(view.dataset.seq),
    text: (result.querySelector(s.guessDigit) || {}).textContent || '',
    number: view.dataset.number,
    digits: cells.map(c => [Number(c.dataset.index), Number(c.dataset.digit), Number(c.dataset.confidence),
                            c.dataset.box.split(',').map(Number)]),
  };
}
"""


class DashboardPage:
    """The dashboard open in a Playwright page, with waits on what the kernel sends back.

    ``answer_parts``: selectors of the elements (each carrying ``data-seq``) that make up one
    answer; a new answer is on the page once all of them are newer.
    """

    answer_parts: tuple[str, ...] = (
        SELECTORS["result"],
        SELECTORS["bars"],
        SELECTORS["attribution"],
        SELECTORS["units"],
        SELECTORS["number"],
    )

    def __init__(self, page: Page, url: str, *, load_timeout_ms: float = 120_000, route_remote: bool = True):
        self.page = page
        self.url = url
        self.load_timeout_ms = load_timeout_ms
        if route_remote:
            # Voilà's page links a few CDN resources it can do without: refused here at once (the
            # resolver rule in CHROMIUM_ARGS also stops them). Routing turns the browser's HTTP
            # cache off, so a benchmark of return visits passes ``route_remote=False``.
            page.route(
                "**/*", lambda route: route.continue_() if _is_local(route.request.url) else route.abort()
            )

    def open(self) -> DashboardPage:
        """Load the page; return once the pad is drawn and the kernel has answered."""
        self.page.goto(self.url, timeout=self.load_timeout_ms)
        self.wait_until_ready()
        return self

    def wait_until_ready(self, timeout_ms: float | None = None) -> float:
        """Wait until the pad is visible and every part of the (idle) answer is on the page;
        returns the page's own clock then: milliseconds since navigation started.

        One check inside the page on every animation frame (no Playwright round trip per part)."""
        handle = self.page.wait_for_function(
            _READY_JS,
            arg={
                "pad": SELECTORS["pad"],
                "result": SELECTORS["result"],
                "dataState": contract.DATA_STATE,
                "parts": list(self.answer_parts),
            },
            polling="raf",
            timeout=self.load_timeout_ms if timeout_ms is None else timeout_ms,
        )
        return float(handle.json_value())

    @property
    def pad_origin(self) -> tuple[float, float]:
        box = self.page.locator(SELECTORS["pad"]).bounding_box()
        assert box is not None, "the pad is not on the page"
        return box["x"], box["y"]

    def read(self) -> ShownResult:
        raw = self.page.evaluate(_READ_RESULT_JS, SELECTORS)
        shown = [text.strip() for text in raw["probs"]]
        return ShownResult(
            state=raw["state"],
            seq=int(raw["seq"]),
            # "9" or, when the model is unsure, "9 or 3?": the answer comes first.
            digit=int(raw["digit"].split()[0]) if raw["state"] == contract.STATE_GUESS else None,
            confidence=raw["confidence"].strip(),
            message=raw["message"].strip(),
            probabilities=[float(text.rstrip("%")) / 100 if text else 0.0 for text in shown],
            views=tuple(raw["views"].split()),
            views_text=raw["viewsText"].strip(),
        )

    def read_views(self) -> ShownViews:
        raw = self.page.evaluate(_READ_VIEWS_JS, SELECTORS)
        return ShownViews(raw["src"], raw["legend"].strip(), raw["units"], raw["activations"])

    def read_number(self) -> ShownNumber:
        raw = self.page.evaluate(_READ_NUMBER_JS, SELECTORS)
        digits = [
            ShownDigit(int(i), int(d), float(c), tuple(int(v) for v in box)) for i, d, c, box in raw["digits"]
        ]
        return ShownNumber(raw["state"], int(raw["seq"]), raw["text"].strip(), raw["number"], digits)

    def pad_pixels(self, points: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """The pad's RGB colour at each ``(x, y)`` pad pixel, read from the <canvas>."""
        return [
            tuple(rgb)
            for rgb in self.page.locator(f"canvas{SELECTORS['pad']}").evaluate(
                """(canvas, points) => {
                 const ctx = canvas.getContext('2d');
                 return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
               }""",
                [list(point) for point in points],
            )
        ]

    def wait_for_seq_above(self, seq: int, timeout_ms: float = 30_000) -> ShownResult:
        self.page.wait_for_function(
            _ANSWER_SHOWN_JS,
            arg={"s": SELECTORS, "old": seq, "waitFor": list(self.answer_parts)},
            timeout=timeout_ms,
        )
        return self.read()

    def draw(self, strokes: Sequence[Stroke], steps_per_segment: int = 4) -> ShownResult:
        """Draw ``strokes`` (pad pixels, 0..280) with the mouse, then wait until the kernel has
        handled every pen lift (each one re-predicts live) so the next step sees all strokes."""
        x0, y0 = self.pad_origin
        seq = self.read().seq
        mouse = self.page.mouse
        for stroke in strokes:
            mouse.move(x0 + stroke[0][0], y0 + stroke[0][1])
            mouse.down()
            for x, y in stroke[1:]:
                mouse.move(x0 + x, y0 + y, steps=steps_per_segment)
            mouse.up()
        return self.wait_for_seq_above(seq + len(strokes) - 1)

    def draw_by_touch(self, strokes: Sequence[Stroke], steps_per_segment: int = 4) -> ShownResult:
        """Draw ``strokes`` with a finger (Chrome DevTools touch events; the page's context must
        be made with ``has_touch=True``), then wait as `draw` does."""
        cdp = self.page.context.new_cdp_session(self.page)
        x0, y0 = self.pad_origin
        seq = self.read().seq

        def touch(kind: str, points: list[tuple[float, float]]) -> None:
            touch_points = [{"x": x0 + x, "y": y0 + y} for x, y in points]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

        for stroke in strokes:
            touch("touchStart", [stroke[0]])
            for (xa, ya), (xb, yb) in zip(stroke, stroke[1:]):
                for k in range(1, steps_per_segment + 1):
                    t = k / steps_per_segment
                    touch("touchMove", [(xa + (xb - xa) * t, ya + (yb - ya) * t)])
            touch("touchEnd", [])
        cdp.detach()
        return self.wait_for_seq_above(seq + len(strokes) - 1)

    def predict(self) -> ShownResult:
        seq = self.read().seq
        self.page.locator(SELECTORS["predict"]).click()
        return self.wait_for_seq_above(seq)

    def timed_predict(self) -> tuple[float, ShownResult]:
        """Click Predict; milliseconds until the whole answer is on the page, and the answer."""
        seq = self.read().seq
        elapsed_ms = self.page.evaluate(
            _TIMED_PREDICT_JS, {"s": SELECTORS, "old": seq, "waitFor": list(self.answer_parts)}
        )
        return float(elapsed_ms), self.read()

    def clear(self) -> ShownResult:
        self.page.locator(selector(contract.CLEAR)).click()
        self.page.locator(f"{SELECTORS['result']}[{contract.DATA_STATE}={contract.STATE_IDLE}]").wait_for()
        return self.read()

    def undo(self) -> None:
        self.page.locator(selector(contract.UNDO)).click()

    def pad_ink_fraction(self) -> float:
        """Share of the pad's pixels that are not background black, read from the <canvas>."""
        return float(
            self.page.locator(f"canvas{SELECTORS['pad']}").evaluate(
                """(canvas) => {
                 const ctx = canvas.getContext('2d');
                 const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                 let ink = 0;
                 for (let i = 0; i < data.length; i += 4) { if (data[i] > 127) ink++; }
                 return ink / (canvas.width * canvas.height);
               }"""
            )
        )

    def wait_for_empty_pad(self, timeout_ms: float = 30_000) -> None:
        """Wait until no pixel of the pad is ink (after Clear: the kernel repaints it)."""
        self.page.wait_for_function(
            "(pad) => { const c = document.querySelector('canvas' + pad);"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " for (let i = 0; i < d.length; i += 4) { if (d[i] > 127) return false; } return true; }",
            arg=SELECTORS["pad"],
            timeout=timeout_ms,
        )

    def submit_correction(self, actual_digit: int, position: int | None = None) -> str:
        """Pick ``actual_digit`` (and, for a number, the digit at ``position``, 0-based from the
        left) and press Submit; the confirmation text once it appears."""
        if position is not None:
            positions = self.page.locator(selector(contract.NUMBER_POSITION))
            positions.get_by_role("button").nth(position).click()
        picker = self.page.locator(selector(contract.ACTUAL))
        picker.get_by_role("button", name=str(actual_digit), exact=True).click()
        self.page.locator(selector(contract.SUBMIT)).click()
        status = self.page.locator(f"{selector(contract.FEEDBACK_STATUS)} {selector(contract.FEEDBACK)}")
        status.wait_for()
        return status.inner_text()


def _is_local(url: str) -> bool:
    return url.startswith(
        (
            "http://127.0.0.1",
            "ws://127.0.0.1",
            "http://localhost",
            "ws://localhost",
            "data:",
            "blob:",
            "about:",
        )
    )
