"""scripts/results_table.py: the README's results table, rewritten from the metrics and checked."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "results_table.py"

sys.path.insert(0, str(SCRIPT.parent))
import results_table  # noqa: E402

EVALUATE = {
    "model_version": "0123456789ab",
    "test_accuracy": 0.9812,
    "doodle_accuracy": 0.9476,
    "doodle_count": 3000,
    "doodle_split": "validation",
    "font_accuracy": 0.9123,
    "font_count": 570,
    "ece": 0.00644,
    "macro_f1": 0.98105,
    "stroke_accuracy": 0.96345,
    "stroke_count": 2100,
    "stroke_min_class_accuracy": 0.91,
    "stroke_thickest_pen_gap": 0.0214,
}
TRAIN = {"train_seconds": 83.4}
README = f"# Title\n\nIntro.\n\n{results_table.START}\nold table\n{results_table.END}\n\n## After\n"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


@pytest.fixture
def project(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "train.json").write_text(json.dumps(TRAIN))
    (metrics / "evaluate.json").write_text(json.dumps(EVALUATE))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    return readme, metrics


def test_rewrites_only_between_the_markers(project):
    readme, metrics = project
    assert run("--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nIntro.\n\n<!-- results:start -->\n")
    assert text.endswith("<!-- results:end -->\n\n## After\n")
    assert "old table" not in text
    assert "| MNIST test accuracy | 98.12 % |" in text
    assert (
        "| Doodle benchmark accuracy (3,000 validation digits redrawn with a round pen) | 94.76 % |" in text
    )
    assert "| Typed-digit accuracy (570 digits in matplotlib's fonts) | 91.23 % |" in text
    assert (
        "| Synthetic strokes (2,100 digits from the training generator's styles, by writers it holds out,"
        " pens 6-30 px; not people) | 96.34 % |" in text
    )
    assert "| Synthetic strokes, lowest per-digit accuracy | 91.00 % |" in text
    assert "| Synthetic strokes, thickest pen (30 px) below the best pen width, points | 2.14 |" in text
    assert "| Expected calibration error (15 bins) | 0.0064 |" in text
    assert "| Training time | 1 min 23 s |" in text
    # Running again changes nothing.
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    assert readme.read_text() == text


def test_check_fails_on_a_stale_table_and_passes_once_rewritten(project):
    readme, metrics = project
    stale = run("--check", "--readme", str(readme), "--metrics-dir", str(metrics))
    assert stale.returncode == 1
    assert "out of date" in stale.stderr
    assert readme.read_text() == README  # --check writes nothing
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    (metrics / "evaluate.json").write_text(json.dumps({**EVALUATE, "test_accuracy": 0.9700}))
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 1


def test_check_ignores_a_different_training_time(project):
    readme, metrics = project
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    (metrics / "train.json").write_text(json.dumps({"train_seconds": 95.0}))
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0


def test_missing_markers_and_missing_metrics_are_reported(project, tmp_path):
    readme, metrics = project
    readme.write_text("# No markers\n")
    result = run("--readme", str(readme), "--metrics-dir", str(metrics))
    assert result.returncode != 0 and "no '<!-- results:start -->'" in result.stderr
    result = run("--readme", str(readme), "--metrics-dir", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "metrics file not found" in result.stderr


def test_repository_readme_is_up_to_date():
    metrics = ROOT / "reports" / "metrics"
    missing = [name for name in ("train.json", "evaluate.json") if not (metrics / name).is_file()]
    if missing:
        pytest.fail(f"reports/metrics/{', '.join(missing)} missing: run `dvc repro` first", pytrace=False)
    result = run("--check")
    assert result.returncode == 0, result.stderr


# What one config and seed gave on two CPUs (the committed run, then a fresh clone on AMD EPYC):
# a run on another machine must pass the check, a table from another model must not.
OTHER_CPU = {"test_accuracy": +0.0003, "doodle_accuracy": +0.005, "ece": +0.0013, "macro_f1": +0.0003}


def test_check_passes_a_run_on_another_cpu(project):
    readme, metrics = project
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    drifted = {**EVALUATE, **{key: EVALUATE[key] + change for key, change in OTHER_CPU.items()}}
    (metrics / "evaluate.json").write_text(json.dumps(drifted))
    check = run("--check", "--readme", str(readme), "--metrics-dir", str(metrics))
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("key", "change"),
    [("test_accuracy", -0.004), ("doodle_accuracy", +0.02), ("ece", +0.01), ("macro_f1", -0.005)],
)
def test_check_fails_beyond_the_noise(project, key, change):
    readme, metrics = project
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    (metrics / "evaluate.json").write_text(json.dumps({**EVALUATE, key: EVALUATE[key] + change}))
    check = run("--check", "--readme", str(readme), "--metrics-dir", str(metrics))
    assert check.returncode == 1
    assert "tolerance" in check.stderr


def test_check_fails_on_a_missing_or_renamed_row(project):
    readme, metrics = project
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    text = readme.read_text()
    readme.write_text(text.replace("| Macro F1 (MNIST test) |", "| Macro F1 |"))
    check = run("--check", "--readme", str(readme), "--metrics-dir", str(metrics))
    assert check.returncode == 1
    assert "'Macro F1 (MNIST test)' missing" in check.stderr
    assert "'Macro F1' not in the metrics" in check.stderr


def test_seed_study_rows_appear_with_the_experiments_metrics(project):
    readme, metrics = project
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    assert "over" not in readme.read_text()  # no experiments.json: no study rows
    study = {
        "seeds": 5,
        "default": {
            "test_accuracy": {"mean": 0.99102, "sd": 0.00031, "n": 5},
            "doodle_accuracy": {"mean": 0.9661, "sd": 0.0021, "n": 5},
            "stroke_accuracy": {"mean": 0.9945, "sd": 0.0012, "n": 5},
            "ece": {"mean": 0.00151, "sd": 0.00042, "n": 5},
        },
    }
    (metrics / "experiments.json").write_text(json.dumps(study))
    assert (
        run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 1
    )  # rows missing
    run("--readme", str(readme), "--metrics-dir", str(metrics))
    text = readme.read_text()
    assert "| MNIST test accuracy, default configuration over 5 seeds (mean ± sd) | 99.10 ± 0.03 % |" in text
    assert "| Expected calibration error over 5 seeds (mean ± sd) | 0.0015 ± 0.0004 |" in text
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    study["default"]["test_accuracy"]["mean"] = 0.9890
    (metrics / "experiments.json").write_text(json.dumps(study))
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 1


def test_breakdowns_are_read_from_the_details_file_beside_the_headline(tmp_path):
    # The pipeline writes the headline figures to evaluate.json (DVC's metric) and the rest, counts and
    # typed digits included, to evaluate_details.json beside it: the table needs both.
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    headline = {key: EVALUATE[key] for key in ("test_accuracy", "ece", "doodle_accuracy", "stroke_accuracy")}
    (metrics / "evaluate.json").write_text(json.dumps(headline))
    (metrics / "evaluate_details.json").write_text(json.dumps({**EVALUATE, "test_accuracy": 0.5}))
    (metrics / "train.json").write_text(json.dumps({"epochs_run": 15}))
    (metrics / "train_details.json").write_text(json.dumps(TRAIN))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert run("--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    text = readme.read_text()
    assert "| MNIST test accuracy | 98.12 % |" in text  # the headline file wins over the details
    assert "| Typed-digit accuracy (570 digits in matplotlib's fonts) | 91.23 % |" in text
    assert "| Training time | 1 min 23 s |" in text


def test_real_handwriting_leads_the_table_with_its_interval(project):
    readme, metrics = project
    (metrics / "real_writers.json").write_text(
        json.dumps(
            {
                "cv_accuracy": 0.97912,
                "cv_low": 0.9712,
                "cv_high": 0.98501,
                "cv_worst_writer": 0.9104,
                "cv_worst_digit": 0.9533,
                "held_out_accuracy": 0.981,
                "held_out_low": 0.96,
                "held_out_high": 0.99,
                "held_out_worst_writer": 0.95,
                "held_out_worst_digit": 0.94,
                "held_out_writers": 6,
            }
        )
    )
    assert run("--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    rows = readme.read_text().split("| --- | --- |\n")[1].splitlines()
    assert rows[0].startswith("| Real handwriting: 30 writers, each read by a model that never saw them")
    assert rows[0].endswith("| 97.91 % (97.12-98.50) |")
    assert "| Real handwriting, worst of the 30 writers (cross-validation) | 91.040 % |" in rows
    assert (
        "| Real handwriting, this run's 6 held-out writers (95 % interval clustered by writer) | 98.10 % (96.00-99.00) |"
        in rows
    )
    assert run("--check", "--readme", str(readme), "--metrics-dir", str(metrics)).returncode == 0
    (metrics / "real_writers.json").write_text(
        json.dumps(
            {
                "cv_accuracy": 0.96912,
                "cv_low": 0.9612,
                "cv_high": 0.97501,
                "cv_worst_writer": 0.9104,
                "cv_worst_digit": 0.9533,
                "held_out_accuracy": 0.981,
                "held_out_low": 0.96,
                "held_out_high": 0.99,
                "held_out_writers": 6,
            }
        )
    )
    stale = run("--check", "--readme", str(readme), "--metrics-dir", str(metrics))
    assert stale.returncode == 1 and "97.91 %" in stale.stderr
