"""POST /predict/strokes over real HTTP (uvicorn in a subprocess): both views when the served model
folder holds a path model, the pixel view alone when it does not, the pad's own reading as the pixel
view, and a clear 4xx for every kind of bad drawing, listed in the OpenAPI schema."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import PREDICT_KEYS, run_server, write_model

from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.canvas.preprocess import canvas_to_input
from doodle.model import mlp, model_io, path_features, path_io
from serving import messages

SEVEN = [[[60.0, 50.0], [220.0, 50.0], [120.0, 240.0]], [[100.0, 140.0], [190.0, 140.0]]]
ONE_AS_A_DOT_AND_A_LINE = [[[140.0, 60.0]], [[140.0, 80.0], [141.0, 150.0], [142.0, 230.0]]]
STROKES_KEYS = PREDICT_KEYS | {"image_vector", "views"}


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pair")
    pixel = write_model(directory, seed=3)
    model_io.save_path_model(
        directory,
        mlp.init_params([path_features.feature_size(16), 24, 10], seed=4),
        points=16,
        temperature=0.5,
        pool_weight=0.8,
        pixel_sha256=pixel.sha256,
    )
    return directory


@pytest.fixture(scope="module")
def pair_server(tmp_path_factory, pair_dir):
    with run_server(tmp_path_factory.mktemp("pair-server"), pair_dir) as running:
        with running.client() as http:
            yield http


def expected_pixels(model: model_io.Model, strokes, scale: float = 1.0) -> np.ndarray:
    pad = render_strokes(
        [[(x * scale, y * scale) for x, y in stroke] for stroke in strokes], pen_width=PEN_WIDTH
    )
    return canvas_to_input(pad).reshape(1, -1)


@pytest.mark.parametrize("strokes", [SEVEN, ONE_AS_A_DOT_AND_A_LINE])
def test_both_views_pooled_as_the_model_files_say(pair_server, pair_dir, strokes):
    model = model_io.load_model(pair_dir)
    response = pair_server.post("/predict/strokes", json={"strokes": strokes, "width": 280, "height": 280})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == STROKES_KEYS
    assert body["views"] == ["pixels", "path"]
    image = expected_pixels(model, strokes)
    # The pixel view is the pad's own reading of the strokes drawn with its pen.
    np.testing.assert_allclose(body["image_vector"], image[0], atol=1e-6)
    drawing = [np.asarray(stroke) for stroke in strokes]
    expected = path_io.pool(model.predict_proba(image), model.path.predict_proba([drawing]), 0.8)[0]
    assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert body["Result"] == int(np.argmax(expected))
    assert body["model_version"] == model.version
    # Pooling changed the pixel model's answer's probabilities: the path was read.
    assert not np.allclose(body["probabilities"], model.predict_proba(image)[0], atol=1e-4)


def test_another_pad_size_is_scaled_onto_the_app_pad(pair_server, pair_dir):
    model = model_io.load_model(pair_dir)
    doubled = [[[2 * x, 2 * y] for x, y in stroke] for stroke in SEVEN]
    body = pair_server.post("/predict/strokes", json={"strokes": doubled, "width": 560, "height": 560}).json()
    np.testing.assert_allclose(body["image_vector"], expected_pixels(model, SEVEN)[0], atol=1e-6)


def test_a_model_folder_without_path_files_serves_pixels_only(tmp_path, model_dir):
    model = model_io.load_model(model_dir)
    assert model.path is None
    with run_server(tmp_path / "server", model_dir) as running, running.client() as http:
        response = http.post("/predict/strokes", json={"strokes": SEVEN})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["views"] == ["pixels"]
        expected = model.predict_proba(expected_pixels(model, SEVEN))[0]
        assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)
        # /predict/image stays pixel-only, and still answers as before.
        assert "views" not in http.post("/predict", json={"image_vector": body["image_vector"]}).json()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"strokes": []}, messages.NO_STROKES),
        ({"strokes": [[[1, 2]], []]}, messages.EMPTY_STROKE.format(index=1)),
        ({"strokes": [[[1, 2, 3]]]}, messages.NOT_A_POINT.format(index=0, point=0)),
        ({"strokes": [[[1, "a"]]]}, messages.NOT_A_POINT.format(index=0, point=0)),
        # Numbers are strict, as the schema's "number" says: no booleans, no numeric strings.
        ({"strokes": [[[1, 2]], [[3, 4], [True, 5]]]}, messages.NOT_A_POINT.format(index=1, point=1)),
        ({"strokes": [[["140", 40]]]}, messages.NOT_A_POINT.format(index=0, point=0)),
        ({"strokes": "a seven"}, messages.STROKES_NOT_A_LIST),
        (
            {"strokes": [[[10, 10], [5000, 10]]]},
            messages.FAR_OUTSIDE_PAD.format(index=0, point=1, x=5000, y=10, width=280, height=280),
        ),
        (
            {"strokes": [[[10, 10]], [[20, -300]]]},
            messages.FAR_OUTSIDE_PAD.format(index=1, point=0, x=20, y=-300, width=280, height=280),
        ),
        (
            {"strokes": [[[float(i % 200), 5.0] for i in range(1500)]] * 3},
            messages.TOO_MANY_POINTS.format(count=4500, limit=4000),
        ),
        ({}, messages.MISSING_FIELD.format(field="strokes")),
    ],
)
def test_bad_drawings_get_a_clear_422(pair_server, body, detail):
    response = pair_server.post("/predict/strokes", json=body)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": detail}


def test_nan_is_refused_by_name(pair_server):
    raw = b'{"strokes": [[[10, NaN]]]}'
    response = pair_server.post("/predict/strokes", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "finite numbers" in response.json()["detail"] and "strokes" in response.json()["detail"]


def test_points_a_little_off_the_pad_are_a_drawing(pair_server):
    strokes = [[[-20.0, 40.0], [140.0, 40.0], [300.0, 260.0]]]
    response = pair_server.post("/predict/strokes", json={"strokes": strokes})
    assert response.status_code == 200, response.text


def test_the_endpoint_and_its_errors_are_in_the_openapi_schema(pair_server):
    schema = pair_server.get("/openapi.json").json()
    operation = schema["paths"]["/predict/strokes"]["post"]
    assert {"200", "422", "503"} <= set(operation["responses"])
    assert "far outside the pad" in operation["responses"]["422"]["description"]
    request = schema["components"]["schemas"]["StrokesPredictRequest"]
    assert request["properties"]["strokes"]["minItems"] == 1
    assert "views" in schema["components"]["schemas"]["StrokesPredictResponse"]["properties"]


def test_strokes_entirely_off_the_pad_are_blank(pair_server):
    response = pair_server.post("/predict/strokes", json={"strokes": [[[-100.0, -100.0], [-60.0, -120.0]]]})
    assert response.status_code == 422
    assert response.json() == {"detail": messages.BLANK_CANVAS}
