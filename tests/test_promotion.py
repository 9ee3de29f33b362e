"""The promotion rule, the installation of a promoted model, and the promote notebook against a
real MLflow registry and a real server polling the served folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from doodle.canvas import strokes
from doodle.loop import feedback_data, promotion
from doodle.model import mlp, model_io
from doodle.study import stats, study_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
from serving_helpers import run_server  # noqa: E402

MARGINS = promotion.StudyMargins(champion_margin=0.0005, stroke_margin=0.003, seeds=5, source="made-up")
DEFAULT = "a" * 12  # configuration fingerprints
LONG = "b" * 12


def scores(version, val, holdout, stroke=0.99, configuration=DEFAULT):
    return promotion.Scores(
        version=version,
        val_accuracy=val,
        holdout_accuracy=holdout,
        stroke_accuracy=stroke,
        configuration=configuration,
    )


def decide(candidate, champion):
    return promotion.decide(candidate, champion, margins=MARGINS, max_val_drop=0.003, holdout_rows=20)


@pytest.mark.parametrize(
    "candidate, champion, promoted, case, reason",
    [
        (scores("new", 0.98, None), None, True, "first champion", "first champion"),
        (scores("old", 0.995, 0.45), scores("old", 0.990, 0.50), False, "same weights", "same weights"),
        # The same pixel weights with another path model: another version of the pair, installed.
        (
            replace(scores("old", 0.99, 0.5), path_version="p2"),
            replace(scores("old", 0.99, 0.5), path_version="p1"),
            True,
            "retraining",
            "candidate old (path p2), a retraining (same configuration), replaces old",
        ),
        (
            replace(scores("old", 0.99, 0.5), path_version="p1"),
            replace(scores("old", 0.99, 0.5), path_version="p1"),
            False,
            "same weights",
            "same weights",
        ),
        # A retraining (same configuration): within max_val_drop on validation is enough.
        (scores("new", 0.990, 0.50), scores("old", 0.992, 0.40), True, "retraining", "replaces old"),
        (scores("new", 0.990, 0.50), scores("old", 0.990, 0.50), True, "retraining", "replaces old"),
        (
            scores("new", 0.990, None),
            scores("old", 0.991, None),
            True,
            "retraining",
            "feedback holdout empty",
        ),
        (scores("new", 0.985, 0.90), scores("old", 0.990, 0.40), False, "retraining", "allowed drop 0.30%"),
        (
            scores("new", 0.995, 0.45),
            scores("old", 0.990, 0.50),
            False,
            "retraining",
            "feedback holdout 45.00% vs 50.00%",
        ),
        # A challenger (another configuration) must gain more than the study's champion margin (0.05 points).
        (
            scores("long", 0.9920, 0.5, configuration=LONG),
            scores("old", 0.9910, 0.5),
            True,
            "challenger",
            "replaces old",
        ),
        (
            scores("long", 0.9914, 0.5, configuration=LONG),
            scores("old", 0.9910, 0.5),
            False,
            "challenger",
            "margin 0.05%",
        ),
        (
            scores("long", 0.9915, 0.5, configuration=LONG),
            scores("old", 0.9910, 0.5),
            False,
            "challenger",
            "margin 0.05%",
        ),
        (
            scores("long", 0.9905, 0.5, configuration=LONG),
            scores("old", 0.9910, 0.5),
            False,
            "challenger",
            "margin 0.05%",
        ),
        (
            scores("long", 0.9930, 0.4, configuration=LONG),
            scores("old", 0.9910, 0.5),
            False,
            "challenger",
            "feedback holdout",
        ),
        # The generated pen-stroke benchmark gates nothing: training draws from the same generator.
        (
            scores("new", 0.990, 0.5, stroke=0.90),
            scores("old", 0.990, 0.5, stroke=0.990),
            True,
            "retraining",
            "replaces",
        ),
    ],
)
def test_the_rule(candidate, champion, promoted, case, reason):
    decision = decide(candidate, champion)
    assert (decision.promote, decision.case) == (promoted, case)
    assert reason in decision.reason
    assert json.loads(json.dumps(decision.to_dict()))["promote"] is promoted
    if champion is not None and candidate.version != champion.version:
        names = [check.name for check in decision.checks]
        assert names == ["validation", "feedback holdout", "real writers"]
        assert decision.promote == all(check.passed for check in decision.checks)


def comparison(candidate_right, champion_right, writers, champion_saw_them=False):
    candidate_right, champion_right = np.asarray(candidate_right, float), np.asarray(champion_right, float)
    return promotion.WriterComparison(
        writers=tuple(sorted(set(writers))),
        digits=len(writers),
        candidate_accuracy=candidate_right.mean(),
        champion_accuracy=champion_right.mean(),
        difference=stats.clustered_mean_interval(candidate_right - champion_right, writers),
        champion_saw_them=champion_saw_them,
    )


def test_real_writers_read_worse_beyond_their_noise_keep_the_champion():
    writers = np.repeat([1, 2, 3, 4, 5, 6], 50)
    everywhere_worse = comparison(
        np.arange(300) % 10 != 0, np.ones(300), writers
    )  # 10 points down on every writer
    one_writer_worse = comparison(
        writers != 3, np.ones(300), writers
    )  # only writer 3 changed: within the noise
    for real, promoted in ((everywhere_worse, False), (one_writer_worse, True)):
        decision = promotion.decide(
            scores("new", 0.990, 0.5),
            scores("old", 0.990, 0.5),
            margins=MARGINS,
            max_val_drop=0.003,
            holdout_rows=20,
            real=real,
        )
        check = decision.checks[-1]
        assert (check.name, check.passed, decision.promote) == ("real writers", promoted, promoted)
        assert "300 digits of 6 writers" in check.text
    assert everywhere_worse.difference.high < 0 < one_writer_worse.difference.high


def test_compare_on_writers_pairs_the_two_models_on_the_same_digits(tiny_model):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(120, 784), dtype=np.uint8)
    labels = tiny_model.predict(images)[0]
    writers = np.repeat(np.arange(6), 20)
    same = promotion.compare_on_writers(tiny_model, tiny_model, images, labels, writers)
    assert (same.candidate_accuracy, same.champion_accuracy, same.difference.estimate) == (1.0, 1.0, 0.0)
    assert same.digits == 120 and same.writers == tuple(range(6))


def test_a_model_without_a_recorded_configuration_is_a_challenger():
    """Unknown on either side: the stricter case, a validation gain past the margin is needed."""
    for candidate_configuration, champion_configuration in ((None, DEFAULT), (DEFAULT, None), (None, None)):
        tie = decide(
            scores("new", 0.990, 0.5, configuration=candidate_configuration),
            scores("old", 0.990, 0.5, configuration=champion_configuration),
        )
        assert (tie.promote, tie.case) == (False, "challenger")
        gain = decide(
            scores("new", 0.992, 0.5, configuration=candidate_configuration),
            scores("old", 0.990, 0.5, configuration=champion_configuration),
        )
        assert (gain.promote, gain.case) == (True, "challenger")


def test_the_configuration_is_the_recorded_hyperparameters_and_layers_without_the_seed():
    hyperparameters = {"hidden_sizes": [512, 512], "epochs": 15, "seed": 1, "feedback_weight": 5}
    meta = {"hyperparameters": hyperparameters, "layer_sizes": [784, 512, 512, 10]}
    fingerprint = promotion.configuration_of(meta)
    assert len(fingerprint) == 12
    assert (
        promotion.configuration_of({**meta, "hyperparameters": {**hyperparameters, "seed": 2}}) == fingerprint
    )
    assert (
        promotion.configuration_of({**meta, "hyperparameters": {**hyperparameters, "epochs": 40}})
        != fingerprint
    )
    assert promotion.configuration_of({**meta, "layer_sizes": [784, 256, 10]}) != fingerprint
    assert promotion.configuration_of({"layer_sizes": [784, 16, 10]}) is None
    assert promotion.configuration_of({"hyperparameters": {}, "layer_sizes": [784, 16, 10]}) is None


def test_the_margins_must_be_non_negative_numbers():
    with pytest.raises(ValueError, match="max_val_drop"):
        promotion.decide(scores("a", 1, None), None, margins=MARGINS, max_val_drop=float("nan"))
    for bad in (float("nan"), -0.001, None, True):
        with pytest.raises(ValueError, match="stroke_margin"):
            promotion.StudyMargins(champion_margin=0.001, stroke_margin=bad, seeds=5, source="made-up")


def test_the_margins_come_from_the_study_csv(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        "config,seed,val_accuracy,stroke_accuracy\ndefault,1,0.990,0.995\ndefault,2,0.992,0.999\n"
    )
    margins = promotion.StudyMargins.of(study_results.read_study(path))
    assert margins.champion_margin == pytest.approx(2 * 0.0014142, rel=1e-4)
    assert margins.stroke_margin == pytest.approx(2 * 0.0028284, rel=1e-4)
    assert (margins.seeds, margins.source) == (2, str(path))
    path.write_text("config,seed,val_accuracy,stroke_accuracy\ndefault,1,0.990,0.995\n")
    with pytest.raises(ValueError, match="at least 2"):
        promotion.StudyMargins.of(study_results.read_study(path))


TRAINED_WITH = {"hyperparameters": {"hidden_sizes": [16], "epochs": 15, "seed": 1}}


def save(directory: Path, seed: int, metadata: dict | None = None) -> model_io.Model:
    return model_io.save_model(
        directory,
        mlp.init_params([784, 16, 10], seed=seed),
        normalization={"mean": 0.13, "std": 0.3},
        metadata=metadata,
    )


def test_install_copies_a_checked_model_and_refuses_a_corrupt_one(tmp_path):
    served = save(tmp_path / "models", seed=0)
    candidate = save(tmp_path / "candidate", seed=1)
    installed = promotion.install_model(tmp_path / "candidate", tmp_path / "models")
    assert installed.sha256 == candidate.sha256 != served.sha256
    assert not list((tmp_path / "models").glob(".*tmp"))
    weights = tmp_path / "candidate" / model_io.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(model_io.ModelFileError):
        promotion.install_model(tmp_path / "candidate", tmp_path / "models")
    assert model_io.load_model(tmp_path / "models").sha256 == candidate.sha256


def split_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "index": pa.array(np.arange(len(labels)), pa.int64()),
            "label": pa.array(labels, pa.int32()),
            "pixels": pa.array([row.tobytes() for row in images], pa.binary()),
            "predicted": pa.array(np.zeros(len(labels)), pa.int32()),
            "model_version": pa.array(["x"] * len(labels), pa.string()),
            "source": pa.array(["api"] * len(labels), pa.string()),
            "created_at": pa.array(np.zeros(len(labels)), pa.float64()),
            "strokes": pa.nulls(len(labels), pa.string()),  # pixel-only rows
        },
        schema=feedback_data.SPLIT_SCHEMA,
    )


def small_strokes(**more: float) -> list[str]:
    """papermill arguments for the notebook runs: params.yaml with a pen-stroke benchmark of 70
    digits (enough to compare the figures), and ``more`` of the promote section's keys."""
    overrides = {"stroke_per_class": 1, "stroke_writers": 2, "seed": 7, **more}
    return ["-p", "params_file", str(ROOT / "params.yaml"), "-y", json.dumps({"overrides": overrides})]


def write_study(root: Path, stroke_values: tuple[float, float] = (0.0, 1.0)) -> Path:
    """A seed study's results CSV where the notebook reads it: a champion margin of 0.04 points
    and, by default, a pen-stroke margin (1.41) that no pair of models can exceed."""
    path = root / "reports" / "experiments" / "results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "config,seed,val_accuracy,stroke_accuracy\n"
        f"default,1,0.9900,{stroke_values[0]}\ndefault,2,0.99028284,{stroke_values[1]}\n"
    )
    return path


def two_models(
    tmp_path: Path, candidate_better: bool, candidate_trained_with: dict = TRAINED_WITH
) -> tuple[model_io.Model, model_io.Model]:
    """A champion in models/ and a candidate in data/candidate/ that agree on the validation
    images and disagree on the feedback holdout, whose labels say which one is right there. Both
    record the same training configuration unless ``candidate_trained_with`` says otherwise."""
    champion = save(tmp_path / "models", seed=0, metadata=TRAINED_WITH)
    rng = np.random.default_rng(0)
    nudged = {
        name: value + rng.normal(0, value.std() / 2, value.shape).astype(np.float32)
        for name, value in champion.params.items()
    }
    candidate = model_io.save_model(
        tmp_path / "data" / "candidate",
        nudged,
        normalization={"mean": 0.13, "std": 0.3},
        metadata=candidate_trained_with,
    )
    write_study(tmp_path)
    pool = rng.integers(0, 256, size=(4000, 784), dtype=np.uint8)
    said_by_champion, said_by_candidate = champion.predict(pool)[0], candidate.predict(pool)[0]
    agree = np.flatnonzero(said_by_champion == said_by_candidate)[:200]
    disagree = np.flatnonzero(said_by_champion != said_by_candidate)[:40]
    assert len(agree) == 200 and len(disagree) == 40
    holdout_labels = (said_by_candidate if candidate_better else said_by_champion)[disagree]
    feedback_data.write_table(
        split_table(pool[agree], said_by_champion[agree]), tmp_path / "data/prepared/validation.parquet"
    )
    feedback_data.write_table(
        split_table(pool[disagree], holdout_labels), tmp_path / "data/feedback/holdout.parquet"
    )
    return champion, candidate


@pytest.mark.slow
@pytest.mark.parametrize("candidate_better", [False, True], ids=["worse-on-holdout", "better-on-holdout"])
def test_promote_notebook_moves_alias_and_served_model_only_for_a_better_candidate(
    tmp_path, mlflow_uri, candidate_better
):
    champion, candidate = two_models(tmp_path, candidate_better)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    register = """
import json, sys
from doodle.loop import tracking
tracking.setup()
for folder, promote in (("models", True), ("data/candidate", False)):
    logged = tracking.log_training(params={}, history=[], metrics={tracking.SELECTION_METRIC: 0.5},
                                   model_dir=folder, promote=promote)
    print(logged.version)
json.dump({"run_id": logged.run_id, "version": logged.version}, open("data/candidate/registered.json", "w"))
"""
    subprocess.run([sys.executable, "-c", register], cwd=tmp_path, env=env, check=True, capture_output=True)

    with (
        run_server(tmp_path / "server", tmp_path / "models", DOODLE_MODEL_POLL_SECONDS="0.2") as server,
        server.client() as client,
    ):
        assert client.get("/model").json()["version"] == champion.version
        subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                str(ROOT / "notebooks/05_promote.ipynb"),
                str(tmp_path / "out.ipynb"),
                *small_strokes(max_val_drop=0.003),
            ],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
        )
        decision = json.loads((tmp_path / "reports/metrics/promotion.json").read_text())
        expected = candidate.version if candidate_better else champion.version
        assert decision["promoted"] is candidate_better
        assert decision["case"] == "retraining"
        assert decision["candidate"]["configuration"] == decision["champion"]["configuration"] is not None
        # Both models measured on 04_evaluate's pen-stroke benchmark, with the settings passed.
        bench = strokes.evaluation_benchmark(7, 1, 2)
        assert decision["stroke_digits"] == len(bench.labels) == 70
        for name, model in (("candidate", candidate), ("champion", champion)):
            assert decision[name]["stroke_accuracy"] == promotion.accuracy(model, bench.images, bench.labels)
        assert decision["stroke_margin"] == pytest.approx(2 * np.std([0.0, 1.0], ddof=1))
        assert [check["name"] for check in decision["checks"]] == [
            "validation",
            "feedback holdout",
            "real writers",
        ]
        assert decision["served_version"] == expected
        assert decision["candidate"]["val_accuracy"] == decision["champion"]["val_accuracy"] == 1.0
        assert decision["candidate"]["holdout_accuracy"] == (1.0 if candidate_better else 0.0)
        assert model_io.load_model(tmp_path / "models").version == expected
        deadline = time.monotonic() + 30
        while client.get("/model").json()["version"] != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a few more polls: a kept champion must stay
        assert client.get("/model").json()["version"] == expected
        assert "refused" not in server.log()

    check = """
from mlflow.tracking import MlflowClient
from doodle.loop import tracking
tracking.setup()
client = MlflowClient()
champion = client.get_model_version_by_alias(tracking.REGISTERED_MODEL_NAME, tracking.CHAMPION_ALIAS)
run = client.get_run(client.get_model_version(tracking.REGISTERED_MODEL_NAME, "2").run_id)
print(champion.version, run.data.tags["promotion_decision"][:4], run.data.metrics["promotion_holdout_accuracy"])
"""
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    version, verdict, holdout = out.stdout.split()
    assert version == ("2" if candidate_better else "1")
    assert verdict == ("prom" if candidate_better else "kept")
    assert float(holdout) == (1.0 if candidate_better else 0.0)
    shutil.rmtree(tmp_path / "mlartifacts", ignore_errors=True)


@pytest.mark.slow
def test_a_challenger_equal_on_validation_stays_out_and_no_study_stops_the_notebook(tmp_path, mlflow_uri):
    """The candidate reads the holdout better and ties on validation, but was trained with another
    configuration: a challenger must beat the champion by the study's margin and does not. Without
    the study's results the notebook stops before anything moves."""
    champion, candidate = two_models(
        tmp_path,
        candidate_better=True,
        candidate_trained_with={"hyperparameters": {"hidden_sizes": [16], "epochs": 40}},
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    promote = [
        sys.executable,
        "-m",
        "papermill",
        str(ROOT / "notebooks/05_promote.ipynb"),
        str(tmp_path / "out.ipynb"),
        "-p",
        "metrics_path",
        "long/promotion.json",
        *small_strokes(),
        "-p",
        "results_csv",
    ]
    subprocess.run(
        [*promote, "reports/experiments/results.csv"], cwd=tmp_path, env=env, check=True, capture_output=True
    )
    decision = json.loads((tmp_path / "long/promotion.json").read_text())
    assert decision["promoted"] is False and decision["served_version"] == champion.version
    assert decision["case"] == "challenger"
    assert "to exceed the seed study's margin 0.04%" in decision["decision"]
    assert decision["champion_margin"] == pytest.approx(0.0004, rel=1e-3) and decision["study_seeds"] == 2
    assert [check["passed"] for check in decision["checks"]] == [False, True, True]
    assert model_io.load_model(tmp_path / "models").version == champion.version

    (tmp_path / "long/promotion.json").unlink()
    failed = subprocess.run(
        [*promote, str(tmp_path / "none.csv")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "no seed study results" in failed.stdout + failed.stderr
    assert not (tmp_path / "long/promotion.json").exists()
    assert model_io.load_model(tmp_path / "models").version == champion.version != candidate.version
