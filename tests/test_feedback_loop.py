"""The feedback loop end to end, over real HTTP, DVC, Spark, MLflow and uvicorn: corrections of
drawings the served model gets wrong go in through `/feedback` (and one through the drawing app's
code), `make retrain` snapshots, trains, evaluates and promotes, and the running server switches
to the new model without a restart, under load, and reads most of those drawings right.

It runs in a scratch copy of the repository (the prepared MNIST Parquet included, its own MLflow
store and feedback store) with a small training configuration so that it stays affordable on
two cores: a 784-128-10 network, 2 epochs of MNIST alone (no augmentation, no generated pen-stroke
digits: what the loop proves does not depend on them), each correction repeated 50 times, a
small pen-path model, and small evaluation benchmarks. The pipeline must have run once
(`make pipeline`) so that `data/prepared` and `data/pendigits` exist; the copy takes them as
they are, so neither Spark stage reruns, and neither do the derivation and study notebooks
(COPIED_STAGES): what the loop proves does not depend on them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from doodle.app.dashboard import DoodleApp
from doodle.canvas import doodles
from doodle.loop.feedback import FeedbackStore
from doodle.model.model_io import load_model
from doodle.sources import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
from serving_helpers import run_server  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from pipeline_scratch import scratch_environment as environment  # noqa: E402

from support.digits import HAND_DRAWN_DIGITS, draw_on  # noqa: E402
from support.pipeline import outputs_missing  # noqa: E402

VENV_BIN = Path(sys.executable).parent
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".cache",
    "tmp",
    ".jupyter-data",
    ".pytest_cache",
    "__pycache__",
    "*.egg-info",
    "node_modules",
    "test-artifacts",
    "mlflow.db",
    "mlflow.db-*",
    "mlruns",
    "mlartifacts",
    "models",
    "candidate",
    "feedback",
    "feedback-snapshot",
    "feedback.sqlite*",
    "long-run",
    "dvc_plots",
    # Outputs on their way into the working tree while the pipeline runs beside the tests.
    "*.incoming",
)
SMALL = {
    "train": {
        "hidden_sizes": [128],
        "epochs": 2,
        "patience": 0,
        "feedback_weight": 50,
        "augment": False,
        "stroke_share": 0.0,
    },
    # The pen-path model trains beside the pixel model; the loop serves and judges the pixel model.
    "train_path": {"hidden_sizes": [64], "epochs": 2, "augment_copies": 0, "ensemble": 1},
    "evaluate": {
        "doodle_count": 200,
        "robustness_count": 100,
        "stroke_per_class": 2,
        "stroke_writers": 2,
        "number_count": 2,
    },
    # A 2-epoch network moves more from run to run than the real one: a wider margin here.
    "promote": {"max_val_drop": 0.02},
}
CORRECTIONS = 50
# Stages whose outputs come with the copy and stand as they are: the two Spark data stages
# (`make pipeline` made their outputs), and the notebooks that check the maths on that data or
# rebuild the seed study's table (their executed copies are in the repository; SMALL changes none
# of their params). The loop reruns the others: snapshot, feedback, train, evaluate, promote.
COPIED_STAGES = ("prepare", "pendigits", "derive", "derive_path", "experiments")


def scratch_repository(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=NOT_COPIED, symlinks=False)
    params = yaml.safe_load((destination / "params.yaml").read_text())
    for section, values in SMALL.items():
        params[section].update(values)
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(
        [VENV_BIN / "dvc", "config", "--local", "core.no_scm", "true"], cwd=destination, check=True
    )
    # The copy has no DVC cache, so `dvc repro` would rerun the copied stages: the Spark stages to
    # the same bytes, the notebooks to the same checks. Record their outputs as they are.
    subprocess.run(
        [VENV_BIN / "dvc", "commit", "--force", "--no-relink", "--quiet", *COPIED_STAGES],
        cwd=destination,
        env=environment(destination),
        check=True,
    )
    return destination


def retrain(scratch: Path) -> str:
    """`make retrain` in the scratch copy with this interpreter's environment (no install)."""
    venv = VENV_BIN.parent
    completed = subprocess.run(
        ["make", "--no-print-directory", "retrain", f"VENV={venv}", "-o", f"{venv}/.installed-lock"],
        cwd=scratch,
        env=environment(scratch),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert completed.returncode == 0, f"{completed.stdout[-6000:]}\n{completed.stderr[-6000:]}"
    return completed.stdout


@pytest.mark.slow
@pytest.mark.pipeline("data/raw", "data/prepared", "data/pendigits")
@pytest.mark.timeout(3600)
def test_corrections_teach_the_next_model_which_is_served_without_a_restart(tmp_path, empty_mlflow_db):
    if not (ROOT / "data" / "prepared" / "validation.parquet").exists():
        outputs_missing("run `make pipeline` first: the prepared MNIST splits are copied from it")
    scratch = scratch_repository(tmp_path / "repo")
    shutil.copy(empty_mlflow_db, scratch / "mlflow.db")  # an empty store, its tables already made

    # 1. An empty feedback store: the stages not copied run and crown a first champion.
    first_output = retrain(scratch)
    assert "promoted: no model is served yet" in first_output
    assert set(re.findall(r"Running stage '(\w+)'", first_output)) == {
        "feedback_snapshot",
        "feedback",
        "train",
        "evaluate",
        "promote",
    }, first_output
    first = load_model(scratch / "models")
    assert json.loads((scratch / "reports/metrics/feedback.json").read_text())["snapshot_rows"] == 0

    # A second run with nothing new reruns only the snapshot, which finds the same bytes.
    again = subprocess.run(
        [VENV_BIN / "dvc", "repro"],
        cwd=scratch,
        env=environment(scratch),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    assert re.findall(r"Running stage '(\w+)'", again) == ["feedback_snapshot"], again

    with (
        run_server(
            tmp_path / "server",
            scratch / "models",
            DOODLE_MODEL_POLL_SECONDS="0.5",
            DOODLE_FEEDBACK_DB=str(scratch / "data" / "feedback.sqlite"),
        ) as server,
        server.client() as client,
    ):
        assert client.get("/model").json()["version"] == first.version

        # 2. Drawings the served model gets wrong: MNIST test digits redrawn with a round pen.
        images, labels = data.load_split("test", scratch / "data" / "prepared")
        drawn = doodles.make_doodles(images[:1500], seed=11).reshape(-1, 784)
        said = np.concatenate(
            [
                [
                    r["Result"]
                    for r in client.post("/predict/batch", json={"image_vectors": chunk.tolist()}).json()[
                        "results"
                    ]
                ]
                for chunk in np.array_split(drawn, 30)
            ]
        )
        wrong = np.flatnonzero(said != labels[:1500])[:CORRECTIONS]
        assert len(wrong) >= 20, f"the model misread only {len(wrong)} doodles"
        for index in wrong:
            body = {
                "image_vector": drawn[index].tolist(),
                "predicted_digit": int(said[index]),
                "actual_digit": int(labels[index]),
            }
            assert client.post("/feedback", json=body).status_code == 200
        # One correction through the drawing app's own code path, into the same store.
        app = DoodleApp(
            model=first, feedback_store=FeedbackStore(scratch / "data" / "feedback.sqlite"), live=False
        )
        draw_on(app, HAND_DRAWN_DIGITS[7])
        assert app.submit_feedback(7) is not None

        # 3. Retrain while clients keep asking for predictions.
        stop = threading.Event()
        statuses: Counter = Counter()
        versions: Counter = Counter()

        def load() -> None:
            # A new connection for every request: on a starved machine a kept-alive connection can
            # sit idle past uvicorn's 5 s keep-alive and be closed just as the next request goes out.
            with server.client(max_keepalive_connections=0) as http:
                while not stop.is_set():
                    answer = http.post("/predict", json={"image_vector": drawn[wrong[0]].tolist()})
                    statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        versions[answer.json()["model_version"]] += 1
                    time.sleep(0.1)  # about 20 requests a second in all: load, not a benchmark

        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            output = retrain(scratch)
            decision = json.loads((scratch / "reports/metrics/promotion.json").read_text())
            assert decision["promoted"], output
            assert decision["decision"] in output
            new_version = decision["served_version"]
            deadline = time.monotonic() + 60
            while client.get("/model").json()["version"] != new_version and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # some load on the new model too
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert client.get("/model").json()["version"] == new_version != first.version
        assert set(statuses) == {200}, statuses
        assert set(versions) == {first.version, new_version}

        # 4. The new model reads most of the corrected drawings right.
        answers = client.post("/predict/batch", json={"image_vectors": drawn[wrong].tolist()}).json()[
            "results"
        ]
        right = np.mean([a["Result"] == labels[i] for a, i in zip(answers, wrong)])
        # All of them were misread before; most must now be read right (the holdout part was not trained on).
        assert right > 0.5, f"only {right:.0%} of the corrected drawings read right"

    feedback = json.loads((scratch / "reports/metrics/feedback.json").read_text())
    assert feedback["train_rows"] + feedback["holdout_rows"] == len(wrong) + 1
    assert feedback["error_rate_by_model_version"][first.version]["errors"] == len(wrong) + (
        app.prediction.digit != 7
    )
    assert decision["candidate"]["holdout_accuracy"] >= decision["champion"]["holdout_accuracy"]
    print(f"{len(wrong)} corrections: {right:.0%} read right after retraining; {decision['decision']}")
