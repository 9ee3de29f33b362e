"""The API application: `create_app()` builds a FastAPI app whose lifespan loads the model.

Run it with ``uvicorn serving.main:create_app --factory --host 127.0.0.1 --port 8000``. Nothing is
loaded at import. When the model cannot be loaded the app still starts: ``/healthz`` answers,
``/readyz`` and the prediction routes answer 503 with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import disable_created_metrics
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from doodle.loop.feedback_store import open_store
from doodle.loop.model_watch import ModelWatcher
from serving.config import Settings
from serving.drift import DriftReference
from serving.errors import http_error_handler, validation_error_handler
from serving.metrics import Metrics
from serving.middleware import BodyLimitMiddleware, MetricsMiddleware
from serving.model_source import load_served_model, source_fingerprint
from serving.routes import DirectPredictMiddleware, router
from serving.state import ServingState

log = logging.getLogger("serving")

ABSOLUTE_PATH = re.compile(r"(?<![\w:])/(?:[^\s/:,'\"()]+/)+")


def public_reason(exc: BaseException) -> str:
    """What a client may read of a start-up failure: the error's type and message with the
    server's directories cut from any path (the full text goes to the log)."""
    return f"{type(exc).__name__}: {ABSOLUTE_PATH.sub('', str(exc))}"


def load_state(state: ServingState) -> None:
    """Load the model, open the feedback store and read the drift reference, recording why
    any of them failed instead of raising: a half-working server still reports its health."""
    settings = state.settings
    state.watcher = ModelWatcher(
        lambda: load_served_model(settings.model_uri), source_fingerprint(settings.model_uri)
    )
    try:
        state.model = state.watcher.load_initial()
        state.model_error = None
        state.metrics.set_model(state.model.version, state.model.sha256, state.watcher.switched_at)
        log.info("serving model %s from %s", state.model.version, settings.model_uri)
    except Exception as exc:  # any failure: missing file, bad checksum, MLflow unreachable
        state.model = None
        log.error("no model loaded: %s: %s", type(exc).__name__, exc)
        state.model_error = public_reason(exc)
    open_feedback_store(state)
    try:
        state.drift_reference = DriftReference.from_prepare_metrics(settings.reference_stats)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("no drift reference (%s): doodle_input_drift_score stays NaN", exc)


def open_feedback_store(state: ServingState) -> None:
    """Open the configured store (PostgreSQL when ``DOODLE_FEEDBACK_URL`` is set, else the SQLite
    file), recording why it failed: never another store in its place."""
    settings = state.settings
    try:
        state.feedback_store = open_store(settings.feedback_url, settings.feedback_db)
        state.feedback_error = None
    except Exception as exc:  # unreachable server, wrong credentials, unwritable folder
        log.error("feedback store unavailable: %s: %s", type(exc).__name__, exc)
        state.feedback_error = public_reason(exc)


def refresh_model(state: ServingState) -> None:
    """One poll of the model source (see `doodle.loop.model_watch`): switch to a new model that
    loaded and checked, or count and log a refused one while the old model keeps serving; then
    update the live accuracy from the feedback store. Runs in a worker thread."""
    watcher = state.watcher
    if watcher is not None:
        switch = watcher.poll()
        if switch.outcome == "switched":
            # One assignment: a request that already took the old model finishes with it.
            state.model = switch.model
            state.model_error = None
            state.metrics.set_model(switch.model.version, switch.model.sha256, watcher.switched_at)
            state.metrics.model_switches.inc()
        elif switch.outcome == "refused":
            state.metrics.model_load_failures.inc()
            if state.model is None:  # nothing served yet: readiness says why
                state.model_error = ABSOLUTE_PATH.sub("", switch.error or "")
    if state.feedback_store is None and state.settings.feedback_url:
        open_feedback_store(state)  # the database may have come up since: ready once it has
    model, store = state.model, state.feedback_store
    if model is not None and store is not None:
        try:
            rows, errors = store.recent_outcomes(state.settings.live_accuracy_window, model.version)
        except Exception as exc:  # a locked or missing store must not stop the polling
            log.warning("live accuracy not updated: %s: %s", type(exc).__name__, exc)
        else:
            state.metrics.set_live_accuracy(rows, errors)


async def poll_model_source(state: ServingState, interval_s: float) -> None:
    """Call `refresh_model` every ``interval_s`` seconds in a worker thread, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(refresh_model, state)
        except Exception:  # keep polling whatever one poll hit
            log.exception("model source poll failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own settings (default: from the environment) and metric registry."""
    settings = settings or Settings.from_env()
    # The *_created series double the exposition size and no dashboard uses them.
    disable_created_metrics()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
            load_state(app.state.serving)
            poller = None
            if settings.model_poll_seconds > 0:
                poller = asyncio.create_task(
                    poll_model_source(app.state.serving, settings.model_poll_seconds)
                )
            try:
                yield
            finally:
                if poller is not None:
                    poller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poller
                if app.state.serving.feedback_store is not None:
                    app.state.serving.feedback_store.close()

    app = FastAPI(
        title="Doodle Digits API",
        version="1.0.0",
        summary="A NumPy multilayer perceptron that reads hand-drawn digits.",
        lifespan=lifespan,
    )
    app.state.serving = ServingState(settings=settings, metrics=metrics)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    # Innermost first: well-formed /predict requests are answered directly, inside the size check,
    # which runs before any parsing; CORS headers go on every answer, 413s included; the metrics see
    # everything, CORS preflights and 413s too.
    app.add_middleware(DirectPredictMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_credentials=False,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routers=(app.router, router))
    return app
