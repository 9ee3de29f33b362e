"""Find and load the model to serve: a local directory / .npz file, or an MLflow registry URI.

An MLflow URI (``models:/doodle-mlp@champion``, ``models:/doodle-mlp/3``, ``runs:/<id>/model``)
is downloaded with `mlflow.artifacts.download_artifacts` into a temporary folder and the one
``mlp.npz`` + ``mlp.json`` pair inside it is loaded with `doodle.model_io.load_model`, so a
registered pyfunc model and a plain artifact folder both work. MLflow is imported only here,
and only for such URIs (it takes seconds to import).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path

from doodle.model_io import METADATA_NAME, WEIGHTS_NAME, Model, ModelFileError, load_model
from doodle.model_watch import file_fingerprint

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")
MLFLOW_MISSING = (
    "{uri} is an MLflow URI, and MLflow is not installed here (the serve extra leaves it out):"
    " install doodle-digits[serve,pipeline], or point DOODLE_MODEL_PATH at a model folder"
)


def is_mlflow_uri(uri: str) -> bool:
    return uri.startswith(MLFLOW_SCHEMES)


def find_model_dir(tree: Path) -> Path:
    """The one folder under ``tree`` that holds both mlp.npz and mlp.json."""
    candidates = sorted(
        weights.parent
        for weights in Path(tree).rglob(WEIGHTS_NAME)
        if (weights.parent / METADATA_NAME).is_file()
    )
    if len(candidates) != 1:
        found = [str(c.relative_to(tree)) for c in candidates]
        raise ModelFileError(
            f"expected one folder with {WEIGHTS_NAME} and {METADATA_NAME} in the downloaded"
            f" artifacts, found {len(candidates)}: {found}"
        )
    return candidates[0]


def load_served_model(uri: str) -> Model:
    """Load the model named by ``uri``; raise `ModelFileError` (or MLflow's errors) if impossible."""
    if not is_mlflow_uri(uri):
        return load_model(uri)
    try:
        import mlflow.artifacts  # noqa: PLC0415 - heavy, and only needed for registry URIs
    except ImportError:
        raise ModelFileError(MLFLOW_MISSING.format(uri=uri)) from None

    with tempfile.TemporaryDirectory(prefix="doodle-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        # The arrays are read into memory, so the temporary folder can go.
        return load_model(find_model_dir(Path(local)))


def source_fingerprint(uri: str) -> Callable[[], Hashable]:
    """A function returning the fingerprint of the model source ``uri``, for
    `doodle.model_watch.ModelWatcher`: the files' sizes and times for a path, the version an
    alias points to for ``models:/name@alias`` (one registry query), the URI itself for a fixed
    version or a run (those never change)."""
    if not is_mlflow_uri(uri):
        return lambda: file_fingerprint(uri)
    name, _, alias = uri.removeprefix("models:/").partition("@")
    if not uri.startswith("models:/") or not alias:
        return lambda: uri

    def alias_version() -> Hashable:
        from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy, registry URIs only

        return MlflowClient().get_model_version_by_alias(name, alias).version

    return alias_version
