"""Regenerate docs/dashboard.png, the README's picture of the dashboard in use.

Serves the dashboard with Voilà, draws a 9 with mouse strokes in headless Chromium, waits for
the guess, and saves a screenshot of the app. Needs a trained model (models/) and Chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support: the Voilà and browser driver

from support.browser import DashboardPage, launch_chromium  # noqa: E402
from support.digits import nine  # noqa: E402
from support.voila import VoilaServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="doodle-shot-") as workdir:
        env = {"DOODLE_FEEDBACK_DB": str(Path(workdir) / "feedback.sqlite")}
        with VoilaServer(Path(workdir) / "voila.log", env=env) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 860, "height": 900})
            dashboard = DashboardPage(page, server.url).open()
            dashboard.draw(nine(), steps_per_segment=4)
            shown = dashboard.predict()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".doodle-app").screenshot(path=str(args.out))
            browser.close()
    print(f"{args.out}: the dashboard reading a drawn 9 as {shown.digit} ({shown.confidence})")


if __name__ == "__main__":
    main()
