"""MLflow at the edges: one tracked run per training, the model registry and its champion alias.

The store defaults to ``sqlite:///mlflow.db`` at the repository root with artifacts under
``mlartifacts/`` (``MLFLOW_TRACKING_URI`` overrides; an ``http://`` tracking server keeps the
artifacts itself, so API replicas on other machines download the champion through it). Each run logs the hyper-parameters, the
per-epoch curves (``step=epoch``), the final metrics, figures and the model files, and the model
as an MLflow pyfunc that reloads with `doodle.model.model_io.load_model` (nothing pickled but a small
wrapper class). The pipeline's training registers each model as a candidate; the `promote` stage
moves the registered model's ``champion`` alias (`set_champion`) when `doodle.loop.promotion`'s rule
says so and records its decision in the candidate's run (`record_decision`). `promote_if_better`
(validation accuracy alone) remains for runs outside the pipeline. The test set decides nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from doodle.model import model_io, path_io
from doodle.paths import ROOT

EXPERIMENT_NAME = "doodle-digits"
REGISTERED_MODEL_NAME = "doodle-mlp"
CHAMPION_ALIAS = "champion"
# The kept model's validation accuracy (per-epoch curves use the plain names such as
# "val_accuracy"): validation, never test, decides the champion.
SELECTION_METRIC = "model_val_accuracy"
MODEL_ARTIFACT_NAME = "model"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# Logged as code, not as a pickled object: see that file.
PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
# The distributions the pyfunc imports when it loads (what MLflow would infer by loading the model
# in a subprocess, several seconds a model; a test checks that the inference still agrees).
PYFUNC_PACKAGES = ("mlflow", "cloudpickle", "doodle-digits", "numpy", "pandas", "scipy")

CHAMPION_FIRST = "version {version} is the first champion ({metric} = {new:.4f})"
CHAMPION_MOVED = "champion moved to version {version}: {metric} {new:.4f} > {old:.4f} (version {old_version})"
CANDIDATE = "version {version} is a candidate: the promote stage decides whether it becomes champion"
CHAMPION_KEPT = "champion stays at version {old_version}: {metric} {new:.4f} <= {old:.4f}"


def default_tracking_uri() -> str:
    """``sqlite:///<repo>/mlflow.db``: absolute, so notebooks and tests agree whatever their cwd."""
    return f"sqlite:///{ROOT / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get(TRACKING_URI_ENV) or default_tracking_uri()


def default_artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite store's database file; None (the server's own artifact
    root, which every machine reaches through it) for a tracking server; the repo's otherwise."""
    if uri.startswith(("http://", "https://")):
        return None
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return (ROOT / "mlartifacts").as_uri()


def setup(uri: str | None = None, experiment_name: str = EXPERIMENT_NAME) -> str:
    """Point MLflow at ``uri`` (default: `tracking_uri`) and make the experiment current,
    creating it with its artifact location if needed. Returns the experiment id."""
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            experiment_name, artifact_location=default_artifact_location(uri)
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class DoodleMLP(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a `doodle.model.model_io.Model`: the weights are the verified .npz/.json pair,
    loaded with the project's own loader, so nothing but this class needs unpickling. The path
    model's files, when logged, sit beside them and load with them (its ``path``)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = model_io.load_model(context.artifacts["weights"])

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> list[int]:
        """``(N, 784)`` pixels in [0, 1] (0 background, 1 ink) -> ``N`` predicted digits.

        MLflow converts NumPy arrays and lists of rows to the DataFrame this hint asks for.
        """
        images = np.asarray(model_input, dtype=np.float32).reshape(len(model_input), -1)
        digits, _ = self.model.predict(images)
        return [int(digit) for digit in digits]


def pyfunc_requirements() -> list[str]:
    """``PYFUNC_PACKAGES`` pinned to the versions installed here: the logged model's requirements."""
    return [f"{name}=={package_metadata.version(name)}" for name in PYFUNC_PACKAGES]


def log_history(history: Iterable[Mapping[str, float]], client: MlflowClient, run_id: str) -> None:
    """Per-epoch metrics with ``step = epoch``: each record is ``{"epoch": e, "train_loss": ...}``."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(key=name, value=float(value), timestamp=now, step=int(record["epoch"]))
        for record in history
        for name, value in record.items()
        if name != "epoch"
    ]
    # log_batch takes at most 1000 metrics per call.
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


@dataclass
class LoggedRun:
    run_id: str
    model_uri: str
    version: str
    champion_moved: bool
    message: str


def promote_if_better(
    client: MlflowClient,
    version: str,
    value: float,
    name: str = REGISTERED_MODEL_NAME,
    metric: str = SELECTION_METRIC,
) -> tuple[bool, str]:
    """Move the champion alias to ``version`` if its ``metric`` beats the champion run's.

    The champion's figure is read from its run, so a champion logged by any earlier training
    is compared fairly. Returns whether the alias moved and a sentence saying why.
    """
    # Ask whether the alias exists rather than catch an error: MLflow reports a missing alias
    # with the same code as other failures, which must not silently crown a new champion.
    if CHAMPION_ALIAS not in client.get_registered_model(name).aliases:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        return True, CHAMPION_FIRST.format(version=version, metric=metric, new=value)
    champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    old = client.get_run(champion.run_id).data.metrics.get(metric, float("-inf"))
    if value > old:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        return True, CHAMPION_MOVED.format(
            version=version, metric=metric, new=value, old=old, old_version=champion.version
        )
    return False, CHAMPION_KEPT.format(old_version=champion.version, metric=metric, new=value, old=old)


def log_training(
    *,
    params: Mapping[str, Any],
    history: Iterable[Mapping[str, float]],
    metrics: Mapping[str, float],
    model_dir: str | os.PathLike,
    artifacts: Iterable[str | os.PathLike] = (),
    tags: Mapping[str, str] | None = None,
    run_name: str | None = None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    promote: bool = True,
) -> LoggedRun:
    """Log one finished training as a run, register its model and maybe crown it champion.

    ``params``: hyper-parameters (lists are logged as their text); ``history``: per-epoch dicts
    with an ``epoch`` key; ``metrics``: final figures with names distinct from the per-epoch
    ones, including `SELECTION_METRIC`;
    ``model_dir``: the directory holding ``mlp.npz`` and ``mlp.json``, and ``path.npz`` +
    ``path.json`` when the version has a path model: the registered model then holds all four files,
    one version, so a replica serving ``models:/name@champion`` gets both views or, if the folder
    does not load as a pair (`doodle.model.model_io.load_model`: a path model of another pixel model),
    nothing is logged; ``artifacts``: extra files (figures, metrics JSON) copied into the run. ``promote``: apply `promote_if_better`;
    False registers the version as a candidate and leaves the alias to the `promote` stage
    (`set_champion`). Call `setup` first.
    """
    history = list(history)
    if SELECTION_METRIC not in metrics:
        raise ValueError(f"metrics must include {SELECTION_METRIC!r} to choose the champion")
    clashes = sorted(set(metrics) & {name for record in history for name in record})
    if clashes:
        # MLflow shows a metric's highest step, so a final figure named as a curve would be hidden.
        raise ValueError(f"final metrics must not reuse per-epoch names: {', '.join(clashes)}")
    weights = Path(model_dir) / model_io.WEIGHTS_NAME
    metadata = Path(model_dir) / model_io.METADATA_NAME
    model_files = {"weights": str(weights), "metadata": str(metadata)}
    # The folder must load as one version (both views' files verified together) before it is logged.
    if model_io.load_model(model_dir).path is not None:
        path_weights, path_metadata = path_io.paths_of(model_dir)
        model_files.update({"path_weights": str(path_weights), "path_metadata": str(path_metadata)})
    client = MlflowClient()
    with mlflow.start_run(run_name=run_name) as run:
        run_id = run.info.run_id
        mlflow.log_params(
            {key: str(value) if isinstance(value, (list, tuple)) else value for key, value in params.items()}
        )
        if tags:
            mlflow.set_tags(dict(tags))
        log_history(history, client, run_id)
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        mlflow.log_artifacts(str(model_dir), artifact_path="model_files")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=str(PYFUNC_CODE),
            artifacts=model_files,
            pip_requirements=pyfunc_requirements(),
            registered_model_name=registered_model_name,
        )
        version = str(info.registered_model_version)
        if promote:
            moved, message = promote_if_better(
                client, version, float(metrics[SELECTION_METRIC]), registered_model_name
            )
        else:
            moved, message = False, CANDIDATE.format(version=version)
        mlflow.set_tag("champion_decision", message)
    return LoggedRun(
        run_id=run_id, model_uri=info.model_uri, version=version, champion_moved=moved, message=message
    )


def set_champion(version: str, name: str = REGISTERED_MODEL_NAME) -> str | None:
    """Point the ``champion`` alias at ``version``; returns the version it pointed at before
    (None when there was none)."""
    client = MlflowClient()
    previous = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    return previous


def record_decision(run_id: str, metrics: Mapping[str, float | None], tags: Mapping[str, str]) -> None:
    """Add the promotion's figures (None values left out) and tags to the candidate's run."""
    client = MlflowClient()
    now = int(time.time() * 1000)
    batch = [
        Metric(key=k, value=float(v), timestamp=now, step=0) for k, v in metrics.items() if v is not None
    ]
    if batch:
        client.log_batch(run_id, metrics=batch)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
