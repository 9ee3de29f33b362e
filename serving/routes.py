"""HTTP endpoints: predictions (JSON vectors, batches, image uploads), feedback, health,
model information and the Prometheus scrape endpoint.

Prediction routes share `_predict`, so single, batch and image requests count, time and drift-check
the same way. Request JSON is parsed with orjson (`OrjsonRoute`): on a 784-number body the standard library's
parser cost several times the rest of the request. `DirectPredictMiddleware` answers a well-formed
``POST /predict`` without FastAPI's per-request machinery, which cost more than the model; every
other request, and any ``/predict`` it would not answer 200, takes the route below.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.canvas.preprocess import (
    NOT_AN_IMAGE_MESSAGE,
    BlankCanvasError,
    ImageDecodeError,
    blank_input,
    blank_inputs,
    canvas_to_input,
    decode_image,
)
from doodle.constants import CANVAS_SIZE, N_PIXELS
from doodle.loop.feedback import FeedbackNotStored
from doodle.model.model_io import Model, top_two_of_one
from doodle.model.path_io import read_views
from doodle.paths import ROOT
from doodle.reading.explain import attribution
from doodle.reading.number_reading import FaintDigitError, TooManyDigitsError, cut_number
from serving import messages
from serving.schemas import (
    MAX_STROKE_POINTS,
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ImagePredictResponse,
    ModelInfo,
    NumberPredictResponse,
    PredictRequest,
    PredictResponse,
    ReadinessResponse,
    StrokesPredictRequest,
    StrokesPredictResponse,
)
from serving.state import ServingState


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # orjson rejects NaN/Infinity literals, which the standard library would accept.
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    """An `APIRoute` whose JSON bodies are parsed by orjson."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return orjson_handler


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


log = logging.getLogger("serving")
_IMAGE_SLOTS = threading.BoundedSemaphore(2)
router = APIRouter(route_class=OrjsonRoute)

ERRORS = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
    413: {"model": ErrorResponse, "description": "The body is over the size limit."},
    422: {"model": ErrorResponse, "description": "The body does not match the schema."},
    503: {"model": ErrorResponse, "description": "No model is loaded."},
}


def _public_source(model_uri: str) -> str:
    """The model's source as clients may see it: an MLflow URI as it is, a path relative to the
    project (or just its name), never the server's directories."""
    if model_uri.startswith("models:/"):
        return model_uri
    path = Path(model_uri).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _state(request: Request) -> ServingState:
    return request.app.state.serving


def _loaded_model(state: ServingState) -> Model:
    model = state.model
    if model is None:
        raise HTTPException(503, messages.MODEL_NOT_LOADED.format(reason=state.model_error))
    return model


def _upload_bytes(file: UploadFile) -> bytes:
    """The uploaded file's bytes; an empty upload is a 400."""
    data = file.file.read()
    if not data:
        raise HTTPException(400, messages.EMPTY_UPLOAD)
    return data


def _decoded(data: bytes) -> np.ndarray:
    """The drawing in ``data`` as a 2-D uint8 array: 415 when it is not an image, 422 when it is
    an unreadable one. Call it holding one of `_IMAGE_SLOTS`."""
    try:
        return decode_image(data)
    except ImageDecodeError as exc:
        status = 415 if str(exc) == NOT_AN_IMAGE_MESSAGE else 422
        raise HTTPException(status, messages.NOT_AN_IMAGE.format(reason=exc)) from None


@contextmanager
def _uploaded_canvas(state: ServingState, file: UploadFile) -> Iterator[np.ndarray]:
    """The upload decoded (`_decoded`), for the ``with`` block's length only, while the block
    holds one of `_IMAGE_SLOTS`: a large upload takes ~200 MB while it is decoded and reduced, so
    a few at a time, not one per thread-pool worker. 503 without a model (checked before any
    work), 400 for an empty upload, and a `BlankCanvasError` escaping the block is a 422."""
    _loaded_model(state)
    data = _upload_bytes(file)
    with _IMAGE_SLOTS:
        try:
            yield _decoded(data)
        except BlankCanvasError:
            raise HTTPException(422, messages.BLANK_CANVAS) from None


def _predict(state: ServingState, images: np.ndarray, drawings: list | None = None):
    """``(N, 784)`` float32 in [0, 1] -> digits ``(N,)``, probabilities ``(N, 10)``,
    confidences ``(N,)`` and the model that made them (the served model is read once, so a
    switch during the request cannot mix versions); records inference time,
    predictions and drift. A blank image is a 422, never a guess. With ``drawings`` (one list of
    strokes per image) the answer pools both views (`doodle.model.path_io.read_views`) and a fifth value,
    the views used, is returned."""
    model = _loaded_model(state)
    blank = np.flatnonzero(blank_inputs(images))
    if blank.size:
        detail = messages.BLANK_CANVAS if len(images) == 1 else messages.BLANK_IN_BATCH.format(index=blank[0])
        raise HTTPException(422, detail)
    metrics = state.metrics
    start = time.perf_counter()
    if drawings is None:
        digits, probs = model.predict(images)
    else:
        reading = read_views(model, images, drawings)
        probs = reading.probabilities
        digits = probs.argmax(axis=1)
    metrics.inference_seconds.observe(time.perf_counter() - start)
    confidences = probs[np.arange(len(digits)), digits]
    metrics.observe_predictions(digits, confidences)
    _record_drift(state, images)
    if drawings is not None:
        return digits, probs, confidences, model, reading.views
    return digits, probs, confidences, model


def _record_drift(state: ServingState, images: np.ndarray) -> None:
    """Set the drift gauge to the request's score and count it when over the threshold (nothing
    without a reference)."""
    if state.drift_reference is not None:
        score = state.drift_reference.score(images)
        state.metrics.drift_score.set(score)
        if score > state.settings.drift_threshold:
            state.metrics.drifted_requests.inc()


def _predictions(
    model: Model, digits: np.ndarray, probs: np.ndarray, confidences: np.ndarray
) -> list[dict[str, Any]]:
    """One answer per image. ``Result`` stays the argmax; the runner-up (the second most probable
    digit) and ``unsure`` (the two closer than the model's unsure margin) are additive fields."""
    second = model.top_two(probs)
    return [
        {
            "Result": int(digit),
            "probabilities": row.tolist(),
            "confidence": float(confidence),
            "runner_up": int(runner_up),
            "runner_up_confidence": float(row[runner_up]),
            "unsure": bool(unsure),
        }
        for digit, row, confidence, runner_up, unsure in zip(
            digits, probs, confidences, second.runner_ups, second.unsure
        )
    ]


# Single predictions run inline on the event loop: the whole handler costs less CPU than the hop
# to FastAPI's thread pool would add to each request (benchmarks/load_predict.py measures both). Batches, images and feedback (fsync) are plain `def`s and run in
# the thread pool, so they never stall the loop for long.
@router.post("/predict", response_model=PredictResponse, responses=ERRORS, summary="Predict one digit")
@router.post("/predict/", response_model=PredictResponse, include_in_schema=False)
async def predict(body: PredictRequest, request: Request) -> Response:
    """Classify one 28x28 image given as 784 numbers (0 = background, 1 = ink)."""
    return _single_answer(_state(request), body)


def _single_answer(state: ServingState, body: PredictRequest) -> Response:
    """`/predict`'s answer to a validated body (503 without a model, 422 for a blank image).

    `_predict` and `_predictions` for one image, with the same checks, metrics, drift score and
    answer, on the model's one-image forward pass (`Model.predict_one_proba`) and with the answer's
    fields taken in plain Python: on ten numbers NumPy's per-call cost was most of the work."""
    model = _loaded_model(state)
    image = np.fromiter(body.image_vector, dtype=np.float32, count=N_PIXELS)
    if blank_input(image):
        raise HTTPException(422, messages.BLANK_CANVAS)
    metrics = state.metrics
    start = time.perf_counter()
    probabilities = model.predict_one_proba(image)
    metrics.inference_seconds.observe(time.perf_counter() - start)
    row = probabilities.tolist()
    digit, runner_up, _, unsure = top_two_of_one(row, model.unsure_margin)
    metrics.observe_prediction(digit, row[digit])
    _record_drift(state, image)
    return json_response(
        {
            "Result": digit,
            "probabilities": row,
            "confidence": row[digit],
            "runner_up": runner_up,
            "runner_up_confidence": row[runner_up],
            "unsure": unsure,
            "model_version": model.version,
        }
    )


PREDICT_PATH = "/predict"
PREDICT_ROUTE = next(route for route in router.routes if getattr(route, "path", None) == PREDICT_PATH)


def _is_json(scope: Scope) -> bool:
    """The request says its body is ``application/json`` (any parameters): the one content type
    the direct path takes; FastAPI's own rules decide every other."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class DirectPredictMiddleware:
    """Answer ``POST /predict`` with a JSON body that validates and an image that is not blank
    while a model is loaded, with the route's own code (`PredictRequest` as FastAPI validates it,
    `_single_answer`), but without FastAPI's per-request machinery: matching the path against
    every route, solving the endpoint's parameters, its exception and exit-stack layers. In-process
    that machinery cost more than the model's forward pass (`benchmarks/predict_overhead.py`).

    Everything else goes on to the app unchanged, the body it has read replayed: other paths, a
    body that is not JSON or does not validate, no model, a blank image; so every error answer
    (400, 413, 422, 503), with its message, comes from the route and its handlers as before.
    Sits inside the body limit, CORS and the HTTP metrics, which see this path's requests as the
    route's (``scope["route"]`` is the ``/predict`` route). The route keeps the OpenAPI schema."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PREDICT_PATH
            or scope["method"] != "POST"
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        messages_read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages_read.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app handles that as it would have
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        answer = (
            _direct_answer(scope["app"].state.serving, body)
            if messages_read[-1]["type"] == "http.request"
            else None
        )
        if answer is None:
            await self.app(scope, _replay(messages_read, receive), send)
            return
        scope["route"] = PREDICT_ROUTE
        await answer(scope, receive, send)


def _direct_answer(state: ServingState, body: bytes) -> Response | None:
    """The 200 answer to a ``/predict`` body, or None when the route should answer instead (not
    JSON, not valid, no model, a blank image). `_predict` raises those before it records anything."""
    try:
        request = PredictRequest.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None
    try:
        return _single_answer(state, request)
    except HTTPException:
        return None


def _replay(messages_read: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages_read`` again, in order, then the client's own."""
    pending = list(messages_read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


@router.post(
    "/predict/explain",
    response_model=ExplainResponse,
    responses=ERRORS,
    summary="Predict and explain one digit",
)
def predict_explain(body: PredictRequest, request: Request) -> Response:
    """Classify one image as `/predict` does, and say why: the runner-up digit and an
    attribution map, 784 signed values (gradient x input of the margin between the guess and
    the runner-up, through the network's backward pass; `doodle.reading.explain`)."""
    state = _state(request)
    images = np.asarray(body.image_vector, dtype=np.float32).reshape(1, -1)
    digits, probs, confidences, model = _predict(state, images)
    (payload,) = _predictions(model, digits, probs, confidences)
    payload["model_version"] = model.version
    runner_up = np.array([payload["runner_up"]])
    payload["attribution"] = attribution(model, images, digits, runner_up)[0].tolist()
    return json_response(payload)


@router.post("/predict/batch", response_model=BatchPredictResponse, responses=ERRORS, summary="Predict many")
def predict_batch(body: BatchPredictRequest, request: Request) -> Response:
    """Classify up to `DOODLE_MAX_BATCH` (default 1,024) images in one forward pass."""
    state = _state(request)
    if len(body.image_vectors) > state.settings.max_batch:
        raise HTTPException(422, messages.BATCH_TOO_LARGE.format(limit=state.settings.max_batch))
    images = np.asarray(body.image_vectors, dtype=np.float32)
    digits, probs, confidences, model = _predict(state, images)
    results = _predictions(model, digits, probs, confidences)
    return json_response({"results": results, "model_version": model.version})


@router.post(
    "/predict/image",
    response_model=ImagePredictResponse,
    responses={
        **ERRORS,
        415: {"model": ErrorResponse, "description": "The upload is not a PNG or JPEG image."},
    },
    summary="Predict from a PNG/JPEG drawing",
)
def predict_image(
    request: Request, file: UploadFile = File(description="A PNG or JPEG drawing.")
) -> Response:
    """Decode a drawing of any size and either polarity, make it a 28x28 input the way MNIST was
    made (`doodle.canvas.preprocess.canvas_to_input`) and classify it. The answer includes the
    ``image_vector`` the model saw, ready to send back to ``/feedback``."""
    state = _state(request)
    with _uploaded_canvas(state, file) as canvas:
        images = canvas_to_input(canvas).reshape(1, -1)
    digits, probs, confidences, model = _predict(state, images)
    (payload,) = _predictions(model, digits, probs, confidences)
    payload["model_version"] = model.version
    payload["image_vector"] = images[0].tolist()
    return json_response(payload)


@router.post(
    "/predict/number",
    response_model=NumberPredictResponse,
    responses={
        **ERRORS,
        415: {"model": ErrorResponse, "description": "The upload is not a PNG or JPEG image."},
        422: {"model": ErrorResponse, "description": "Blank, unreadable, or more digits than the limit."},
    },
    summary="Read a whole number from a PNG/JPEG drawing",
)
def predict_number(
    request: Request, file: UploadFile = File(description="A PNG or JPEG drawing of a number.")
) -> Response:
    """Read a drawing of several digits as the drawing pad reads one
    (`doodle.reading.number_reading.cut_number`: one box per digit, left to right, pieces of one digit
    joined when the model reads them together more surely), each box made a 28x28 input with the
    same `canvas_to_input` as `/predict/image`, all read in one forward pass. At most
    `DOODLE_MAX_NUMBER_DIGITS` (default 16) digits: a drawing with more is a 422, as is a blank
    one. Each digit comes with its ``image_vector``, ready to send back to ``/feedback``."""
    state = _state(request)
    limit = state.settings.max_number_digits
    with _uploaded_canvas(state, file) as canvas:
        try:
            pieces = cut_number(_loaded_model(state), canvas, max_digits=limit)
        except TooManyDigitsError as exc:
            raise HTTPException(422, messages.TOO_MANY_DIGITS.format(count=exc.count, limit=limit)) from None
        except FaintDigitError as exc:
            raise HTTPException(422, messages.DIGIT_TOO_FAINT.format(index=exc.index + 1)) from None
        del canvas
    found = pieces.found
    if not found.boxes:
        raise HTTPException(422, messages.NUMBER_UNREADABLE.format(reason=found.reason))
    images = pieces.inputs.reshape(len(found), N_PIXELS)
    digits, probs, confidences, model = _predict(state, images)
    state.metrics.number_digits.observe(len(digits))
    payload = {
        "number": "".join(str(int(d)) for d in digits),
        "digits": [
            {
                "digit": int(d),
                "confidence": float(c),
                "box": box.xywh,
                "probabilities": p.tolist(),
                "image_vector": image.tolist(),
            }
            for d, p, c, box, image in zip(digits, probs, confidences, found.boxes, images)
        ],
        "model_version": model.version,
        "reason": found.reason,
    }
    return json_response(payload)


# How far off the pad a point may lie, as a share of the pad's size: a stroke may run off the edge,
# a point a pad away is not a drawing on this pad.
STROKES_MARGIN = 0.5


def _checked_strokes(body: StrokesPredictRequest | FeedbackRequest) -> list[np.ndarray]:
    """The request's strokes as ``(K, 2)`` float64 arrays on its pad; 422 for too many points or a
    point far outside the pad (the schema has already refused empty and non-finite ones). The one
    check of `/predict/strokes` and of a correction sent with its strokes."""
    count = sum(len(stroke) for stroke in body.strokes)
    if count > MAX_STROKE_POINTS:
        raise HTTPException(422, messages.TOO_MANY_POINTS.format(count=count, limit=MAX_STROKE_POINTS))
    strokes = [np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in body.strokes]
    size = np.array([body.width, body.height], dtype=np.float64)
    for index, stroke in enumerate(strokes):
        outside = np.flatnonzero(
            ((stroke < -STROKES_MARGIN * size) | (stroke > (1 + STROKES_MARGIN) * size)).any(axis=1)
        )
        if outside.size:
            x, y = stroke[outside[0]]
            raise HTTPException(
                422,
                messages.FAR_OUTSIDE_PAD.format(
                    index=index, point=int(outside[0]), x=x, y=y, width=body.width, height=body.height
                ),
            )
    return strokes


def _pad_image(strokes: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """The pixel view of a drawing: its strokes scaled onto the app's pad (the longer side to
    `CANVAS_SIZE`), drawn with the pad's own pen (`render_strokes`, `PEN_WIDTH`) and made a
    28x28 input by `canvas_to_input`, exactly as the pad reads what is drawn on it: ``(1, 784)``."""
    scale = CANVAS_SIZE / max(width, height)
    pad = render_strokes(
        [[(float(x), float(y)) for x, y in stroke * scale] for stroke in strokes], pen_width=PEN_WIDTH
    )
    try:
        return canvas_to_input(pad).reshape(1, -1)
    except BlankCanvasError:  # every stroke off the pad's edge: nothing drawn on it
        raise HTTPException(422, messages.BLANK_CANVAS) from None


@router.post(
    "/predict/strokes",
    response_model=StrokesPredictResponse,
    responses={
        **ERRORS,
        422: {
            "model": ErrorResponse,
            "description": (
                "The strokes are not a drawing: no strokes, an empty stroke, a point that is not two finite"
                f" numbers, a point far outside the pad, more than {MAX_STROKE_POINTS} points in all, or no ink"
                " left on the pad."
            ),
        },
    },
    summary="Predict one digit from its pen strokes",
)
def predict_strokes(body: StrokesPredictRequest, request: Request) -> Response:
    """Read a digit from its strokes as the pad records them (pad pixels, y down, in drawing order)
    with both views: the pixels (the strokes drawn with the pad's pen, then `canvas_to_input`: what
    the pad itself reads) and the pen's path (`doodle.model.path_features`, when the served model has a
    path model), pooled ``log p_pixels + w log p_path``. ``views`` says which were used; a model
    without a path model answers from the pixels alone, as `/predict/image` would."""
    state = _state(request)
    _loaded_model(state)
    strokes = _checked_strokes(body)
    images = _pad_image(strokes, body.width, body.height)
    digits, probs, confidences, model, views = _predict(state, images, drawings=[strokes])
    (payload,) = _predictions(model, digits, probs, confidences)
    payload["model_version"] = model.version
    payload["image_vector"] = images[0].tolist()
    payload["views"] = views
    return json_response(payload)


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={
        **ERRORS,
        422: {
            "model": ErrorResponse,
            "description": (
                "The correction is not one: an image or digit out of range, or strokes that are not a drawing"
                " (no strokes, an empty stroke, a point that is not two finite numbers, a point far outside the"
                f" pad, more than {MAX_STROKE_POINTS} points in all), as /predict/strokes refuses them."
            ),
        },
    },
    summary="Store a correction",
)
@router.post("/feedback/", response_model=FeedbackResponse, include_in_schema=False)
def feedback(body: FeedbackRequest, request: Request) -> Response:
    """Store what a drawing really was, with the pen's strokes when they are sent (checked as
    `/predict/strokes` checks them); answered only once the row is committed to disk."""
    state = _state(request)
    strokes = None if body.strokes is None else _checked_strokes(body)
    if state.feedback_store is None:
        raise HTTPException(503, messages.FEEDBACK_UNAVAILABLE.format(reason=state.feedback_error))
    model = state.model
    try:
        row_id = state.feedback_store.add(
            np.asarray(body.image_vector, dtype=np.float32),
            body.predicted_digit,
            body.actual_digit,
            source="api",
            model_version=model.version if model is not None else None,
            strokes=strokes,
        )
    except (sqlite3.Error, FeedbackNotStored) as exc:  # locked, disk full, database gone: nothing stored
        log.error("feedback not stored: %s", exc)
        reason = str(exc) if isinstance(exc, FeedbackNotStored) else type(exc).__name__
        raise HTTPException(503, messages.FEEDBACK_NOT_STORED.format(reason=reason)) from None
    state.metrics.observe_feedback(body.predicted_digit, body.actual_digit)
    return json_response({"message": messages.FEEDBACK_STORED, "id": row_id})


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
async def healthz() -> Response:
    """The process is up and answering (whether or not a model is loaded)."""
    return json_response({"status": "alive"})


@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "No model is loaded."}},
    summary="Readiness",
)
async def readyz(request: Request) -> Response:
    """200 when a model is loaded and predictions are served, 503 with the reason otherwise; with
    a PostgreSQL feedback store configured, also 503 while that store cannot be opened."""
    state = _state(request)
    model = state.model
    if model is None:
        return json_response({"ready": False, "model_version": None, "reason": state.model_error}, 503)
    if state.settings.feedback_url and state.feedback_store is None:
        reason = messages.FEEDBACK_UNAVAILABLE.format(reason=state.feedback_error)
        return json_response({"ready": False, "model_version": model.version, "reason": reason}, 503)
    return json_response({"ready": True, "model_version": model.version, "reason": None})


@router.get("/model", response_model=ModelInfo, responses={503: ERRORS[503]}, summary="Served model")
async def model_info(request: Request) -> Response:
    """Version, SHA-256, layer sizes and the training metrics recorded in the model's metadata."""
    state = _state(request)
    model = _loaded_model(state)
    metadata = dict(model.metadata)
    return json_response(
        {
            "version": model.version,
            "sha256": model.sha256,
            "layer_sizes": model.layer_sizes,
            "source": _public_source(state.settings.model_uri),
            "normalization": metadata.get("normalization", {}),
            "unsure_margin": model.unsure_margin,
            "metrics": metadata.get("metrics", {}),
            "metadata": metadata,
            "switched_at": state.watcher.switched_at if state.watcher is not None else None,
        }
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """The Prometheus text exposition of this app's registry (a plain route: 200, no redirect)."""
    return Response(generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
