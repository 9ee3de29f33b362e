"""Rerun every executed pipeline notebook in reports/notebooks/ with nbval and compare the
cells tagged `nbval-check-output` (`--nbval-lax`: other cells must only run without error).

nbval starts the kernel in the notebook's own folder (nbval/plugin.py: `RunningKernel(...,
cwd=str(self.fspath.dirname))`), while our notebooks use paths relative to the repository
root. So each rerun happens in a scratch copy of the repository with the notebook placed at
its root: the kernel's cwd is then the copy's root, the copy's `doodle` package is imported
first (so doodle.paths.ROOT points into the copy too), MLflow and every other store point
into the copy, and nothing in the real data/, models/, reports/ or mlflow.db is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED_DIR = ROOT / "reports" / "notebooks"
NOTEBOOKS = sorted(EXECUTED_DIR.glob("*.ipynb"))

# Left out of the scratch copy: version control, environments, caches and the real MLflow
# store (a rerun gets a fresh one). Everything else, data/ and models/ included, is copied.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".dvc",
    ".cache",
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
    "spark-warehouse",
    "metastore_db",
    "history.sqlite*",
)

# Written into the run's folder with both roots filled in: nbval replaces every match before
# comparing a checked cell's stored output with the new one.
SANITIZERS = r"""
[repository root, real or scratch]
regex: {roots}
replace: <ROOT>

[durations]
regex: \b\d+(\.\d+)?\s?(ms|s|sec|seconds|min|minutes)\b
replace: <DURATION>

[clock times]
regex: \b\d\d:\d\d:\d\d(\.\d+)?\b
replace: <TIME>

[object addresses]
regex: at 0x[0-9a-fA-F]+
replace: at <ADDRESS>
"""


def scratch_copy(destination: Path) -> Path:
    """A copy of the repository without version control, environments or the MLflow store."""
    shutil.copytree(ROOT, destination, ignore=NOT_COPIED, symlinks=False)
    return destination


def isolated_environment(scratch: Path) -> dict[str, str]:
    """The environment of the rerun: every store the project knows of points into `scratch`."""
    environment = dict(os.environ)
    environment.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(scratch), os.environ.get("PYTHONPATH")])),
        MLFLOW_TRACKING_URI=f"sqlite:///{scratch / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        DOODLE_MODEL_PATH=str(scratch / "models"),
        DOODLE_FEEDBACK_DB=str(scratch / "data" / "feedback.sqlite"),
        IPYTHONDIR=str(scratch / ".config" / "ipython"),
        JUPYTER_DATA_DIR=str(scratch / ".jupyter-data"),
        MPLCONFIGDIR=str(scratch / ".cache" / "matplotlib"),
        SPARK_CONF_DIR=str(scratch / "conf" / "spark"),
        PYTHONHASHSEED="0",
        DVC_NO_ANALYTICS="1",
    )
    environment.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return environment


def nbval_command(notebook: Path, sanitize_file: Path, scratch: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-sanitize-with={sanitize_file}",
        "--nbval-cell-timeout=1200",
        f"--rootdir={scratch}",
        "-o",
        "addopts=",
        "-o",
        "timeout=3600",
        "-p",
        "no:cacheprovider",
        "-q",
        str(notebook),
    ]


def run_nbval(executed: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Rerun `executed` under nbval --nbval-lax in a scratch copy of the repository made
    under `workdir`, with the copy's root as the kernel's working directory."""
    scratch = scratch_copy(workdir / "repo")
    # nbval runs the kernel in the notebook's folder: put the notebook at the copy's root.
    notebook = scratch / executed.name
    shutil.copy2(executed, notebook)
    roots = "|".join(re.escape(root) for root in sorted({str(scratch), str(scratch.resolve()), str(ROOT)}, key=len, reverse=True))
    sanitize_file = workdir / "sanitize.cfg"
    sanitize_file.write_text(SANITIZERS.format(roots=roots))
    return subprocess.run(
        nbval_command(notebook, sanitize_file, scratch),
        cwd=scratch,
        env=isolated_environment(scratch),
        capture_output=True,
        text=True,
        timeout=3600,
    )


def report_of(completed: subprocess.CompletedProcess) -> str:
    return f"{completed.stdout[-8000:]}\n{completed.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a rerun of the training notebook takes minutes
@pytest.mark.parametrize("executed", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_executed_notebook_reproduces(executed: Path, tmp_path: Path):
    # Without a checked cell the rerun would only show that the cells still run.
    assert '"nbval-check-output"' in executed.read_text(), f"{executed.name}: no cell tagged nbval-check-output"
    completed = run_nbval(executed, tmp_path)
    assert completed.returncode == 0, report_of(completed)
    assert " passed" in completed.stdout, report_of(completed)


def probe_notebook(path: Path, stored_answer: str) -> Path:
    """A two-cell notebook as papermill would leave it: its checked cell prints the kernel's
    working directory (stored as the real root), whether it sees the repository's files,
    and an answer whose stored value the caller chooses."""
    import nbformat

    setup = nbformat.v4.new_code_cell("from pathlib import Path\nimport doodle.paths")
    check = nbformat.v4.new_code_cell(
        "print(Path.cwd())\nprint(Path('params.yaml').is_file(), doodle.paths.ROOT == Path.cwd())\nprint(6 * 7)"
    )
    check.metadata.update(tags=["nbval-check-output"], keep_output=True)
    setup.execution_count, check.execution_count = 1, 2
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{ROOT}\nTrue True\n{stored_answer}\n")]
    notebook = nbformat.v4.new_notebook(cells=[setup, check])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_harness_runs_at_the_root_and_compares_checked_cells(tmp_path):
    good = run_nbval(probe_notebook(tmp_path / "probe.ipynb", "42"), tmp_path / "good")
    assert good.returncode == 0, report_of(good)
    planted = run_nbval(probe_notebook(tmp_path / "probe.ipynb", "41"), tmp_path / "planted")
    assert planted.returncode != 0, report_of(planted)
    assert "1 failed" in planted.stdout, report_of(planted)
