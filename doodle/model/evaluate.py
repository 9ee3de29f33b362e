"""Evaluation metrics on arrays: accuracy, confusion matrix, per-class scores, calibration,
the most confident mistakes, the kinds of mistakes and robustness curves. Pure functions; the evaluation notebook
does the I/O and the plotting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from doodle.constants import N_CLASSES

CALIBRATION_BINS = 15


def _labels(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array.astype(np.int64, copy=False)


def _paired(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no predictions to evaluate")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of ``y_pred == y_true``; both ``(N,)`` integer labels."""
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """``(N,)``, ``(N,)`` labels -> ``(n_classes, n_classes)`` int64 counts; row = true, column = predicted."""
    y_true, y_pred = _paired(y_true, y_pred)
    if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


@dataclass(frozen=True)
class ClassReport:
    """Per-class scores, each ``(n_classes,)``: float64 precision/recall/F1, int64 support
    (true instances). A class never predicted has precision 0; one never present has recall 0."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def macro_f1(self) -> float:
        """Unweighted mean of the per-class F1 scores."""
        return float(self.f1.mean())

    def rows(self) -> list[dict[str, float | int]]:
        """One dict per class, ready for a table or a JSON file."""
        return [
            {
                "digit": digit,
                "precision": float(self.precision[digit]),
                "recall": float(self.recall[digit]),
                "f1": float(self.f1[digit]),
                "support": int(self.support[digit]),
            }
            for digit in range(len(self.f1))
        ]


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> ClassReport:
    """Precision, recall, F1 and support per class, from the confusion matrix."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    true_positives = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, actual)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return ClassReport(precision=precision, recall=recall, f1=f1, support=actual.astype(np.int64))


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins over [0, 1]. ``edges`` is ``(n_bins + 1,)``; ``counts``
    ``(n_bins,)`` int64; ``confidence`` and ``accuracy`` ``(n_bins,)`` float64 means, NaN in
    empty bins."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of (share of samples) * |accuracy - confidence|."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_bins(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> ReliabilityBins:
    """``(N, C)`` probabilities and ``(N,)`` labels -> reliability bins of the top-class confidence.

    Bin ``b`` holds confidences in ``(b/n, (b+1)/n]``; a confidence of exactly 0 falls in bin 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = _labels(y_true, "y_true")
    if probs.ndim != 2 or len(probs) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"expected probs (N, C) and labels (N,), got {probs.shape} and {y_true.shape}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Searching the inner edges from the left puts c in (edges[b], edges[b+1]] and 0 in bin 0,
    # using the very edges reported, so a confidence equal to an edge lands in the bin it closes.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        mean_accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return ReliabilityBins(
        edges=edges, counts=counts.astype(np.int64), confidence=mean_confidence, accuracy=mean_accuracy
    )


def expected_calibration_error(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> float:
    """ECE of ``(N, C)`` probabilities against ``(N,)`` labels with ``n_bins`` equal-width bins."""
    return reliability_bins(probs, y_true, n_bins).ece


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature T that minimises the mean negative log-likelihood of softmax(logits / T).

    Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") fitted on
    validation logits: ``(N, 10)`` float, ``(N,)`` int -> float. Label smoothing trains a model to
    be less confident than it is accurate (T < 1 sharpens it again); T never changes the argmax.
    The NLL is convex in 1/T, so a golden-section search over log T finds the minimum.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError(f"need (N, K) logits and (N,) labels, got {z.shape} and {y.shape}")
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float((log_norm - scaled[rows, y]).mean())

    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    f_a, f_b = nll(a), nll(b)
    for _ in range(80):
        if f_a < f_b:
            high, b, f_b = b, a, f_a
            a = high - ratio * (high - low)
            f_a = nll(a)
        else:
            low, a, f_a = a, b, f_b
            b = low + ratio * (high - low)
            f_b = nll(b)
    return float(np.exp((low + high) / 2.0))


def most_confident_mistakes(probs: np.ndarray, y_true: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(<= k,)`` int64 of misclassified samples, most confident wrong answer first.

    Ties keep the original order, so the result is deterministic.
    """
    probs = np.asarray(probs)
    y_true = _labels(y_true, "y_true")
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probs[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order[:k]].astype(np.int64)


def _digits_of(predict: Callable[[np.ndarray], object], images: np.ndarray) -> np.ndarray:
    result = predict(images)
    if isinstance(result, tuple):  # Model.predict returns (digits, probs)
        result = result[0]
    return np.asarray(result)


def robustness_curve(
    predict: Callable[[np.ndarray], object],
    images: np.ndarray,
    y_true: np.ndarray,
    transform: Callable[[np.ndarray, float], np.ndarray],
    values: Iterable[float],
) -> np.ndarray:
    """Accuracy as a transform's parameter varies.

    ``predict`` maps ``(N, 28, 28)`` float32 images to ``(N,)`` digits (or to ``(digits, probs)``
    as ``Model.predict`` does); ``transform(images, value)`` is one of ``doodle.model.augment``'s
    deterministic transforms (wrap it with a lambda to choose which argument varies).
    Returns ``(len(values), 2)`` float64 rows of ``(value, accuracy)``.
    """
    images = np.asarray(images, dtype=np.float32)
    rows = [
        (float(value), accuracy(y_true, _digits_of(predict, transform(images, value)))) for value in values
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def agreement(predict: Callable[[np.ndarray], object], images: np.ndarray, transformed: np.ndarray) -> float:
    """Fraction of images whose predicted digit is unchanged by a transform: ``(N, 28, 28)`` twice."""
    before = _digits_of(predict, np.asarray(images, dtype=np.float32))
    after = _digits_of(predict, np.asarray(transformed, dtype=np.float32))
    return accuracy(before, after)


# The unsure margin flags this share of the validation mistakes (those with the closest top two).
UNSURE_MISTAKE_SHARE = 0.5


def choose_unsure_margin(
    probabilities: np.ndarray, labels: np.ndarray, mistake_share: float = UNSURE_MISTAKE_SHARE
) -> float:
    """The margin between the top two probabilities below which ``mistake_share`` of the
    mistakes fall: ``(N, 10)`` validation probabilities and ``(N,)`` labels -> float (0.0 when
    there is no mistake). An answer with a smaller margin is shown with its runner-up."""
    probs = np.asarray(probabilities, dtype=np.float64)
    digits = probs.argmax(axis=1)
    ordered = np.sort(probs, axis=1)
    margins = ordered[:, -1] - ordered[:, -2]
    wrong = margins[digits != np.asarray(labels)]
    return float(np.quantile(wrong, mistake_share)) if len(wrong) else 0.0


# Error analysis: the kinds a test mistake is sorted into, and the rule's thresholds.
MISTAKE_KINDS = ("label noise", "ambiguous", "genuine")
CONFIDENT = 0.9  # the answer's probability at or above which a mistake is confident
IMPLAUSIBLE_LABEL = 0.01  # the label's probability at or below which the model rules the label out


@dataclass(frozen=True)
class MistakeKinds:
    """The model's mistakes sorted into `MISTAKE_KINDS`: ``indices`` ``(M,)`` int64 (into the
    images, ascending), ``kinds`` ``(M,)`` int64 (positions in `MISTAKE_KINDS`), ``seed_share``
    ``(M,)`` float64 (share of the seed runs that misread each image; NaN without seed runs) and
    ``seed_count``, the number of seed runs the rule saw."""

    indices: np.ndarray
    kinds: np.ndarray
    seed_share: np.ndarray
    seed_count: int

    def counts(self) -> dict[str, int]:
        """Mistakes per kind, every kind present (0 when none)."""
        found = np.bincount(self.kinds, minlength=len(MISTAKE_KINDS))
        return {kind: int(found[position]) for position, kind in enumerate(MISTAKE_KINDS)}

    def of(self, kind: str) -> np.ndarray:
        """Image indices ``(K,)`` int64 of the mistakes of one kind."""
        return self.indices[self.kinds == MISTAKE_KINDS.index(kind)]


def mistake_kinds(
    probs: np.ndarray,
    y_true: np.ndarray,
    seed_wrong: Sequence[Iterable[int]],
    unsure_margin: float,
    confident: float = CONFIDENT,
    implausible_label: float = IMPLAUSIBLE_LABEL,
) -> MistakeKinds:
    """Sort the mistakes of a model into label noise, ambiguous digits and genuine errors.

    ``probs`` ``(N, C)`` is the model's probabilities on N images with labels ``y_true`` ``(N,)``;
    ``seed_wrong`` holds, for each of S runs of the same configuration at other seeds (S may be 0),
    the indices of the images it misread. A mistake of the model is:

    - **label noise** when every seed run misread it too (or there is none), the model was
      confident (its answer's probability >= ``confident``) and gives the label at most
      ``implausible_label``: the whole family of models reads another digit than the label says;
    - **ambiguous** otherwise when some seed run read it right (the runs disagree), or when the
      label is the model's runner-up and the two are closer than ``unsure_margin`` (the margin
      below which the app answers "9 or 3?");
    - **genuine** otherwise: a digit the label fits that the model reads wrong.

    The seed runs' own answers are not known (only which images they missed), so "the runs agree on
    one other digit" is taken from the model's answer and their shared miss.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = _labels(y_true, "y_true")
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be (N, C) for {len(y_true)} labels, got shape {probs.shape}")
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true).astype(np.int64)
    seed_sets = []
    for run, indices in enumerate(seed_wrong):
        array = np.asarray(list(indices), dtype=np.int64)
        if array.size and (array.min() < 0 or array.max() >= len(y_true)):
            raise ValueError(f"seed run {run}: image indices must lie in 0..{len(y_true) - 1}")
        seed_sets.append(array)
    if seed_sets:
        seed_share = np.mean([np.isin(wrong, missed) for missed in seed_sets], axis=0).astype(np.float64)
    else:
        seed_share = np.full(len(wrong), np.nan)
    answer = probs[wrong, predicted[wrong]]
    label = probs[wrong, y_true[wrong]]
    others = probs[wrong].copy()
    others[np.arange(len(wrong)), predicted[wrong]] = -np.inf
    label_is_runner_up = others.argmax(axis=1) == y_true[wrong] if len(wrong) else np.zeros(0, dtype=bool)
    every_run_missed = seed_share == 1.0 if seed_sets else np.ones(len(wrong), dtype=bool)
    runs_disagree = seed_share < 1.0 if seed_sets else np.zeros(len(wrong), dtype=bool)
    kinds = np.full(len(wrong), MISTAKE_KINDS.index("genuine"), dtype=np.int64)
    ambiguous = runs_disagree | (label_is_runner_up & (answer - label < unsure_margin))
    kinds[ambiguous] = MISTAKE_KINDS.index("ambiguous")
    kinds[every_run_missed & (answer >= confident) & (label <= implausible_label)] = MISTAKE_KINDS.index(
        "label noise"
    )
    return MistakeKinds(wrong, kinds, seed_share, len(seed_sets))
