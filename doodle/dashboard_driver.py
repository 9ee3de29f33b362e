"""Serve the dashboard with Voilà and drive it in headless Chromium: shared by the browser
tests and the latency benchmark, so both start Voilà exactly as `scripts/serve.py` does.

The browser half needs Playwright (a test dependency); it is imported only when used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doodle.paths import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

DASHBOARD_NOTEBOOK = "notebooks/dashboard.ipynb"
CHROMIUM_PATH = os.environ.get("DOODLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Kernel culling and Voilà's other settings, shared with scripts/serve.py.
VOILA_CONFIG_DIR = ROOT / "conf" / "voila"


def voila_flags(host: str, port: int) -> list[str]:
    """The options `scripts/serve.py` passes to Voilà (a test checks the two agree)."""
    return [
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",  # fail loudly on a taken port instead of drifting to another
        f"--Voila.config_file_paths={VOILA_CONFIG_DIR}",
    ]


def voila_command(host: str, port: int, notebook: str = DASHBOARD_NOTEBOOK) -> list[str]:
    """``voila NOTEBOOK ...`` from this interpreter's environment, rooted at the repository."""
    voila = Path(sys.executable).with_name("voila")
    return [str(voila), notebook, *voila_flags(host, port), f"--Voila.root_dir={ROOT}"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Return once ``host:port`` accepts a TCP connection (a page load would start a kernel)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s")


class VoilaServer:
    """Voilà on the dashboard notebook in its own process group, stopped on exit.

    ``env`` is added to this process's environment (e.g. DOODLE_FEEDBACK_DB); output goes to
    ``log_path``.
    """

    def __init__(self, log_path: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 env: dict[str, str] | None = None, start_timeout_s: float = 60.0):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> VoilaServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            voila_command(self.host, self.port),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.host, self.port, self.start_timeout_s, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM to Voilà's process group (its kernels included), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Debian Chromium; Playwright downloads nothing when given the executable."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)


Stroke = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class ShownResult:
    """What the page shows after a prediction."""

    state: str  # "guess", "blank" or "idle"
    seq: int  # how many predictions the page has shown
    digit: int | None
    confidence: str
    message: str
    probabilities: list[float]  # the ten percentages as shown, divided by 100 (0.0 when empty)


_READ_RESULT_JS = """
() => {
  const result = document.querySelector('.doodle-result');
  const bars = Array.from(document.querySelectorAll('.doodle-probs .doodle-bar-row'));
  return {
    state: result.dataset.state,
    seq: Number(result.dataset.seq),
    digit: (result.querySelector('.doodle-guess-digit') || {}).textContent || '',
    confidence: (result.querySelector('.doodle-guess-text') || {}).textContent || '',
    message: (result.querySelector('.doodle-guess-blank') || {}).textContent || '',
    probs: bars.map(row => row.querySelector('.doodle-prob').textContent),
  };
}
"""

# Click Predict and resolve, in milliseconds, when a newer result is on the page (guess and
# bars both updated): measured inside the page so no Playwright round trip is counted.
_TIMED_PREDICT_JS = """
(oldSeq) => new Promise((resolve) => {
  const done = () => {
    const result = document.querySelector('.doodle-result');
    const bars = document.querySelector('.doodle-probs .doodle-bars');
    return result && Number(result.dataset.seq) > oldSeq && bars && Number(bars.dataset.seq) > oldSeq;
  };
  const root = document.querySelector('.doodle-app');
  const start = performance.now();
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(performance.now() - start); }
  });
  observer.observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
  document.querySelector('.doodle-predict').click();
})
"""


class DashboardPage:
    """The dashboard open in a Playwright page, with waits on what the kernel sends back."""

    def __init__(self, page: Page, url: str, *, load_timeout_ms: float = 120_000):
        self.page = page
        self.url = url
        self.load_timeout_ms = load_timeout_ms
        # Nothing leaves the machine: Voilà's page links a few CDN resources it can do without.
        page.route("**/*", lambda route: route.continue_() if _is_local(route.request.url) else route.abort())

    def open(self) -> DashboardPage:
        """Load the page; return once the pad is drawn and the kernel has answered."""
        self.page.goto(self.url, timeout=self.load_timeout_ms)
        self.page.locator("canvas.doodle-pad").wait_for(state="visible", timeout=self.load_timeout_ms)
        self.page.locator(".doodle-result[data-state]").wait_for(timeout=self.load_timeout_ms)
        self.page.locator(".doodle-probs .doodle-bars").wait_for(timeout=self.load_timeout_ms)
        return self

    @property
    def pad_origin(self) -> tuple[float, float]:
        box = self.page.locator("canvas.doodle-pad").bounding_box()
        assert box is not None, "the pad is not on the page"
        return box["x"], box["y"]

    def read(self) -> ShownResult:
        raw = self.page.evaluate(_READ_RESULT_JS)
        shown = [text.strip() for text in raw["probs"]]
        return ShownResult(
            state=raw["state"],
            seq=int(raw["seq"]),
            # "9" or, when the model is unsure, "9 or 3?": the answer comes first.
            digit=int(raw["digit"].split()[0]) if raw["state"] == "guess" else None,
            confidence=raw["confidence"].strip(),
            message=raw["message"].strip(),
            probabilities=[float(text.rstrip("%")) / 100 if text else 0.0 for text in shown],
        )

    def wait_for_seq_above(self, seq: int, timeout_ms: float = 30_000) -> ShownResult:
        self.page.wait_for_function(
            "(old) => { const r = document.querySelector('.doodle-result');"
            " const b = document.querySelector('.doodle-probs .doodle-bars');"
            " return r && b && Number(r.dataset.seq) > old && Number(b.dataset.seq) > old; }",
            arg=seq,
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
        self.page.locator(".doodle-predict").click()
        return self.wait_for_seq_above(seq)

    def timed_predict(self) -> tuple[float, ShownResult]:
        """Click Predict; milliseconds until the answer is on the page, and the answer."""
        seq = self.read().seq
        elapsed_ms = self.page.evaluate(_TIMED_PREDICT_JS, seq)
        return float(elapsed_ms), self.read()

    def clear(self) -> ShownResult:
        self.page.locator(".doodle-clear").click()
        self.page.locator(".doodle-result[data-state=idle]").wait_for()
        return self.read()

    def pad_ink_fraction(self) -> float:
        """Share of the pad's pixels that are not background black, read from the <canvas>."""
        return float(self.page.locator("canvas.doodle-pad").evaluate(
            """(canvas) => {
                 const ctx = canvas.getContext('2d');
                 const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                 let ink = 0;
                 for (let i = 0; i < data.length; i += 4) { if (data[i] > 127) ink++; }
                 return ink / (canvas.width * canvas.height);
               }"""
        ))

    def submit_correction(self, actual_digit: int) -> str:
        """Pick ``actual_digit`` and press Submit; the confirmation text once it appears."""
        picker = self.page.locator(".doodle-actual")
        picker.get_by_role("button", name=str(actual_digit), exact=True).click()
        self.page.locator(".doodle-submit").click()
        status = self.page.locator(".doodle-feedback-status .doodle-feedback")
        status.wait_for()
        return status.inner_text()


def _is_local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "http://localhost", "ws://localhost",
                           "data:", "blob:", "about:"))



def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> list[tuple[float, float]]:
    """A closed loop starting at the top, drawn anticlockwise as most people draw a 0."""
    import math

    angles = [2 * math.pi * i / n for i in range(n + 1)]
    return [(cx - rx * math.sin(a), cy - ry * math.cos(a)) for a in angles]


# Digits as a person draws them on the 280x280 pad with a mouse: pad pixels, one list per stroke.
HAND_DRAWN_DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(140, 140, 62, 95)],
    1: [[(150, 40), (146, 140), (142, 240)]],
    2: [[(82, 90), (100, 55), (140, 45), (180, 60), (195, 95), (180, 135), (80, 235), (210, 235)]],
    3: [[(80, 60), (130, 45), (180, 60), (190, 95), (165, 125), (125, 135), (175, 145), (195, 185),
         (180, 225), (130, 240), (80, 225)]],
    4: [[(85, 40), (70, 165), (210, 165)], [(175, 60), (172, 240)]],
    5: [[(190, 45), (95, 45)], [(95, 45), (85, 130), (140, 115), (185, 140), (195, 190), (170, 230),
                                 (120, 240), (80, 220)]],
    6: [[(180, 50), (130, 70), (95, 120), (85, 180), (105, 230), (150, 240), (185, 210), (180, 165),
         (140, 145), (100, 165), (90, 190)]],
    7: [[(70, 50), (210, 50), (160, 130), (120, 240)]],
    8: [[(140, 135), (180, 110), (185, 70), (150, 45), (110, 50), (95, 80), (110, 115), (140, 135),
         (175, 160), (190, 200), (170, 235), (130, 240), (95, 215), (95, 175), (140, 135)]],
    9: [[(185, 95), (160, 55), (120, 50), (90, 80), (95, 115), (130, 130), (175, 115), (185, 95),
         (180, 160), (170, 240)]],
}
