"""The long training configuration (params-long.yaml), trained, calibrated, evaluated, then judged.

`make long-run` runs this; it is no part of `dvc repro` or `make test`. Four steps, each a
papermill run of the pipeline's own notebook with its outputs under reports/long-run/:

1. ``03_train`` with params-long.yaml: the model (its temperature fitted on validation, as
   every train run does) in ``data/long-run/models/``, registered in MLflow as a candidate
   version; the executed notebook is ``reports/long-run/03_train_long.ipynb``.
2. The model file is checked to carry its temperature (the calibration every consumer applies).
3. ``04_evaluate`` on that model, writing ``reports/long-run/{metrics,figures,plots}/`` and
   ``reports/long-run/04_evaluate_long.ipynb`` (the pipeline's reports stay untouched).
4. ``05_promote`` against the served model (``models/``), with the pipeline's one rule
   (doodle.loop.promotion.decide): trained with another configuration than the champion's, the long run
   is a challenger and must beat its MNIST validation accuracy by more than the seed study's
   champion margin (from ``reports/experiments/results.csv``), read at least as many feedback-holdout
   drawings right, and read the real writers neither model saw no worse beyond noise (the 95 %
   interval of the difference, clustered by writer, not wholly below zero). The generated pen-stroke
   benchmark is measured and reported but gates nothing. The decision, its case and every figure it used go to
   ``reports/long-run/promotion.json``; when it wins, ``models/`` and the MLflow alias ``champion``
   move to it.

    python scripts/long_run.py                    # all four steps (about 10 min of training on 2 quiet cores)
    python scripts/long_run.py --reuse-model      # steps 2-4 on the model step 1 already wrote
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import papermill
import yaml

from doodle.model import model_io
from doodle.study import study_results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORTS = Path("reports/long-run")
NOT_CALIBRATED = "{path}: the model carries no temperature; 03_train fits one on validation (rerun step 1)"


def run_notebook(name: str, output: Path, parameters: dict) -> None:
    print(f"== {name} -> {output}", flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        f"notebooks/{name}.ipynb", str(output), parameters=parameters, cwd=str(ROOT), progress_bar=False
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params-long", type=Path, default=Path("params-long.yaml"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--study",
        type=Path,
        default=study_results.DEFAULT_RESULTS,
        help="the seed study's runs (results CSV): the champion and pen-stroke margins",
    )
    parser.add_argument("--served", type=Path, default=Path("models"), help="the served model (the champion)")
    parser.add_argument(
        "--reports", type=Path, default=DEFAULT_REPORTS, help="where the executed notebooks and results go"
    )
    parser.add_argument(
        "--reuse-model",
        action="store_true",
        help="skip training: evaluate and judge the model the last run wrote",
    )
    args = parser.parse_args(argv)
    reports = args.reports

    long_params = yaml.safe_load(args.params_long.read_text())
    model_dir = Path(long_params["model_dir"])
    try:  # fail before an hour of training, not after it
        study = study_results.read_study(args.study)
        margins = f"champion margin {study.champion_margin:.4%}, pen-stroke margin {study.stroke_margin:.4%}"
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"== seed study {args.study}: {study.seeds} seeds of the default; {margins}")

    if args.reuse_model:
        print(f"== 03_train skipped: reusing {model_dir}")
    else:
        run_notebook("03_train", reports / "03_train_long.ipynb", long_params)

    model = model_io.load_model(model_dir)
    if "temperature" not in model.metadata:
        print(NOT_CALIBRATED.format(path=model_dir), file=sys.stderr)
        return 1
    trained_with = json.loads((model_dir / model_io.METADATA_NAME).read_text()).get("hyperparameters", {})
    print(
        f"== model {model.version}: temperature {model.temperature:.4f}, layers {model.layer_sizes},"
        f" trained with {json.dumps({k: trained_with.get(k) for k in long_params['overrides']})}"
    )

    run_notebook(
        "04_evaluate",
        reports / "04_evaluate_long.ipynb",
        {
            "params_file": str(args.params),
            "model_dir": str(model_dir),
            "metrics_dir": str(reports / "metrics"),
            "figures_dir": str(reports / "figures"),
            "plots_dir": str(reports / "plots"),
        },
    )
    run_notebook(
        "05_promote",
        reports / "05_promote_long.ipynb",
        {
            "params_file": str(args.params),
            "candidate_dir": str(model_dir),
            "model_dir": str(args.served),
            "results_csv": str(args.study),
            "metrics_path": str(reports / "promotion.json"),
        },
    )
    decision = json.loads((reports / "promotion.json").read_text())
    print(f"{decision['case']}: {decision['decision']}")
    print(f"served model: {decision['served_version']}; registry: {decision['registry']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
