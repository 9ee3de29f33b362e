"""The training loop: mini-batch AdamW/SGD on the NumPy MLP, with augmentation and early stopping.

Arrays in, a `TrainResult` out; no files and no MLflow here (the notebook and `doodle.loop.tracking`
do that). Deterministic from ``config.seed``: the initial weights, the order of the mini-batches
and every augmentation parameter come from separate, seeded random streams, and augmenting the
next epoch in a background thread consumes those streams in the same order as doing it inline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from doodle.canvas import strokes
from doodle.constants import IMAGE_SIDE, N_CLASSES, N_PIXELS
from doodle.model import augment, mlp, optim
from doodle.model.inputs import as_float_images, standardize

# Augment in slices this big: the warp's gathers stay in cache, and memory stays flat.
AUGMENT_CHUNK = 2048
EVAL_BATCH = 4096
# One BLAS thread by default: on a busy shared machine OpenBLAS's threads busy-wait for each
# other and an epoch takes several times longer than with one (benchmarks/train_throughput.py
# measures it); the second core prepares the next epoch instead.
DEFAULT_BLAS_THREADS = 1

EMPTY_TRAINING_SET = "the training set is empty"
EMPTY_VALIDATION_SET = "the validation set is empty: early stopping and calibration need it"
BATCH_SIZE_MUST_BE_POSITIVE = "batch_size must be >= 1"
DIVERGED = (
    "training diverged in epoch {epoch}: loss {train_loss}, validation loss {val_loss}"
    " (try a lower learning_rate)"
)
EPOCHS_MUST_BE_POSITIVE = "epochs must be >= 1"
STROKE_SHARE_OUT_OF_RANGE = "stroke_share must be in [0, 1)"
LABELS_OUT_OF_RANGE = "labels must be integers in 0..9"
MISMATCHED_LENGTHS = "images and labels have different lengths: {images} vs {labels}"


@dataclass
class TrainConfig:
    """Every hyper-parameter of a training run, declared here once.

    The values live in params.yaml (``base.seed`` and the ``train`` section, whose keys are these
    field names) and the defaults below equal them (a test keeps them in step), so adding a
    hyper-parameter means one line here and one in params.yaml. `from_params_file` builds the
    pipeline's config; the training notebook receives no hyper-parameter one by one.
    """

    seed: int = 20261123  # params.yaml's base.seed: initial weights, batch order, augmentation
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 512])  # units per hidden layer
    epochs: int = 15  # maximum passes over the training set
    batch_size: int = 128  # images per gradient step
    learning_rate: float = 1e-3  # peak learning rate, reached after the warm-up
    optimizer: str = "adam"  # "adam" (AdamW) or "sgd" (momentum 0.9, Nesterov)
    weight_decay: float = 0.0  # AdamW: decoupled decay; SGD: L2 in the gradient
    lr_schedule: str = "cosine"  # "cosine", "step" or "constant"
    warmup_epochs: float = 0.0  # linear warm-up length, in epochs
    label_smoothing: float = 0.1  # target = (1 - eps) * onehot + eps / 10
    patience: int = 4  # stop after this many epochs without a lower validation loss; 0 = never
    augment: bool = True  # random distortions of every training image, every epoch
    max_rotation: float = 10.0  # degrees, either way
    max_shift: float = 2.0  # pixels, on each axis
    scale_min: float = 0.9  # random scale factor range
    scale_max: float = 1.1
    stroke_prob: float = 0.5  # fraction of images whose stroke width changes
    stroke_min: float = -0.5  # stroke change range in pixels (< 0 thinner, > 0 thicker)
    stroke_max: float = 1.0
    elastic_alpha: float = 0.0  # elastic distortion strength; 0 = off
    elastic_sigma: float = 4.0  # elastic smoothness in pixels
    stroke_share: float = 0.2  # share of every epoch's images that are generated pen-stroke digits; 0 = none
    stroke_pool: int = (
        12000  # stroke digits generated once per run (doodle.canvas.strokes), re-augmented every epoch
    )
    # Read by the training notebook, not by `train`: each feedback-train row (doodle.loop.feedback_data)
    # is repeated this many times in the training set; 0 leaves people's corrections out.
    feedback_weight: int = 5
    # Real writers (doodle.sources.pendigits), also read by the notebook: each of their digits drawn at every
    # pen width of real_pen_widths, repeated real_weight times (0 leaves them out); the writers of fold
    # real_holdout_fold stay out of training so the evaluate stage reads people the model never saw
    # (-1: every writer trains).
    real_weight: int = 1
    real_pen_widths: list[int] = field(default_factory=lambda: [10, 18, 26])
    real_holdout_fold: int = 0

    def __post_init__(self) -> None:
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]
        self.real_pen_widths = [int(pen) for pen in self.real_pen_widths]
        if self.real_weight < 0:
            raise ValueError("real_weight must be >= 0")
        if self.epochs < 1:
            raise ValueError(EPOCHS_MUST_BE_POSITIVE)
        if self.batch_size < 1:
            raise ValueError(BATCH_SIZE_MUST_BE_POSITIVE)
        if not 0.0 <= self.stroke_share < 1.0:
            raise ValueError(STROKE_SHARE_OUT_OF_RANGE)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (params.yaml's section, notebook parameters); unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_params_file(
        cls, path: str | Path, overrides: dict[str, Any] | None = None, section: str = "train"
    ) -> TrainConfig:
        """The config of a params file (params.yaml's layout: ``base.seed`` and a ``train``
        section), then ``overrides``; keys it does not name keep their defaults."""
        import yaml  # here, so that the API's model loading does not need PyYAML

        document = yaml.safe_load(Path(path).read_text()) or {}
        values: dict[str, Any] = {}
        if "seed" in (document.get("base") or {}):
            values["seed"] = document["base"]["seed"]
        values.update(document.get(section) or {})
        values.update(overrides or {})
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def augment_options(self) -> dict[str, Any]:
        """Keyword arguments for `doodle.model.augment.random_augment`."""
        return {
            "max_rotation": self.max_rotation,
            "max_shift": self.max_shift,
            "scale_range": (self.scale_min, self.scale_max),
            "stroke_prob": self.stroke_prob,
            "stroke_range": (self.stroke_min, self.stroke_max),
            "elastic_alpha": self.elastic_alpha,
            "elastic_sigma": self.elastic_sigma,
        }


@dataclass
class EpochRecord:
    """Metrics after one epoch. Training figures are running means over the epoch's (augmented)
    mini-batches; validation figures use the weights at the end of the epoch."""

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float  # at the epoch's last step
    seconds: float


@dataclass
class TrainResult:
    """What a run produced: the best epoch's weights and how it got there."""

    params: mlp.Params  # weights of `best_epoch` (lowest validation loss)
    normalization: dict[str, float]  # {"mean", "std"} of the training pixels on the [0, 1] scale
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    train_seconds: float
    config: TrainConfig

    @property
    def best(self) -> EpochRecord:
        return self.history[self.best_epoch - 1]

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def history_columns(self) -> dict[str, list[float]]:
        """The history as columns: ``{"epoch": [...], "train_loss": [...], ...}``."""
        return {
            name: [getattr(record, name) for record in self.history]
            for name in EpochRecord.__dataclass_fields__
        }


Callback = Callable[[EpochRecord], None]


def logits_of(params: mlp.Params, normalization: dict[str, float], images: np.ndarray) -> np.ndarray:
    """Logits of raw images, normalised as in training: ``(N, 784)`` or ``(N, 28, 28)``, uint8
    0..255 or float 0..1 -> ``(N, 10)`` float32."""
    return mlp.forward(params, standardize(images, normalization))


def _check_data(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = as_float_images(images)
    y = np.asarray(labels).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(MISMATCHED_LENGTHS.format(images=len(x), labels=len(y)))
    if len(y) and (y.min() < 0 or y.max() >= N_CLASSES):
        raise ValueError(LABELS_OUT_OF_RANGE)
    return x, y


def data_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the training arrays as given (``images`` bytes, then ``labels`` as int64), so a
    model file names the exact data it was trained on."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def normalization_of(images: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation over all pixels of ``(N, 28, 28)`` float32 images in [0, 1]."""
    flat = images.reshape(-1)
    mean = float(flat.mean(dtype=np.float64))
    std = float(flat.std(dtype=np.float64))
    return {"mean": mean, "std": std if std > 0 else 1.0}


def evaluate_loss_accuracy(
    params: mlp.Params, x: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of normalised ``(N, 784)`` float32 inputs, in batches."""
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), EVAL_BATCH):
        logits = mlp.forward(params, x[start : start + EVAL_BATCH])
        labels = y[start : start + EVAL_BATCH]
        loss, _ = mlp.softmax_cross_entropy(logits, labels, label_smoothing)
        total_loss += loss * len(labels)
        correct += int((logits.argmax(axis=1) == labels).sum())
    return total_loss / len(x), correct / len(x)


def stroke_pool(config: TrainConfig) -> np.ndarray:
    """The run's generated pen-stroke digits: ``(stroke_pool, 28, 28)`` float32 in [0, 1], the
    digits 0..9 in turn, by training writers only (`doodle.canvas.strokes.TRAINING_WRITERS`), from a
    seed derived from ``config.seed`` (none when ``stroke_share`` is 0)."""
    if not config.stroke_share or config.stroke_pool < 1:
        return np.empty((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    seed = int(np.random.SeedSequence(config.seed).spawn(3)[2].generate_state(1)[0])
    labels = np.arange(config.stroke_pool) % N_CLASSES
    return strokes.generate(labels, seed, family=strokes.TRAINING_WRITERS, clean_pads=True).images


class EpochData:
    """Shuffled (and optionally augmented) epochs, prepared one epoch ahead in a thread.

    An epoch is the training set plus, when ``config.stroke_share`` > 0, as many stroke digits
    drawn from the pool (with replacement) as make that share of it, all shuffled together.
    The random streams are consumed in epoch order by a single worker, so the data is the same
    whether or not it was prepared in the background. NumPy releases the GIL in the warp's
    gathers and arithmetic, so the next epoch is built while the matrix products run.
    `next_epoch` gives ``(images (M, 784) float32 standardised, labels (M,) int64)``; `train`
    consumes it, and so does any other trainer that must see the same batches
    (``scripts/torch_reference.py``). Call `close` when done.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        config: TrainConfig,
        normalization: dict[str, float],
        pool: np.ndarray | None = None,
    ):
        self.x, self.y, self.config, self.normalization = x, y, config, normalization
        self.pool = np.empty((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32) if pool is None else pool
        self.labels = np.concatenate([y, np.arange(len(self.pool)) % N_CLASSES])
        self.extra = (
            int(round(config.stroke_share / (1.0 - config.stroke_share) * len(x))) if len(self.pool) else 0
        )
        shuffle_seed, augment_seed, stroke_seed = np.random.SeedSequence(config.seed).spawn(3)
        self.shuffle_rng = np.random.default_rng(shuffle_seed)
        self.augment_rng = np.random.default_rng(augment_seed)
        self.stroke_rng = np.random.default_rng(stroke_seed)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment")
        self.pending: Future | None = None

    def _gather(self, ids: np.ndarray) -> np.ndarray:
        """Images of epoch ids: below ``len(x)`` training images, above them pool digits."""
        if not self.extra:
            return self.x[ids]
        chunk = np.empty((len(ids), IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
        own = ids < len(self.x)
        chunk[own] = self.x[ids[own]]
        chunk[~own] = self.pool[ids[~own] - len(self.x)]
        return chunk

    def _build(self) -> tuple[np.ndarray, np.ndarray]:
        if self.extra:
            drawn = len(self.x) + self.stroke_rng.integers(len(self.pool), size=self.extra)
            order = self.shuffle_rng.permutation(np.concatenate([np.arange(len(self.x)), drawn]))
        else:
            order = self.shuffle_rng.permutation(len(self.x))
        out = np.empty((len(order), N_PIXELS), dtype=np.float32)
        options = self.config.augment_options()
        for start in range(0, len(order), AUGMENT_CHUNK):
            chunk = self._gather(order[start : start + AUGMENT_CHUNK])
            if self.config.augment:
                chunk = augment.random_augment(chunk, self.augment_rng, **options)
            standardize(chunk, self.normalization, out=out[start : start + len(chunk)])
        return out, self.labels[order]

    def next_epoch(self, prefetch: bool) -> tuple[np.ndarray, np.ndarray]:
        current = self.pending.result() if self.pending is not None else self._build()
        self.pending = self.executor.submit(self._build) if prefetch else None
        return current

    def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
        self.executor.shutdown(wait=True)


def _batches(count: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def train(
    config: TrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    callbacks: Sequence[Callback] = (),
    *,
    progress: bool = True,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
) -> TrainResult:
    """Train an MLP ``[784, *hidden_sizes, 10]`` and return the weights of its best epoch.

    ``train_data`` and ``val_data``: ``(images, labels)`` with images ``(N, 784)`` or
    ``(N, 28, 28)``, uint8 0..255 or float 0..1, and labels ``(N,)`` integers 0..9. Inputs are
    standardised with the training pixels' mean and std (returned, to store with the model).
    Each epoch visits the training set in a fresh seeded order, augmented when
    ``config.augment``; after it, the validation loss decides the best epoch and early stopping
    (``config.patience``). Each callback receives every `EpochRecord` as it is made.
    ``blas_threads`` caps the BLAS threads of the matrix products (None: BLAS's own default).
    """
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return _train(config, train_data, val_data, callbacks, progress)


def _train(
    config: TrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    callbacks: Sequence[Callback],
    progress: bool,
) -> TrainResult:
    started = time.perf_counter()
    x_train, y_train = _check_data(*train_data)
    x_val, y_val = _check_data(*val_data)
    if len(x_train) == 0:
        raise ValueError(EMPTY_TRAINING_SET)
    if len(x_val) == 0:
        raise ValueError(EMPTY_VALIDATION_SET)
    normalization = normalization_of(x_train)
    val_inputs = standardize(x_val, normalization)

    params = mlp.init_params([N_PIXELS, *config.hidden_sizes, N_CLASSES], seed=config.seed)
    optimizer_options: dict[str, Any] = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    if config.optimizer.lower() == "sgd":
        optimizer_options.update(momentum=0.9, nesterov=True)
    optimizer = optim.make_optimizer(config.optimizer, params, **optimizer_options)
    data = EpochData(x_train, y_train, config, normalization, stroke_pool(config))
    steps_per_epoch = -(-(len(x_train) + data.extra) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    try:  # fail on a bad schedule name now, not after the first epoch
        optim.lr_at(0, total_steps, config.learning_rate, config.lr_schedule, warmup_steps)
    except ValueError:
        data.close()
        raise

    workspace = mlp.Workspace()  # activations and gradients reuse their buffers across steps
    history: list[EpochRecord] = []
    best_params = {key: value.copy() for key, value in params.items()}
    best_epoch, best_loss, since_best = 0, np.inf, 0
    stopped_early = False
    step = 0
    bar = tqdm(total=config.epochs, unit="epoch", desc="training", disable=not progress)
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_started = time.perf_counter()
            x_epoch, y_epoch = data.next_epoch(prefetch=epoch < config.epochs)
            loss_sum, correct = 0.0, 0
            lr = config.learning_rate
            for batch in _batches(len(x_epoch), config.batch_size):
                x_batch, y_batch = x_epoch[batch], y_epoch[batch]
                lr = optim.lr_at(step, total_steps, config.learning_rate, config.lr_schedule, warmup_steps)
                # Weight decay is the optimizer's (decoupled for AdamW), not the loss's.
                loss, grads, logits = mlp.loss_and_grads(
                    params, x_batch, y_batch, label_smoothing=config.label_smoothing, workspace=workspace
                )
                correct += int((logits.argmax(axis=1) == y_batch).sum())
                loss_sum += loss * len(y_batch)
                optimizer.step(params, grads, lr=lr)
                step += 1
            val_loss, val_accuracy = evaluate_loss_accuracy(params, val_inputs, y_val, config.label_smoothing)
            record = EpochRecord(
                epoch=epoch,
                train_loss=loss_sum / len(x_epoch),
                train_accuracy=correct / len(x_epoch),
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                learning_rate=lr,
                seconds=time.perf_counter() - epoch_started,
            )
            history.append(record)
            # NaN compares false with everything: without this, a diverged run would keep its
            # initial random weights as "best" and hand them back as a trained model.
            if not (np.isfinite(record.train_loss) and np.isfinite(val_loss)):
                raise FloatingPointError(
                    DIVERGED.format(epoch=epoch, train_loss=record.train_loss, val_loss=val_loss)
                )
            if val_loss < best_loss:
                best_epoch, best_loss, since_best = epoch, val_loss, 0
                best_params = {key: value.copy() for key, value in params.items()}
            else:
                since_best += 1
            bar.set_postfix(
                loss=f"{record.train_loss:.4f}",
                val_loss=f"{val_loss:.4f}",
                val_acc=f"{val_accuracy:.4f}",
                best=best_epoch,
                refresh=False,
            )
            bar.update(1)
            for callback in callbacks:
                callback(record)
            if config.patience and since_best >= config.patience:
                stopped_early = epoch < config.epochs
                break
    finally:
        bar.close()
        data.close()
    return TrainResult(
        params=best_params,
        normalization=normalization,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        train_seconds=time.perf_counter() - started,
        config=config,
    )
