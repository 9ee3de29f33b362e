"""Prometheus metric definitions of the API, one registry per app so that apps (and tests)
never share counters.

Drift signal (``doodle_input_drift_score``): for each prediction request the server computes two
statistics of its input image(s) on the [0, 1] scale, the mean intensity and the ink fraction
(share of pixels > 0.5), averaged over the request's images, and their z-scores against the
training images' distribution recorded by the prepare stage (``image_mean_mean`` /
``image_mean_std`` and ``ink_fraction_mean`` / ``ink_fraction_std`` in
``reports/metrics/prepare.json``). The score is the larger of the two ``|z|``; the gauge holds the
last request's score and ``doodle_drifted_requests_total`` counts requests whose score exceeded
the threshold (default 3). Without the reference file the gauge stays NaN and nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
INFERENCE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25)
NUMBER_DIGIT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Family:
    """One metric family of the app: the `Metrics` attribute that holds it, its kind and what Prometheus shows."""

    attribute: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


FAMILIES = (
    Family(
        "http_requests",
        Counter,
        "doodle_http_requests_total",
        "HTTP requests answered, by route template, method and status code.",
        ("route", "method", "status"),
    ),
    Family(
        "http_duration",
        Histogram,
        "doodle_http_request_duration_seconds",
        "Time from receiving a request to sending the end of its response, by route template.",
        ("route",),
        LATENCY_BUCKETS,
    ),
    Family(
        "inference_seconds",
        Histogram,
        "doodle_inference_seconds",
        "Time spent in the model's forward pass per request (single or batch).",
        buckets=INFERENCE_BUCKETS,
    ),
    Family(
        "predictions", Counter, "doodle_predictions_total", "Predicted digits, one per image.", ("digit",)
    ),
    Family(
        "confidence",
        Histogram,
        "doodle_prediction_confidence",
        "Probability the model gave its predicted digit, one observation per image.",
        buckets=CONFIDENCE_BUCKETS,
    ),
    Family(
        "drift_score",
        Gauge,
        "doodle_input_drift_score",
        "max(|z| of mean intensity, |z| of ink fraction) of the last prediction request's"
        " images against the training images (see serving/metrics.py).",
    ),
    Family(
        "drifted_requests",
        Counter,
        "doodle_drifted_requests_total",
        "Prediction requests whose drift score exceeded the threshold.",
    ),
    Family(
        "feedback",
        Counter,
        "doodle_feedback_total",
        "Feedback rows stored through the API, by predicted and actual digit.",
        ("predicted", "actual"),
    ),
    Family(
        "feedback_errors",
        Counter,
        "doodle_feedback_errors_total",
        "Feedback rows where the prediction was wrong (predicted != actual).",
        ("predicted", "actual"),
    ),
    Family(
        "model_info",
        Gauge,
        "doodle_model_info",
        "The served model: 1 with its version and SHA-256 as labels.",
        ("version", "sha256"),
    ),
    Family(
        "model_loaded", Gauge, "doodle_model_loaded", "1 when a model is loaded and predictions are served."
    ),
    Family(
        "number_digits",
        Histogram,
        "doodle_number_digits",
        "Digits read per /predict/number request.",
        buckets=NUMBER_DIGIT_BUCKETS,
    ),
    Family(
        "model_switch_time",
        Gauge,
        "doodle_model_switch_timestamp_seconds",
        "When the served model was loaded or last switched (seconds since the epoch).",
    ),
    Family(
        "model_switches",
        Counter,
        "doodle_model_switches_total",
        "Switches to a new model found at the model source while serving.",
    ),
    Family(
        "model_load_failures",
        Counter,
        "doodle_model_load_failures_total",
        "New models found at the model source and refused (unreadable, corrupt): the old one kept serving.",
    ),
    Family(
        "live_accuracy",
        Gauge,
        "doodle_live_accuracy",
        "Share of the newest feedback rows about the served model version where it was right"
        " (rolling window; NaN without feedback). People mostly report mistakes, so this is a"
        " lower bound on accuracy, best read as a trend.",
    ),
    Family(
        "live_accuracy_rows",
        Gauge,
        "doodle_live_accuracy_rows",
        "Feedback rows behind doodle_live_accuracy (at most the window size).",
    ),
)

# Every metric name the app exports; the Grafana dashboard test checks its PromQL against these.
METRIC_NAMES = tuple(family.name for family in FAMILIES)


class Metrics:
    """The app's metrics (one attribute per `FAMILIES` entry), registered in their own `CollectorRegistry`."""

    http_requests: Counter
    http_duration: Histogram
    inference_seconds: Histogram
    predictions: Counter
    confidence: Histogram
    drift_score: Gauge
    drifted_requests: Counter
    feedback: Counter
    feedback_errors: Counter
    model_info: Gauge
    model_loaded: Gauge
    number_digits: Histogram
    model_switch_time: Gauge
    model_switches: Counter
    model_load_failures: Counter
    live_accuracy: Gauge
    live_accuracy_rows: Gauge

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for family in FAMILIES:
            extra = {"buckets": family.buckets} if family.buckets is not None else {}
            metric = family.kind(family.name, family.help, family.labels, registry=self.registry, **extra)
            setattr(self, family.attribute, metric)
        self.live_accuracy.set(float("nan"))
        self.drift_score.set(float("nan"))
        self.model_loaded.set(0)
        # Pre-create the per-digit series so rate() and dashboards see zeros, not gaps; kept, as
        # `labels()` takes a lock and builds a key on every call.
        self._digit_series = [self.predictions.labels(digit=str(digit)) for digit in range(10)]

    def observe_predictions(self, digits, confidences) -> None:
        """Count ``(N,)`` predicted digits and observe their ``(N,)`` confidences."""
        for digit, confidence in zip(digits.tolist(), confidences.tolist()):
            self._digit_series[digit].inc()
            self.confidence.observe(confidence)

    def observe_prediction(self, digit: int, confidence: float) -> None:
        """`observe_predictions` for one image, given as Python numbers."""
        self._digit_series[digit].inc()
        self.confidence.observe(confidence)

    def observe_feedback(self, predicted: int, actual: int) -> None:
        labels = {"predicted": str(predicted), "actual": str(actual)}
        self.feedback.labels(**labels).inc()
        if predicted != actual:
            self.feedback_errors.labels(**labels).inc()

    def set_model(self, version: str, sha256: str, switched_at: float | None = None) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, sha256=sha256).set(1)
        self.model_loaded.set(1)
        if switched_at is not None:
            self.model_switch_time.set(switched_at)

    def set_live_accuracy(self, rows: int, errors: int) -> None:
        """The rolling window's ``rows`` feedback rows, ``errors`` of them corrections."""
        self.live_accuracy_rows.set(rows)
        self.live_accuracy.set((rows - errors) / rows if rows else float("nan"))
