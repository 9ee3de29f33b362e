"""scripts/pipeline_scratch.py: the tests' pipeline runs in a copy and rewrites no tracked file."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import pipeline_scratch  # noqa: E402
import run_tests  # noqa: E402

DVC_YAML = """\
stages:
  prepare:
    cmd: make-data
    outs:
      - data/prepared
      - reports/notebooks/01.ipynb:
          cache: false
    metrics:
      - reports/metrics/prepare.json:
          cache: false
  train:
    cmd: train
    outs:
      - models
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    write_files(
        root,
        {
            ".gitignore": "/data/\n/models/\n",
            ".dvc/config": "[core]\n    analytics = false\n",
            "dvc.yaml": DVC_YAML,
            "dvc.lock": "committed lock\n",
            "params.yaml": "seed: 1\n",
            "doodle/model/mlp.py": "weights = 1\n",
            "reports/metrics/prepare.json": '{"images": 70000}\n',
            "reports/notebooks/01.ipynb": "{}\n",
            "reports/experiments/results.csv": "config,seed\ndefault,1\n",
            "data/prepared/train.parquet": "ignored by git\n",
        },
    )
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    return root


def test_sync_copies_the_project_but_not_what_the_copy_owns(project, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (project / "notes.md").write_text("untracked but not ignored: part of the working tree\n")
    assert pipeline_scratch.sync(project, scratch) == 7
    copied = sorted(str(path.relative_to(scratch)) for path in scratch.rglob("*") if path.is_file())
    # Stage outputs (committed or not) and the lock stay the copy's own; an input under reports/
    # is copied like any other file.
    assert copied == [
        ".dvc/config",
        ".dvc/config.local",
        ".gitignore",
        pipeline_scratch.MANIFEST,
        "doodle/model/mlp.py",
        "dvc.yaml",
        "notes.md",
        "params.yaml",
        "reports/experiments/results.csv",
    ]
    assert "no_scm = True" in (scratch / ".dvc" / "config.local").read_text()


def test_sync_keeps_the_copys_outputs_and_follows_changes(project, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pipeline_scratch.sync(project, scratch)
    # The copy's own run wrote its lock, reports and cached outputs.
    for name in ("dvc.lock", "reports/metrics/prepare.json", "models/mlp.npz"):
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / name).write_text("from the scratch run\n")
    assert pipeline_scratch.sync(project, scratch) == 0  # nothing changed: nothing to rerun
    (project / "doodle" / "model" / "mlp.py").write_text("weights = 2\n")
    (project / "params.yaml").unlink()
    assert pipeline_scratch.sync(project, scratch) == 2
    assert (scratch / "doodle" / "model" / "mlp.py").read_text() == "weights = 2\n"
    assert not (scratch / "params.yaml").exists()
    for name in ("dvc.lock", "reports/metrics/prepare.json", "models/mlp.npz"):
        assert (scratch / name).read_text() == "from the scratch run\n"


def test_only_cached_outputs_are_copied_back(project, tmp_path):
    assert pipeline_scratch.cached_outputs(project) == ["data/prepared", "models"]
    scratch = tmp_path / "scratch"
    for name in ("data/prepared/train.parquet", "models/mlp.npz"):
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / name).write_text("fresh\n")
    pipeline_scratch.copy_back(scratch, project, ["data/prepared", "models"])
    assert (project / "data" / "prepared" / "train.parquet").read_text() == "fresh\n"
    assert (project / "models" / "mlp.npz").read_text() == "fresh\n"
    assert (project / "dvc.lock").read_text() == "committed lock\n"
    assert not list(project.rglob("*.incoming"))


def test_a_missing_output_is_an_error_not_a_silent_skip(project, tmp_path):
    with pytest.raises(SystemExit, match="models: missing"):
        pipeline_scratch.copy_back(tmp_path, project, ["models"])


def test_current_run_is_the_copy_only_while_it_ran_the_projects_files(tmp_path):
    """What the notebook checks compare: the copy's outputs count only when its pipeline ran on
    exactly the project's files (a real DVC run of a one-stage pipeline)."""
    root = tmp_path / "project"
    write_files(
        root,
        {
            ".gitignore": "/out/\n",
            ".dvc/config": "[core]\n    analytics = false\n",
            "dvc.yaml": "stages:\n  copy:\n    cmd: mkdir -p out && cp source.txt out/copy.txt\n"
            "    deps:\n      - source.txt\n    outs:\n      - out\n",
            "source.txt": "one\n",
        },
    )
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert pipeline_scratch.current_run(root, scratch) is None  # nothing has run anywhere
    pipeline_scratch.sync(root, scratch)
    assert pipeline_scratch.current_run(root, scratch) is None  # copied, not run
    pipeline_scratch.dvc("repro", "--quiet", cwd=scratch)
    assert pipeline_scratch.current_run(root, scratch) == scratch
    (root / "source.txt").write_text("two\n")
    assert pipeline_scratch.current_run(root, scratch) is None  # the project moved on
    pipeline_scratch.sync(root, scratch)
    assert pipeline_scratch.current_run(root, scratch) is None  # the copy's outputs are stale


def test_waiting_tests_are_told_what_reached_the_working_tree_and_why_the_rest_never_will(tmp_path):
    progress_file = tmp_path / "progress.json"
    assert pipeline_scratch.wait_for_outputs(["models"], progress_file=None) is None  # nothing beside
    progress = pipeline_scratch.Progress(progress_file)
    progress.ready(["data/prepared"])
    assert pipeline_scratch.wait_for_outputs(["data/prepared"], progress_file) is None

    def finish_later() -> None:
        time.sleep(0.3)
        progress.ready(["models"])
        progress.finish()

    writer = threading.Thread(target=finish_later)
    writer.start()
    assert pipeline_scratch.wait_for_outputs(None, progress_file, poll_seconds=0.05) is None
    writer.join()
    assert pipeline_scratch.read_progress(progress_file)["ready"] == ["data/prepared", "models"]
    assert "without copying data/pendigits" in pipeline_scratch.wait_for_outputs(
        ["data/pendigits"], progress_file
    )
    pipeline_scratch.Progress(progress_file, resume=True).finish("`dvc repro` exited with status 1")
    assert pipeline_scratch.wait_for_outputs(None, progress_file) == (
        "the pipeline's run failed: `dvc repro` exited with status 1"
    )


def test_the_data_stages_reach_the_working_tree_before_the_rest_runs(tmp_path):
    """A real DVC run of a project whose data stage works and whose training fails: the data's
    outputs are copied back and recorded as ready, and the failure is recorded, not hidden."""
    root = tmp_path / "project"
    write_files(
        root,
        {
            ".gitignore": "/data/\n/models/\n",
            ".dvc/config": "[core]\n    analytics = false\n",
            "dvc.yaml": "stages:\n"
            "  prepare:\n    cmd: mkdir -p data/prepared && cp source.txt data/prepared/\n"
            "    deps:\n      - source.txt\n    outs:\n      - data/prepared\n"
            "  train:\n    cmd: test -e data/prepared/source.txt && exit 3\n"
            "    deps:\n      - data/prepared\n    outs:\n      - models\n",
            "source.txt": "one\n",
        },
    )
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    progress = pipeline_scratch.Progress(tmp_path / "progress.json")
    with pytest.raises(subprocess.CalledProcessError):
        pipeline_scratch.run(root, tmp_path / "scratch", False, progress)
    assert (root / "data" / "prepared" / "source.txt").read_text() == "one\n"
    assert pipeline_scratch.read_progress(progress.path)["ready"] == ["data/prepared"]
    assert not (root / "models").exists()


def test_a_pipeline_killed_before_it_finished_releases_the_waiting_tests(tmp_path):
    progress_file = tmp_path / "progress.json"
    pipeline_scratch.Progress(progress_file).ready(["data/prepared"])
    pipeline = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pipeline.kill()
    run_tests.watch(pipeline, progress_file)
    assert pipeline_scratch.wait_for_outputs(["data/prepared"], progress_file) is None
    assert "ended with status -9 before it had finished" in pipeline_scratch.wait_for_outputs(
        None, progress_file
    )
