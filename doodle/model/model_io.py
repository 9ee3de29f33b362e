"""Model files: weights in ``mlp.npz``, metadata in ``mlp.json`` with the weights' SHA-256.

The one loader for the dashboard, the API, the evaluation stage and MLflow's pyfunc. Nothing is
pickled: ``np.load(..., allow_pickle=False)``; the checksum, the array names, dtypes and shapes
are checked before a model is handed out.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from doodle.constants import N_CLASSES, N_PIXELS
from doodle.model import mlp, path_features, path_io
from doodle.model.inputs import standardize

FORMAT = "doodle-mlp"
FORMAT_VERSION = 1
WEIGHTS_NAME = "mlp.npz"
METADATA_NAME = "mlp.json"


# os.umask can only be read by setting it, which is not safe once threads run: read it at import,
# and prefer the live value Linux shows in /proc/self/status when it is there.
_IMPORT_UMASK = os.umask(0o022)
os.umask(_IMPORT_UMASK)


def _umask() -> int:
    """The process's file-creation mask now, read without changing it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return _IMPORT_UMASK


class ModelFileError(ValueError):
    """A model file is missing, tampered with or malformed."""


@dataclass(frozen=True)
class Model(path_io.LoadedMLP):
    """A loaded, verified MLP with its input normalisation.

    ``predict_proba`` takes images as the canvas preprocessing and the API's wire format give
    them, 0 = background and 1 = ink, and applies the normalisation the model was trained with.
    """

    # The path model served with it (`doodle.model.path_io.PathModel`), None for a pixel-only model.
    path: Any = None

    @property
    def layer_sizes(self) -> list[int]:
        return mlp.layer_sizes_of(self.params)

    @property
    def input_std(self) -> float:
        return float(self.metadata["normalization"]["std"])

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """``(N, 784)`` or ``(N, 28, 28)``, float in [0, 1] or uint8 0..255 -> ``(N, 784)`` float32,
        standardised as in training (`doodle.model.inputs.standardize`)."""
        return standardize(images, self.metadata["normalization"])

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """``(N, 784)`` or ``(N, 28, 28)`` float in [0, 1] -> ``(N, 10)`` float32 probabilities."""
        logits = mlp.forward(self.params, self.normalize(images))
        return mlp.softmax(logits / np.float32(self.temperature))

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Digits ``(N,)`` int64 and probabilities ``(N, 10)`` float32."""
        probs = self.predict_proba(images)
        return probs.argmax(axis=1), probs

    @cached_property
    def one_image(self) -> mlp.OneImageMLP:
        """The network folded for `predict_one_proba` (`doodle.model.mlp.fold_for_one_image`), made on
        first use: a few milliseconds and 1.6 MB more for a 784-512-512-10 network. The API makes it as
        it loads a model (`serving.model_source.load_served_model`), not on the first request."""
        norm = self.metadata["normalization"]
        return mlp.fold_for_one_image(self.params, norm["mean"], norm["std"], self.temperature)

    def predict_one_proba(self, image: np.ndarray) -> np.ndarray:
        """One image, ``(784,)`` or ``(28, 28)`` float in [0, 1] -> ``(10,)`` float32 probabilities:
        `predict_proba` for a single image at about half its cost (`doodle.model.mlp.one_image_probabilities`
        reads only the weight rows of the ink and of the active units), equal to it within about 1e-6.
        The API's ``/predict`` answers with it; batches, evaluation and training keep `predict_proba`."""
        return mlp.one_image_probabilities(self.one_image, image.reshape(N_PIXELS))

    @property
    def unsure_margin(self) -> float:
        """An answer is unsure when its probability beats the runner-up's by less than this
        (chosen on validation data when the model was trained; 0.0, never unsure, in model
        files from before it existed)."""
        return float(self.metadata.get("unsure_margin", 0.0))

    def top_two(self, probabilities: np.ndarray) -> TopTwo:
        """The answer, the runner-up and whether the model is unsure, for ``(N, 10)``
        probabilities as `predict` returns them."""
        return top_two(probabilities, self.unsure_margin)


@dataclass(frozen=True)
class TopTwo:
    """``digits`` ``(N,)`` int64 (the argmax, as `Model.predict`), ``runner_ups`` ``(N,)``
    int64 (the second most probable digit), ``margins`` ``(N,)`` float (difference of their
    probabilities) and ``unsure`` ``(N,)`` bool (margin below the model's unsure margin)."""

    digits: np.ndarray
    runner_ups: np.ndarray
    margins: np.ndarray
    unsure: np.ndarray


def top_two(probabilities: np.ndarray, unsure_margin: float = 0.0) -> TopTwo:
    """``(N, 10)`` probabilities -> `TopTwo`; unsure where the top two differ by less than
    ``unsure_margin``."""
    probs = np.asarray(probabilities, dtype=np.float64)
    rows = np.arange(len(probs))
    digits = probs.argmax(axis=1)
    others = probs.copy()
    others[rows, digits] = -np.inf
    runner_ups = others.argmax(axis=1)
    margins = probs[rows, digits] - probs[rows, runner_ups]
    return TopTwo(digits, runner_ups, margins, margins < unsure_margin)


def top_two_of_one(probabilities: list[float], unsure_margin: float = 0.0) -> tuple[int, int, float, bool]:
    """`top_two` of one image's probabilities as a list of floats (``probs.tolist()``), in plain
    Python, where NumPy's per-call cost on ten numbers exceeds the work: ``(digit, runner_up,
    margin, unsure)``, ties broken as `top_two` breaks them (the lower digit first)."""
    digit, runner_up = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)[:2]
    margin = probabilities[digit] - probabilities[runner_up]
    return digit, runner_up, margin, margin < unsure_margin


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Accept a directory holding both files, the .npz or the .json."""
    path = Path(path)
    if path.is_dir() or path.suffix not in (".npz", ".json"):
        return path / WEIGHTS_NAME, path / METADATA_NAME
    return path.with_suffix(".npz"), path.with_suffix(".json")


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a synced temporary file and a rename, with the
    permissions the umask allows: readers see the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp creates 0600; model files are read by other users' servers: use the umask.
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def save_model(
    path: str | os.PathLike,
    params: mlp.Params,
    *,
    normalization: dict[str, float],
    temperature: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> Model:
    """Write ``mlp.npz`` then ``mlp.json`` (each atomically) and return the model as loaded.

    ``path`` is the directory (or the .npz path). ``normalization`` is ``{"mean": m, "std": s}``
    applied to [0, 1] pixels before the first layer; ``temperature`` divides the logits before the
    softmax (calibration: it changes confidences, never the predicted digit). ``metadata`` holds anything else worth
    keeping: training data checksum, metrics, hyper-parameters. The JSON gets the layer sizes,
    the weights' SHA-256 and a version derived from it.
    """
    weights_path, metadata_path = _paths(path)
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}
    _check_arrays(arrays, weights_path)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    meta = {
        **_to_jsonable(metadata or {}),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights_file": weights_path.name,
        "sha256": digest,
        "version": digest[:12],
        "layer_sizes": mlp.layer_sizes_of(arrays),
        "normalization": {"mean": float(normalization["mean"]), "std": float(normalization["std"])},
        "temperature": float(temperature),
    }
    _check_temperature(meta["temperature"], metadata_path)
    atomic_write(weights_path, blob)
    atomic_write(metadata_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return Model(params=arrays, metadata=meta)


def load_model(path: str | os.PathLike) -> Model:
    """Load and verify a model; raise `ModelFileError` saying what is wrong.

    Checks, in order: both files exist; the JSON parses and names this format; the .npz bytes
    have the SHA-256 the JSON records; the archive holds exactly W1, b1, ..., WL, bL as float32
    with chained shapes matching ``layer_sizes`` (784 in, 10 out), all finite. A folder that also
    holds ``path.npz`` / ``path.json`` loads the path model with it (`load_path_model`),
    refusing the folder when the path model belongs to another pixel model.
    """
    weights_path, metadata_path = _paths(path)
    for required in (weights_path, metadata_path):
        if not required.is_file():
            raise ModelFileError(f"model file not found: {required}")
    try:
        meta = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{metadata_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{metadata_path}: not a {FORMAT} metadata file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{metadata_path}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    for key in ("sha256", "layer_sizes", "normalization"):
        if key not in meta:
            raise ModelFileError(f"{metadata_path}: missing key {key!r}")
    norm = meta["normalization"]
    if not (
        isinstance(norm, dict)
        and all(isinstance(norm.get(k), (int, float)) for k in ("mean", "std"))
        and np.isfinite([norm["mean"], norm["std"]]).all()
        and norm["std"] > 0
    ):
        raise ModelFileError(f"{metadata_path}: normalization must hold finite mean and positive std")
    _check_temperature(meta.get("temperature", 1.0), metadata_path)
    blob = weights_path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != meta["sha256"]:
        raise ModelFileError(
            f"{weights_path}: SHA-256 mismatch, expected {meta['sha256']}, got {actual}"
            " (the weights were changed or the file is corrupt)"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile, ValueError for object arrays, ...
        raise ModelFileError(f"{weights_path}: unreadable weights archive ({exc})") from None
    _check_arrays(arrays, weights_path)
    if mlp.layer_sizes_of(arrays) != list(meta["layer_sizes"]):
        raise ModelFileError(
            f"{weights_path}: layer sizes {mlp.layer_sizes_of(arrays)} do not match metadata"
            f" {meta['layer_sizes']}"
        )
    path_model = None
    if path_io.has_path_model(weights_path.parent):
        path_model = load_path_model(weights_path.parent, pixel_sha256=meta["sha256"])
    return Model(params=arrays, metadata=meta, path=path_model)


def _check_temperature(value: Any, where: Path) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (is_number and np.isfinite(value) and value > 0):
        raise ModelFileError(f"{where}: temperature must be a positive finite number, got {value!r}")


def _check_arrays(arrays: dict[str, np.ndarray], where: Path, fan_in: int = N_PIXELS) -> None:
    count = sum(1 for name in arrays if name.startswith("W"))
    expected = {f"{kind}{i}" for i in range(1, count + 1) for kind in ("W", "b")}
    if count == 0 or set(arrays) != expected:
        raise ModelFileError(f"{where}: arrays {sorted(arrays)}, expected {sorted(expected)}")
    for i in range(1, count + 1):
        weight, bias = arrays[f"W{i}"], arrays[f"b{i}"]
        for name, array in ((f"W{i}", weight), (f"b{i}", bias)):
            if array.dtype != np.float32:
                raise ModelFileError(f"{where}: {name} has dtype {array.dtype}, expected float32")
            if not np.isfinite(array).all():
                raise ModelFileError(f"{where}: {name} holds NaN or infinite values")
        if weight.ndim != 2 or weight.shape[0] != fan_in:
            raise ModelFileError(f"{where}: W{i} has shape {weight.shape}, expected ({fan_in}, n)")
        if bias.shape != (weight.shape[1],):
            raise ModelFileError(f"{where}: b{i} has shape {bias.shape}, expected ({weight.shape[1]},)")
        fan_in = weight.shape[1]
    if fan_in != N_CLASSES:
        raise ModelFileError(f"{where}: output layer has {fan_in} units, expected {N_CLASSES}")


# ---- the path model's files, path.npz + path.json (doodle.model.path_io), beside these


def save_path_model(
    folder: str | os.PathLike,
    params: mlp.Params,
    *,
    points: int,
    temperature: float,
    pool_weight: float,
    pixel_sha256: str,
    metadata: dict[str, Any] | None = None,
) -> path_io.PathModel:
    """Write ``path.npz`` then ``path.json`` into ``folder`` (each atomically) and return the model.
    ``pixel_sha256``: the SHA-256 of the ``mlp.npz`` it is served with."""
    weights_path, metadata_path = path_io.paths_of(folder)
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}
    _check_arrays(arrays, weights_path, fan_in=path_features.feature_size(points))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    meta = {
        **_to_jsonable(metadata or {}),
        "format": path_io.FORMAT,
        "format_version": path_io.FORMAT_VERSION,
        "weights_file": path_io.WEIGHTS_NAME,
        "sha256": digest,
        "version": digest[:12],
        "layer_sizes": mlp.layer_sizes_of(arrays),
        "points": int(points),
        "temperature": float(temperature),
        "pool_weight": float(pool_weight),
        "pixel_sha256": str(pixel_sha256),
    }
    _check_temperature(meta["temperature"], metadata_path)
    atomic_write(weights_path, blob)
    atomic_write(metadata_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return path_io.PathModel(params=arrays, metadata=meta)


def load_path_model(folder: str | os.PathLike, pixel_sha256: str | None = None) -> path_io.PathModel:
    """Load and verify the path model in ``folder``; `doodle.model.model_io.ModelFileError` says what is
    wrong: a file missing, not this format, the weights' SHA-256, the arrays, the pooling weight, or
    (with ``pixel_sha256``) a path model made for another pixel model."""
    weights_path, metadata_path = path_io.paths_of(folder)
    for required in (weights_path, metadata_path):
        if not required.is_file():
            raise ModelFileError(
                f"path model file not found: {required} (a model folder holds both path files or neither)"
            )
    try:
        meta = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{metadata_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != path_io.FORMAT:
        raise ModelFileError(f"{metadata_path}: not a {path_io.FORMAT} metadata file")
    if meta.get("format_version") != path_io.FORMAT_VERSION:
        raise ModelFileError(
            f"{metadata_path}: format_version {meta.get('format_version')!r}, expected {path_io.FORMAT_VERSION}"
        )
    for key in ("sha256", "layer_sizes", "points", "pool_weight", "pixel_sha256"):
        if key not in meta:
            raise ModelFileError(f"{metadata_path}: missing key {key!r}")
    if pixel_sha256 is not None and meta["pixel_sha256"] != pixel_sha256:
        raise ModelFileError(
            f"{metadata_path}: made for the pixel model {meta['pixel_sha256'][:12]}, the folder's is {pixel_sha256[:12]}"
            " (the pair is one model version: both are replaced together)"
        )
    weight = meta["pool_weight"]
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not (np.isfinite(weight) and weight >= 0)
    ):
        raise ModelFileError(f"{metadata_path}: pool_weight must be a finite number >= 0, got {weight!r}")
    points = meta["points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ModelFileError(f"{metadata_path}: points must be an integer >= 2, got {points!r}")
    _check_temperature(meta.get("temperature", 1.0), metadata_path)
    blob = weights_path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != meta["sha256"]:
        raise ModelFileError(f"{weights_path}: SHA-256 mismatch, expected {meta['sha256']}, got {actual}")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile, ValueError for object arrays, ...
        raise ModelFileError(f"{weights_path}: unreadable weights archive ({exc})") from None
    _check_arrays(arrays, weights_path, fan_in=path_features.feature_size(points))
    if mlp.layer_sizes_of(arrays) != list(meta["layer_sizes"]):
        raise ModelFileError(
            f"{weights_path}: layer sizes {mlp.layer_sizes_of(arrays)} do not match metadata {meta['layer_sizes']}"
        )
    return path_io.PathModel(params=arrays, metadata=meta)
