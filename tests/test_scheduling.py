"""`make test` hands out tests with pytest-xdist's ``--dist loadgroup``: the tests of one group (a
module with slow tests or a module-scoped server, tests/conftest.py) share one worker, so that
their setup is made once. xdist 3.8 names the group in the test's id, which pytest 9.2 no longer
lets it change: there every test went to any worker, and each worker started its own copy of
every module's servers, Spark cluster and database (hence pytest < 9.2 in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED_MODULE = """
import os
import pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("n", range(6))
def test_grouped(n):
    with open(os.environ["WORKERS_FILE"], "a") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("n", range(6))
def test_free(n):
    pass
"""


def test_a_group_runs_on_one_worker(tmp_path: Path):
    (tmp_path / "test_grouped.py").write_text(GROUPED_MODULE)
    workers_file = tmp_path / "workers.txt"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist.plugin",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_grouped.py"),
        ],
        cwd=tmp_path,
        # Only xdist's plugin: the others installed (schemathesis, hypothesis, nbval) cost seconds to load.
        env={**os.environ, "WORKERS_FILE": str(workers_file), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    workers = workers_file.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers
