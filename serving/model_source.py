"""Find and load the model to serve: a local directory / .npz file, or an MLflow registry URI.

An MLflow URI (``models:/doodle-mlp@champion``, ``models:/doodle-mlp/3``, ``runs:/<id>/model``)
is downloaded with `mlflow.artifacts.download_artifacts` into a temporary folder and the one
``mlp.npz`` + ``mlp.json`` pair inside it is loaded with `doodle.model.model_io.load_model`, so a
registered pyfunc model and a plain artifact folder both work. The path model's files
(``path.npz`` + ``path.json``), when the version has them, must sit in that same folder: they load
with the pixel model as one version (a path model naming another pixel model's SHA-256 is refused),
and a path file anywhere else in the download refuses the version rather than serve half of it.
MLflow is imported only here, and only for such URIs (it takes seconds to import).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path

from doodle.loop.model_watch import file_fingerprint
from doodle.model import path_io
from doodle.model.model_io import METADATA_NAME, WEIGHTS_NAME, Model, ModelFileError, load_model

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")
MLFLOW_MISSING = (
    "{uri} is an MLflow URI, and MLflow is not installed here (the serve extra leaves it out):"
    " install doodle-digits[serve,registry], or point DOODLE_MODEL_PATH at a model folder"
)

NO_ALIAS = (
    "the model registry at {registry} has no version of {name!r} with the alias {alias!r}:"
    " run `make retrain` against it (its promote stage sets the alias) or name a version"
)
REGISTRY_UNREACHABLE = "cannot read the model registry at {registry}: {reason}"
# Polls repeat every few seconds anyway: a short back-off between two tries is enough.
REGISTRY_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def is_mlflow_uri(uri: str) -> bool:
    return uri.startswith(MLFLOW_SCHEMES)


def find_model_dir(tree: Path) -> Path:
    """The one folder under ``tree`` that holds both mlp.npz and mlp.json; a path model's file
    (path.npz, path.json) anywhere else under ``tree`` is an error: the pair is one version."""
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
    stray = sorted(
        str(file.relative_to(tree))
        for name in (path_io.WEIGHTS_NAME, path_io.METADATA_NAME)
        for file in Path(tree).rglob(name)
        if file.parent != candidates[0]
    )
    if stray:
        raise ModelFileError(
            f"path model files {stray} lie outside the pixel model's folder"
            f" {str(candidates[0].relative_to(tree))!r}: both views' files must be one version"
        )
    return candidates[0]


def registry_location() -> str:
    """The MLflow tracking server or store the registry URIs are read from, without any
    ``user:password@`` part (for messages)."""
    from mlflow.tracking import get_tracking_uri  # noqa: PLC0415 - heavy, registry URIs only

    return re.sub(r"//[^/@]*@", "//", get_tracking_uri())


def limit_registry_retries() -> None:
    """Bound MLflow's HTTP retries (7, with a doubling back-off: minutes) unless the operator
    set them, so an unreachable registry fails a start-up or a poll within seconds."""
    for name, value in REGISTRY_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def resolve_alias(uri: str) -> str:
    """``models:/name@alias`` -> ``models:/name/<version>``: the files downloaded are the version
    the alias named at that moment, whatever it moves to meanwhile. A registry without the
    alias, or one that cannot be reached, raises `ModelFileError` saying which."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - heavy, registry URIs only
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    name, _, alias = uri.removeprefix("models:/").partition("@")
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException as exc:
        # No such model: RESOURCE_DOES_NOT_EXIST; a model without that alias: INVALID_PARAMETER_VALUE.
        missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in exc.message
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or missing_alias:
            raise ModelFileError(
                NO_ALIAS.format(alias=alias, name=name, registry=registry_location())
            ) from None
        raise ModelFileError(
            REGISTRY_UNREACHABLE.format(registry=registry_location(), reason=exc.message.splitlines()[0])
        ) from None
    return f"models:/{name}/{version}"


def load_served_model(uri: str) -> Model:
    """Load the model named by ``uri``; raise `ModelFileError` (or MLflow's errors) if impossible.

    A registry model is downloaded whole (weights and metadata together) into a temporary folder
    and loaded from there with the verifying loader (SHA-256, shapes): nothing half-downloaded or
    unchecked is ever served. The model's one-image weights (`Model.one_image`, what ``/predict``
    reads) are made here, in the loading thread, so the first request after a load or a switch does
    not wait for them."""
    model = _load_from_source(uri)
    _ = model.one_image
    return model


def _load_from_source(uri: str) -> Model:
    if not is_mlflow_uri(uri):
        return load_model(uri)
    try:
        import mlflow.artifacts  # noqa: PLC0415 - heavy, and only needed for registry URIs
    except ImportError:
        raise ModelFileError(MLFLOW_MISSING.format(uri=uri)) from None

    limit_registry_retries()
    if uri.startswith("models:/") and "@" in uri:
        uri = resolve_alias(uri)
    with tempfile.TemporaryDirectory(prefix="doodle-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        # The arrays are read into memory, so the temporary folder can go.
        return load_model(find_model_dir(Path(local)))


def source_fingerprint(uri: str) -> Callable[[], Hashable]:
    """A function returning the fingerprint of the model source ``uri``, for
    `doodle.loop.model_watch.ModelWatcher`: the files' sizes and times for a path, the version an
    alias points to for ``models:/name@alias`` (one registry query), the URI itself for a fixed
    version or a run (those never change)."""
    if not is_mlflow_uri(uri):
        return lambda: file_fingerprint(uri)
    name, _, alias = uri.removeprefix("models:/").partition("@")
    if not uri.startswith("models:/") or not alias:
        return lambda: uri

    def alias_version() -> Hashable:
        from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy, registry URIs only

        limit_registry_retries()
        return MlflowClient().get_model_version_by_alias(name, alias).version

    return alias_version
