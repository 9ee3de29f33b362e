"""The path model: the NumPy MLP of `doodle.model.mlp` reading the pen's path (`doodle.model.path_features`).

Same maths as the pixel model (`mlp.loss_and_grads`), same AdamW and cosine schedule
(`doodle.model.optim`), same temperature calibration (`doodle.model.evaluate.fit_temperature`); only the input
differs: ``5 * points`` path features in place of 784 pixels. Training data are the real writers'
trajectories and people's corrections made on the pad with their strokes (MNIST has no paths).
`train_path_model` takes feature arrays; augmentation happens on the strokes before
(`augmented_features`), so each epoch sees a few distorted copies of every digit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from doodle.constants import N_CLASSES
from doodle.model import mlp, optim, path_features
from doodle.model.evaluate import fit_temperature
from doodle.model.path_io import pool


@dataclass
class PathConfig:
    """The path model's hyper-parameters (params.yaml's ``train_path`` section)."""

    points: int = path_features.POINTS  # resampled points per digit
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 2e-3  # peak, cosine to 0
    weight_decay: float = 1e-4  # AdamW, decoupled
    label_smoothing: float = 0.05
    augment_copies: int = 4  # distorted copies of every training digit, beside the digit itself
    max_rotation: float = 10.0  # degrees, either way
    max_slant: float = 0.25  # horizontal shear factor, either way
    scale_min: float = 0.85  # x and y scaled separately within this range
    scale_max: float = 1.15
    jitter: float = 0.01  # sd of point noise, in units of the drawing's size
    # MLPs trained from different seeds (and distortions), their logits averaged: one MLP of the same
    # format, hidden layers side by side (`stack_ensemble`). 1: a single MLP.
    ensemble: int = 3

    def __post_init__(self) -> None:
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]
        if self.epochs < 1 or self.batch_size < 1 or self.points < 2 or self.ensemble < 1:
            raise ValueError("epochs, batch_size and ensemble must be >= 1 and points >= 2")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PathConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown path model parameters: {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def augment_options(self) -> dict[str, Any]:
        return {
            "max_rotation": self.max_rotation,
            "max_slant": self.max_slant,
            "scale_range": (self.scale_min, self.scale_max),
            "jitter": self.jitter,
        }


@dataclass
class PathTrainResult:
    params: mlp.Params  # the last epoch's
    temperature: float  # fitted on the validation features (1.0 without them)
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss, val_accuracy
    epochs: int
    train_seconds: float
    config: PathConfig


def augmented_features(
    drawings: Sequence[Sequence[np.ndarray]], labels: np.ndarray, config: PathConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training set the path model sees: every drawing as drawn, then ``augment_copies``
    distorted copies of each (`path_features.augment_strokes`, seeded): ``(N * (1 + copies), D)``
    float32 and the labels repeated to match."""
    rng = np.random.default_rng(seed)
    options = config.augment_options()
    parts = [path_features.features_of(drawings, config.points)]
    for _ in range(config.augment_copies):
        distorted = [path_features.augment_strokes(strokes, rng, **options) for strokes in drawings]
        parts.append(path_features.features_of(distorted, config.points))
    return np.concatenate(parts), np.tile(np.asarray(labels, dtype=np.int64), 1 + config.augment_copies)


def train_path_model(
    features: np.ndarray,
    labels: np.ndarray,
    config: PathConfig,
    seed: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    blas_threads: int | None = 1,
) -> PathTrainResult:
    """Train an MLP ``[D, *hidden_sizes, 10]`` on ``(N, D)`` float32 path features and ``(N,)``
    labels 0..9 with AdamW and a cosine schedule, shuffled from ``seed``.

    The last epoch's weights are kept: the cosine schedule has brought the step to 0 by then, and on
    the writer folds the epoch of lowest validation loss comes early (the loss rises with confidence
    while accuracy still climbs). With ``val = (features, labels)`` (other writers than training's)
    the history records validation loss and accuracy per epoch and the temperature is fitted on the
    final validation logits; without, the temperature is 1.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need (N, D) features and (N,) labels, got {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= N_CLASSES:
        raise ValueError("labels must be integers in 0..9")
    init_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
    params = mlp.init_params(
        [x.shape[1], *config.hidden_sizes, N_CLASSES], int(init_seed.generate_state(1)[0])
    )
    optimizer = optim.make_optimizer(
        "adam", params, lr=config.learning_rate, weight_decay=config.weight_decay, threads=1
    )
    rng = np.random.default_rng(shuffle_seed)
    steps_per_epoch = -(-len(x) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    workspace = mlp.Workspace()
    history: list[dict[str, float]] = []
    step = 0
    started = time.perf_counter()
    with threadpool_limits(limits=blas_threads, user_api="blas") if blas_threads else _nothing():
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(x))
            loss_sum = 0.0
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                lr = optim.lr_at(step, total_steps, config.learning_rate, "cosine")
                loss, grads, _ = mlp.loss_and_grads(
                    params, x[batch], y[batch], label_smoothing=config.label_smoothing, workspace=workspace
                )
                optimizer.step(params, grads, lr=lr)
                loss_sum += loss * len(batch)
                step += 1
            record = {"epoch": epoch, "train_loss": loss_sum / len(x)}
            if not np.isfinite(record["train_loss"]):
                raise FloatingPointError(
                    f"path model training diverged in epoch {epoch} (try a lower learning_rate)"
                )
            if val is not None:
                val_logits = mlp.forward(params, np.asarray(val[0], dtype=np.float32))
                val_loss, _ = mlp.softmax_cross_entropy(val_logits, np.asarray(val[1], dtype=np.int64))
                record["val_loss"] = val_loss
                record["val_accuracy"] = float((val_logits.argmax(axis=1) == val[1]).mean())
            history.append(record)
    temperature = 1.0
    if val is not None:
        temperature = fit_temperature(mlp.forward(params, np.asarray(val[0], dtype=np.float32)), val[1])
    return PathTrainResult(params, temperature, history, config.epochs, time.perf_counter() - started, config)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def path_proba(params: mlp.Params, features: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``(N, D)`` path features -> ``(N, 10)`` calibrated probabilities."""
    logits = mlp.forward(params, np.asarray(features, dtype=np.float32))
    return mlp.softmax(logits / np.float32(temperature))


# ---- the two views pooled

POOL_WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 2.01, 0.1))  # the grid `choose_pool_weight` searches


def choose_pool_weight(
    pixel_proba: np.ndarray,
    path_proba_: np.ndarray,
    labels: np.ndarray,
    weights: Sequence[float] = POOL_WEIGHTS,
) -> float:
    """The weight of the grid with the most digits read right by the pool, ties broken by the lower
    mean negative log-likelihood: chosen on out-of-fold predictions of writers the models never saw."""
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))

    def score(weight: float) -> tuple[int, float]:
        pooled = pool(pixel_proba, path_proba_, weight)
        return int((pooled.argmax(axis=1) == y).sum()), -float(
            np.log(np.maximum(pooled[rows, y], 1e-12)).mean()
        )

    return float(max(weights, key=score))


def stack_ensemble(members: Sequence[mlp.Params]) -> mlp.Params:
    """MLPs of one shape -> one MLP whose logits are their mean: the hidden layers side by side
    (the first layer's weights concatenated, the later hidden layers' block-diagonal), the output
    layer's weights stacked and, with its biases, divided by their number. The same forward pass and
    file format as any MLP; one member is returned as it is."""
    if len(members) == 1:
        return dict(members[0])
    count = mlp.n_layers(members[0])
    share = np.float32(1.0 / len(members))
    stacked: mlp.Params = {}
    for i in range(1, count + 1):
        weights = [member[f"W{i}"] for member in members]
        biases = [member[f"b{i}"] for member in members]
        if i == count:  # the members' hidden units side by side (no hidden layer: the inputs, shared)
            together = np.mean(weights, axis=0) if count == 1 else np.concatenate(weights, axis=0) * share
            stacked[f"W{i}"] = together.astype(weights[0].dtype)
            stacked[f"b{i}"] = (np.sum(biases, axis=0) * share).astype(biases[0].dtype)
        else:
            if i == 1:
                stacked["W1"] = np.concatenate(weights, axis=1)
            else:
                block = np.zeros(
                    (sum(w.shape[0] for w in weights), sum(w.shape[1] for w in weights)), weights[0].dtype
                )
                row = col = 0
                for weight in weights:
                    block[row : row + weight.shape[0], col : col + weight.shape[1]] = weight
                    row, col = row + weight.shape[0], col + weight.shape[1]
                stacked[f"W{i}"] = block
            stacked[f"b{i}"] = np.concatenate(biases)
    return stacked


def train_ensemble(
    drawings: Sequence[Sequence[np.ndarray]],
    labels: np.ndarray,
    config: PathConfig,
    seed: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> PathTrainResult:
    """``config.ensemble`` path MLPs, each on its own distorted copies (`augmented_features`) and
    shuffle, stacked into one (`stack_ensemble`). Member 0 uses ``seed`` and ``seed + 1`` exactly as a
    single model does. With ``val`` the temperature is fitted on the stacked model's logits and the
    history's last record holds its validation figures."""
    members, seconds, history = [], 0.0, []
    for member in range(config.ensemble):
        offset = 7919 * member
        x, y = augmented_features(drawings, labels, config, seed + offset)
        result = train_path_model(x, y, config, seed + 1 + offset, val=val)
        members.append(result.params)
        seconds += result.train_seconds
        history = history or result.history
    if len(members) == 1:
        return result
    params = stack_ensemble(members)
    temperature = 1.0
    history = [dict(record) for record in history]
    if val is not None:
        logits = mlp.forward(params, np.asarray(val[0], dtype=np.float32))
        temperature = fit_temperature(logits, val[1])
        history[-1]["val_accuracy"] = float((logits.argmax(axis=1) == val[1]).mean())
    return PathTrainResult(params, temperature, history, config.epochs, seconds, config)


def train_calibrated(
    drawings: Sequence[Sequence[np.ndarray]],
    labels: np.ndarray,
    folds: np.ndarray,
    held_out: int,
    config: PathConfig,
    seed: int,
    *,
    extra: tuple[Sequence[Sequence[np.ndarray]], np.ndarray] | None = None,
) -> tuple[PathTrainResult, float]:
    """The path model of every writer fold but ``held_out``, calibrated without touching it.

    The model trains on all the other folds (more writers read better: four folds of six writers beat
    three). Its temperature comes from a twin trained the same way without one more fold (the next
    one round), fitted on that fold's digits, writers neither twin saw: temperatures of one
    configuration barely move between such twins, and no digit of ``held_out`` is used. ``folds``:
    ``(N,)`` fold of each drawing. ``extra``: ``(drawings, labels)`` from outside the writer folds
    (people's corrections made on the pad, `doodle.loop.feedback_data.path_training_rows`), trained on by
    the model and its twin alike, never calibrated on. Returns the model (its ``temperature`` set) and
    the twin's accuracy on the fold it was calibrated on."""
    labels = np.asarray(labels, dtype=np.int64)
    folds = np.asarray(folds)
    count = int(folds.max()) + 1
    val_fold = (held_out + 1) % count
    twin_rows = np.flatnonzero((folds != held_out) & (folds != val_fold))
    val_rows = np.flatnonzero(folds == val_fold)
    train_rows = np.flatnonzero(folds != held_out)
    extra_drawings, extra_labels = ([], np.empty(0, np.int64)) if extra is None else extra
    extra_drawings = list(extra_drawings)
    extra_labels = np.asarray(extra_labels, dtype=np.int64)
    if len(extra_drawings) != len(extra_labels):
        raise ValueError(f"{len(extra_drawings)} extra drawings for {len(extra_labels)} labels")

    def training_set(rows: np.ndarray) -> tuple[list, np.ndarray]:
        return [drawings[i] for i in rows] + extra_drawings, np.concatenate([labels[rows], extra_labels])

    val_features = path_features.features_of([drawings[i] for i in val_rows], config.points)
    twin = train_ensemble(*training_set(twin_rows), config, seed, val=(val_features, labels[val_rows]))
    model = train_ensemble(*training_set(train_rows), config, seed + 2)
    model.temperature = twin.temperature
    return model, float(twin.history[-1]["val_accuracy"])
