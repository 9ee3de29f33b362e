"""doodle.study.experiments and scripts/experiments.py: a study run trains through doodle.model.train exactly as
the train stage would, is measured as the evaluate stage measures, and lands as one CSV row."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from doodle.canvas import strokes
from doodle.model import model_io
from doodle.model.inputs import as_float_images
from doodle.model.train import TrainConfig, train
from doodle.study import experiments, study_results
from doodle.study.development import development_sets
from support.synthetic import synthetic_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from torch_reference import COLUMNS as TORCH_COLUMNS  # noqa: E402  (imports no torch at module level)

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params.yaml"
TINY = {"epochs": 2, "hidden_sizes": [16], "stroke_pool": 40, "batch_size": 64}


@pytest.fixture(scope="module")
def bench():
    """Small benchmarks built as load_benchmarks builds them, from synthetic digits."""
    train_images, train_labels = synthetic_mnist(300, 1)
    val_images, val_labels = synthetic_mnist(100, 2)
    test_uint8, test_labels = synthetic_mnist(120, 3)
    development = development_sets(val_images, val_labels.astype(np.int64), 20, 50, 7)
    return experiments.Benchmarks(
        train=(train_images, train_labels.astype(np.int64)),
        validation=(val_images, val_labels.astype(np.int64)),
        test_images=as_float_images(test_uint8),
        test_labels=test_labels.astype(np.int64),
        doodle_images=development.doodle_images,
        doodle_labels=development.doodle_labels,
        stroke=strokes.benchmark(11, per_class=1, writer_count=2),
        robust_images=development.robust_images,
        robust_labels=development.robust_labels,
        calibration_bins=15,
    )


def test_parse_settings_reads_dvc_style_values():
    assert experiments.parse_settings(
        ["+train.augment=false", "train.hidden_sizes=[256, 256]", "train.learning_rate=0.0003"]
    ) == {
        "augment": False,
        "hidden_sizes": [256, 256],
        "learning_rate": 0.0003,
    }


@pytest.mark.parametrize(
    "setting", ["augment=false", "evaluate.doodle_count=10", "train.augment", "train.a.b=1"]
)
def test_parse_settings_refuses_anything_but_train_keys(setting):
    with pytest.raises(ValueError, match="train.<key>=<value>"):
        experiments.parse_settings([setting])


def test_parse_settings_leaves_the_seed_to_the_study():
    with pytest.raises(ValueError, match="--seeds"):
        experiments.parse_settings(["+train.seed=3"])


def test_every_study_config_is_a_valid_train_config():
    for name, overrides in experiments.STUDY.items():
        config = TrainConfig.from_params_file(PARAMS, overrides)
        for key, value in overrides.items():
            assert getattr(config, key) == value, name
    assert experiments.STUDY["default"] == {}


def test_a_run_trains_as_the_train_stage_and_fills_every_column(bench):
    row = experiments.run_one("tiny", TINY, 5, bench, PARAMS)
    assert list(row) == study_results.COLUMNS
    # The same config and seed through doodle.model.train directly gives the same validation accuracy.
    direct = train(
        TrainConfig.from_params_file(PARAMS, {**TINY, "seed": 5}),
        bench.train,
        bench.validation,
        progress=False,
    )
    assert row["val_accuracy"] == direct.best.val_accuracy
    assert json.loads(row["overrides"]) == TINY and row["seed"] == 5
    wrong = [int(i) for i in row["test_wrong"].split()]
    assert len(wrong) == round((1 - row["test_accuracy"]) * len(bench.test_labels))
    for column in (
        "val_accuracy",
        "test_accuracy",
        "doodle_accuracy",
        "stroke_accuracy",
        *experiments.ROBUSTNESS,
    ):
        assert 0.0 <= row[column] <= 1.0, column
    assert set(json.loads(row["stroke_pen_accuracy"])) == {
        f"{int(px)}px" for px in strokes.BENCHMARK_PEN_WIDTHS
    }
    assert row["blas_threads"] == 1 and row["cpu_model"]


def test_rows_are_appended_and_finished_pairs_known(tmp_path, bench):
    path = tmp_path / "deep" / "results.csv"
    row = {column: "x" for column in study_results.COLUMNS} | {"config": "a", "seed": 3}
    study_results.append_row(path, row)
    study_results.append_row(path, row | {"seed": 4})
    assert path.read_bytes().count(b"\r\n") == 3  # header and two rows, as the committed results.csv
    with path.open(newline="") as handle:
        assert [r["seed"] for r in csv.DictReader(handle)] == ["3", "4"]
    assert study_results.done(path) == {("a", 3), ("a", 4)}
    assert study_results.done(tmp_path / "none.csv") == set()


def test_a_file_with_other_columns_is_refused_untouched(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("config,seed\nold,1\n")
    with pytest.raises(ValueError, match="columns differ"):
        study_results.append_row(path, {column: "x" for column in study_results.COLUMNS})
    assert path.read_text() == "config,seed\nold,1\n"


def test_a_kept_model_measured_again_gives_its_row_back(tmp_path, bench):
    """A run's kept model, measured again, reproduces the row's figures as the CSV holds them; a
    figure that differs is replaced and training's columns are left alone."""
    path = tmp_path / "results.csv"
    study_results.append_row(
        path, experiments.run_one("tiny", TINY, 5, bench, PARAMS, keep_models=tmp_path / "models")
    )
    [row] = study_results.read_rows(path)
    model = model_io.load_model(tmp_path / "models" / "tiny-5")
    assert experiments.remeasured(row, model, bench) == row
    stale = row | {"test_accuracy": "0.5", "rotation_plus_30deg": "0.25", "val_accuracy": "0.125"}
    again = experiments.remeasured(stale, model, bench)
    assert (
        again["test_accuracy"] == row["test_accuracy"]
        and again["rotation_plus_30deg"] == row["rotation_plus_30deg"]
    )
    assert again["val_accuracy"] == "0.125"
    study_results.write_rows(path, [again, row])
    assert study_results.read_rows(path) == [again, row]


def test_rows_of_a_file_with_other_columns_are_refused(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("config,seed\nold,1\n")
    with pytest.raises(ValueError, match="columns differ"):
        study_results.read_rows(path)


def test_script_remeasure_leaves_rows_without_a_kept_model_untouched(tmp_path):
    path = tmp_path / "results.csv"
    study_results.append_row(
        path, {column: "x" for column in study_results.COLUMNS} | {"config": "default", "seed": 3}
    )
    before = path.read_text()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "experiments.py"),
            "--remeasure",
            "--results",
            str(path),
            "--keep-models",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "default seed 3: no kept model" in result.stdout and "0 kept models to measure again" in result.stdout
    )
    assert path.read_text() == before


def test_script_remeasure_refuses_a_config_to_train():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "experiments.py"),
            "--remeasure",
            "--config",
            "x",
            "-S",
            "train.augment=false",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "--remeasure measures the file's rows" in result.stderr


def test_script_refuses_settings_without_a_config_name():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "experiments.py"), "-S", "train.augment=false"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "-S needs --config NAME" in result.stderr


def test_script_refuses_unknown_study_names():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "experiments.py"), "--only", "nonsense"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "not in the study: nonsense" in result.stderr


@pytest.mark.slow
def test_the_notebook_summarises_a_results_file(tmp_path, bench):
    """06_experiments from a small results file: the default's spread and an ablation's paired
    differences land in the metrics JSON, computed from the rows."""
    results = tmp_path / "results.csv"
    base = experiments.run_one("default", TINY, 1, bench, PARAMS)
    for config, seed, shift in [
        ("default", 1, 0.0),
        ("default", 2, 0.002),
        ("default", 3, 0.004),
        ("no-augment", 1, -0.01),
        ("no-augment", 2, -0.009),
        ("no-augment", 3, -0.005),
    ]:
        row = dict(base, config=config, seed=seed, val_accuracy=0.9 + shift, test_accuracy=0.9 + shift)
        study_results.append_row(results, row)
    # The PyTorch reference at two of the default's seeds: +0.1 and +0.3 points on test, one image
    # misread by it alone, none by NumPy alone.
    torch_results = tmp_path / "torch.csv"
    for seed, shift in [(1, 0.001), (2, 0.005)]:
        row = {column: "" for column in TORCH_COLUMNS}
        row.update(
            config="torch-default",
            seed=seed,
            val_accuracy=0.9 + shift,
            test_accuracy=0.9 + shift + 0.001 * seed,
            ece=0.002,
            torch="2.13.0+cpu",
            test_wrong=base["test_wrong"] + " 100000",
        )
        study_results.append_row(torch_results, row, TORCH_COLUMNS)
    metrics = tmp_path / "experiments.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / "06_experiments.ipynb"),
            str(tmp_path / "out.ipynb"),
            "-p",
            "results_csv",
            str(results),
            "-p",
            "metrics_path",
            str(metrics),
            "-p",
            "figures_dir",
            str(tmp_path),
            "-p",
            "torch_csv",
            str(torch_results),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    summary = json.loads(metrics.read_text())
    assert summary["seeds"] == 3
    assert summary["default"]["val_accuracy"]["mean"] == pytest.approx(0.902)
    assert summary["default"]["val_accuracy"]["sd"] == pytest.approx(0.002)
    assert summary["champion_margin_val_accuracy"] == pytest.approx(0.004)
    difference = summary["ablations"]["no-augment"]["test_accuracy"]
    assert difference["mean_difference"] == pytest.approx(-0.01) and difference["n"] == 3
    assert difference["high"] < 0  # every seed lost 0.9-1.1 points: the interval excludes zero
    assert (tmp_path / "experiments_figures.png").stat().st_size > 0
    reference = summary["torch_reference"]
    assert (reference["torch"], reference["seeds"]) == ("2.13.0+cpu", 2)
    assert reference["test_accuracy"]["mean"] == pytest.approx(0.9045)
    # Paired with the default at seeds 1 and 2, PyTorch reads 0.2 and 0.5 points more of the test set.
    assert reference["paired_difference"]["test_accuracy"]["mean_difference"] == pytest.approx(0.0035)
    assert reference["paired_difference"]["test_accuracy"]["n"] == 2


def test_seed_mistakes_reads_each_runs_misread_images_of_one_config(tmp_path):
    path = tmp_path / "results.csv"
    assert study_results.seed_mistakes(path) == []  # no study yet
    for config, seed, wrong in [("default", 1, "9 3 5"), ("no-augment", 1, "2"), ("default", 2, "")]:
        study_results.append_row(
            path,
            {
                **{column: "" for column in study_results.COLUMNS},
                "config": config,
                "seed": seed,
                "test_wrong": wrong,
            },
        )
    runs = study_results.seed_mistakes(path)
    assert [run.tolist() for run in runs] == [[3, 5, 9], []]
    assert [run.tolist() for run in study_results.seed_mistakes(path, "no-augment")] == [[2]]
    assert study_results.seed_mistakes(path, "width-256") == []
    path.write_text(path.read_text().replace("9 3 5", "9 x 5"))
    with pytest.raises(ValueError, match="unreadable test_wrong"):
        study_results.seed_mistakes(path)


def test_study_figure_summarises_one_config_of_the_results_csv(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("config,seed,val_accuracy\ndefault,1,0.990\nother,1,0.5\ndefault,2,0.992\n")
    figure = study_results.study_figure(path, "val_accuracy")
    assert (
        figure["n"] == 2
        and figure["mean"] == pytest.approx(0.991)
        and figure["sd"] == pytest.approx(0.0014142, rel=1e-4)
    )
    assert study_results.study_figure(path, "val_accuracy", config="other") == {
        "mean": 0.5,
        "sd": None,
        "n": 1,
    }
    assert study_results.study_figure(path, "val_accuracy", config="absent") == {}
    assert study_results.study_figure(tmp_path / "missing.csv", "val_accuracy") == {}


def test_read_study_gives_the_margins_and_noise_floor_of_one_config(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        "config,seed,val_accuracy,stroke_accuracy,ece\n"
        "default,1,0.990,0.995,0.002\nother,1,0.5,0.5,0.1\ndefault,2,0.992,0.998,0.003\ndefault,3,0.991,0.994,0.002\n"
    )
    study = study_results.read_study(path)
    assert (study.seeds, study.config, study.source) == (3, "default", str(path))
    assert study.champion_margin == pytest.approx(
        2 * 0.001
    )  # the three validation figures have an sd of 0.001
    assert study.stroke_margin == pytest.approx(2 * np.std([0.995, 0.998, 0.994], ddof=1))
    assert study.figure("val_accuracy") == study_results.study_figure(path, "val_accuracy")
    # What the checks gate on: the mean minus three times the larger of sd and the binomial error.
    assert study.noise_floor("val_accuracy", 5000) == pytest.approx(0.991 - 3 * np.sqrt(0.991 * 0.009 / 5000))
    assert study.noise_floor("val_accuracy", 10) < study.noise_floor("val_accuracy", 5000)
    with pytest.raises(ValueError, match="at least 2"):
        study_results.read_study(path, "other").champion_margin  # noqa: B018 (reading it raises)
    with pytest.raises(ValueError, match="no column 'doodle_accuracy'"):
        study.figure("doodle_accuracy")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no seed study results"),
        ("", "no config column"),
        ("config,seed,val_accuracy\nother,1,0.99\n", "no run of the configuration 'default'"),
        ("config,seed,val_accuracy\ndefault,1,0.99\ndefault,2,n/a\n", "val_accuracy is not a number"),
        ("config,seed,val_accuracy\ndefault,1,0.99\ndefault,2,\n", "val_accuracy is not a number"),
        ("config,seed,val_accuracy\ndefault,1,0.99\ndefault,2,99.1\n", "not accuracies"),
        ("config,seed,stroke_accuracy\ndefault,1,nan\ndefault,2,0.99\n", "not accuracies"),
    ],
)
def test_a_missing_or_corrupt_results_csv_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "results.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        study_results.read_study(path)
    assert str(path) in str(raised.value)


def test_the_evaluation_benchmark_keeps_the_stream_the_study_and_the_reports_were_measured_on():
    """04_evaluate, the seed study and the promote stage all draw the benchmark through
    `strokes.evaluation_benchmark`; its writers come from the stream [base seed, 11], the one every
    committed pen-stroke figure was measured on, so figures stay comparable."""
    built = strokes.evaluation_benchmark(20261123, 1, 2)
    stream = int(np.random.SeedSequence([20261123, 11]).generate_state(1)[0])
    assert np.array_equal(built.images, strokes.benchmark(stream, 1, 2).images)
    assert built.images.shape == (10 * len(strokes.BENCHMARK_PEN_WIDTHS), 28, 28)
    assert not np.array_equal(built.images, strokes.evaluation_benchmark(20261124, 1, 2).images)
