"""DVC's own views of the results fit a terminal of 200 columns in a clone after the pipeline:
`dvc metrics show` (the metrics dvc.yaml declares: the headline figures, not the breakdowns) and
`make experiments` (`dvc exp show` with the headline metrics and only what differs between experiments).

The clone is a fresh git repository holding the project's DVC files and the metrics files of the run
that is current for the working tree (`pipeline_scratch.current_run`), so the tables are the ones a
reader would get after `make run`. `dvc exp show` is measured at its natural width (COLUMNS large), not
squeezed to the terminal, which would hide columns behind "…".
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import pipeline_scratch  # noqa: E402

from support.pipeline import outputs_missing  # noqa: E402

DVC = Path(sys.executable).parent / "dvc"
TERMINAL_COLUMNS = 200


def declared_metrics(dvc_yaml: Path) -> list[str]:
    """The metrics files dvc.yaml declares, over every stage."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in stages.values()
        for entry in stage.get("metrics", [])
    ]


def experiments_arguments(makefile: Path = ROOT / "Makefile") -> list[str]:
    """The arguments `make experiments` gives dvc (EXPERIMENTS_SHOW in the Makefile)."""
    found = re.search(r"^EXPERIMENTS_SHOW := (.*)$", makefile.read_text(), re.MULTILINE)
    assert found, "no EXPERIMENTS_SHOW in the Makefile"
    return shlex.split(found.group(1).replace("$$", "$"))


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    run = pipeline_scratch.current_run(ROOT)
    if run is None:
        outputs_missing("no pipeline run is current for the working tree: run `make test-pipeline` first")
    folder = tmp_path_factory.mktemp("clone")
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, folder / name)
    (folder / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", folder / ".dvc" / "config")
    shutil.copy(run / "dvc.lock", folder / "dvc.lock")
    (folder / "reports" / "metrics").mkdir(parents=True)
    for path in (run / "reports" / "metrics").glob("*.json"):
        shutil.copy(path, folder / "reports" / "metrics" / path.name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pipeline results"], cwd=folder, check=True)
    return folder


def dvc_output(folder: Path, *args: str) -> list[str]:
    env = {**os.environ, "COLUMNS": "4000", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([str(DVC), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.pipeline
def test_metrics_show_fits_a_terminal_and_shows_only_the_headline_files(clone):
    lines = dvc_output(clone, "metrics", "show")
    widest = max(lines, key=len)
    assert len(widest) <= TERMINAL_COLUMNS, f"{len(widest)} characters: {widest}"
    shown = {line.split()[0] for line in lines[1:] if line.strip()}
    assert shown == set(declared_metrics(clone / "dvc.yaml")), shown
    assert "test_accuracy" in lines[0] and "train_seconds" in lines[0]


@pytest.mark.pipeline
def test_make_experiments_fits_a_terminal_and_keeps_the_headline_metrics(clone):
    lines = dvc_output(clone, *experiments_arguments())
    widest = max(lines, key=len)
    assert len(widest) <= TERMINAL_COLUMNS, f"{len(widest)} characters: {widest}"
    header = next(line for line in lines if "Experiment" in line)
    for name in ("test_accuracy", "ece", "stroke_accuracy", "epochs_run", "train_seconds"):
        assert name in header, header
    assert "…" not in "\n".join(lines)


def test_no_breakdown_is_declared_a_metric():
    # Breakdowns and study tables are stage outputs beside the headline files, never DVC metrics.
    declared = declared_metrics(ROOT / "dvc.yaml")
    assert declared, "dvc.yaml declares no metrics"
    for name in (
        "evaluate_details.json",
        "real_writers_details.json",
        "numbers.json",
        "experiments.json",
        "promotion.json",
        "prepare.json",
        "pendigits.json",
        "feedback.json",
    ):
        assert not any(path.endswith(name) for path in declared), name
