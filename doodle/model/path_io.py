"""The served path model and the two views' pool; its files are ``path.npz`` + ``path.json`` beside
``mlp.npz`` + ``mlp.json``: one model version.

Same format as the pixel model's: float32 arrays in an .npz, nothing pickled; metadata in JSON with
the weights' SHA-256, checked before the model is handed out (`doodle.model.model_io.save_path_model` and
`load_path_model`). The JSON also records ``pixel_sha256``, the SHA-256 of the ``mlp.npz`` it was
trained and pooled with, and the pooling weight chosen on the writer folds. `doodle.model.model_io.load_model`
loads the path model with the pixel model when the folder has one and refuses the folder when the two
do not belong together, so a server switches both at once or keeps serving the old pair
(`doodle.loop.model_watch` fingerprints all four files). A folder without path files is a pixel-only model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doodle.constants import N_CLASSES
from doodle.model import mlp, path_features

FORMAT = "doodle-path-mlp"
FORMAT_VERSION = 1
WEIGHTS_NAME = "path.npz"
METADATA_NAME = "path.json"
PIXELS = "pixels"
PATH = "path"


@dataclass(frozen=True)
class LoadedMLP:
    """What both model files hand out once checked: the MLP's weights and their JSON metadata, with
    the weights' SHA-256, the version and the calibration temperature read from it (the pixel
    model, `doodle.model.model_io.Model`, and the path model below)."""

    params: mlp.Params
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.metadata["sha256"]

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def temperature(self) -> float:
        """Divides the logits before the softmax; fitted on validation data so that confidence
        matches accuracy (1.0 when the model was saved without calibration)."""
        return float(self.metadata.get("temperature", 1.0))


@dataclass(frozen=True)
class PathModel(LoadedMLP):
    """A loaded, verified path MLP: reads strokes (pad coordinates, y down) as `path_features` does."""

    @property
    def points(self) -> int:
        return int(self.metadata["points"])

    @property
    def pool_weight(self) -> float:
        """``w`` of the pool ``log p_pixels + w log p_path`` (chosen on the writer folds)."""
        return float(self.metadata.get("pool_weight", 1.0))

    def predict_proba(self, drawings: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """Drawings (each a list of ``(K, 2)`` strokes) -> ``(N, 10)`` float32 calibrated probabilities."""
        features = path_features.features_of(drawings, self.points)
        return mlp.softmax(mlp.forward(self.params, features) / np.float32(self.temperature))


def pair_identity(model: Any) -> tuple[str, str | None]:
    """The SHA-256 of a served model's pixel weights and of its path model's (None without one):
    what makes two loaded models the same version."""
    path_model = getattr(model, "path", None)
    return model.sha256, None if path_model is None else path_model.sha256


def paths_of(folder: str | os.PathLike) -> tuple[Path, Path]:
    """The path model's two files in a model folder (or beside a model's .npz / .json)."""
    folder = Path(folder)
    if not folder.is_dir() and folder.suffix in (".npz", ".json"):
        folder = folder.parent
    return folder / WEIGHTS_NAME, folder / METADATA_NAME


def has_path_model(folder: str | os.PathLike) -> bool:
    """Whether the folder holds either of the path model's files (both are then required)."""
    return any(file.exists() for file in paths_of(folder))


def pool(pixel_proba: np.ndarray, path_proba: np.ndarray | None, weight: float) -> np.ndarray:
    """The weighted log-linear pool of the two views' calibrated probabilities,
    ``softmax(log p_pixels + weight * log p_path)``, ``(N, 10)`` float64; the pixel view alone when
    there is no path (``None``) or ``weight`` is 0. Probabilities are floored at 1e-12 before the log."""
    pixel = np.asarray(pixel_proba, dtype=np.float64)
    if path_proba is None or weight == 0:
        return pixel
    score = np.log(np.maximum(pixel, 1e-12)) + weight * np.log(
        np.maximum(np.asarray(path_proba, dtype=np.float64), 1e-12)
    )
    return mlp.softmax(score)


@dataclass(frozen=True)
class Reading:
    """Both views' answer for a batch: ``probabilities`` ``(N, 10)`` (pooled when the path was read)
    and ``views``, the views used: ``["pixels"]`` or ``["pixels", "path"]``."""

    probabilities: np.ndarray
    views: list[str]


def read_views(model: Any, images: np.ndarray, drawings: Sequence[Sequence[np.ndarray]] | None) -> Reading:
    """The pixel model's probabilities of ``images``, pooled with its path model's reading of
    ``drawings`` when the model has a path model and strokes are given (one drawing per image)."""
    pixel = model.predict_proba(images)
    path_model = getattr(model, "path", None)
    if path_model is None or drawings is None:
        return Reading(pixel, [PIXELS])
    if len(drawings) != len(pixel):
        raise ValueError(f"{len(drawings)} drawings for {len(pixel)} images")
    pooled = pool(pixel, path_model.predict_proba(drawings), path_model.pool_weight).astype(np.float32)
    assert pooled.shape[1] == N_CLASSES
    return Reading(pooled, [PIXELS, PATH])
