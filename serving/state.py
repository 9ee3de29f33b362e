"""What the running server holds: the served model (or why there is none), the feedback store,
the drift reference, the model watcher, its settings and metrics. `serving.main` builds and
refreshes it; the routes read it from ``app.state.serving``."""

from __future__ import annotations

from dataclasses import dataclass

from doodle.loop.feedback import FeedbackStore
from doodle.loop.model_watch import ModelWatcher
from doodle.model.model_io import Model
from serving import messages
from serving.config import Settings
from serving.drift import DriftReference
from serving.metrics import Metrics


@dataclass
class ServingState:
    """Everything the routes need, built in the app's lifespan and kept in ``app.state.serving``."""

    settings: Settings
    metrics: Metrics
    model: Model | None = None
    model_error: str | None = messages.MODEL_NOT_LOADED_YET
    feedback_store: FeedbackStore | None = None
    feedback_error: str | None = None
    drift_reference: DriftReference | None = None
    watcher: ModelWatcher | None = None  # polls the model source; swaps `model` between requests
