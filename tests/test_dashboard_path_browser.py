"""The dashboard in headless Chromium with a model folder holding a path model beside the pixel
model: a digit drawn with the mouse is read from the ink and the pen's path, and the page says so."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.model import mlp, path_features
from doodle.model.model_io import load_model, save_model, save_path_model
from support.browser import DashboardPage, chromium_or_skip, launch_chromium
from support.digits import HAND_DRAWN_DIGITS
from support.voila import VoilaServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory):
    """A seeded untrained pixel model and its path model: what they answer is arbitrary, which
    views the page says it read is not."""
    folder = tmp_path_factory.mktemp("pair")
    pixel = save_model(
        folder, mlp.init_params([784, 16, 10], seed=3), normalization={"mean": 0.13, "std": 0.31}
    )
    save_path_model(
        folder,
        mlp.init_params([path_features.feature_size(16), 16, 10], seed=4),
        points=16,
        temperature=1.0,
        pool_weight=0.8,
        pixel_sha256=pixel.sha256,
    )
    assert load_model(folder).path is not None
    return folder


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, pair_folder):
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    workdir = tmp_path_factory.mktemp("voila")
    env = {
        "DOODLE_MODEL_PATH": str(pair_folder),
        "DOODLE_FEEDBACK_DB": str(workdir / "feedback.sqlite"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "DOODLE_DASHBOARD_POOL": "2",  # a few pages at a time: the default budget's pool would cost CPU
    }
    with VoilaServer(workdir / "voila.log", env=env) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1000, "height": 640})
        try:
            yield DashboardPage(page, server.url).open()
        finally:
            browser.close()


def test_a_drawn_digit_is_read_with_both_views(dashboard):
    shown = dashboard.draw(HAND_DRAWN_DIGITS[7])  # live: read on every pen lift
    assert shown.state == "guess"
    assert shown.views == ("pixels", "path")
    assert shown.views_text == "read from the ink and the pen's path"
    assert sum(shown.probabilities) == pytest.approx(1.0, abs=0.006)
    assert max(shown.probabilities) == pytest.approx(shown.probabilities[shown.digit])
    assert np.isclose(
        float(shown.confidence.split()[-1].rstrip("%")) / 100, shown.probabilities[shown.digit], atol=0.001
    )
