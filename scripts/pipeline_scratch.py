"""Give the tests fresh pipeline outputs without rewriting a single tracked file.

`make test` calls this before pytest. Training on another CPU or BLAS build gives slightly
different weights from the same seed, so running `dvc repro` in the working tree would rewrite
the committed executed notebooks, metrics, figures and `dvc.lock`, and leave a clone dirty.
Instead:

1. If `dvc status` says the working tree's pipeline is up to date (say, after `make run`), its
   outputs are used as they are and nothing runs.
2. Otherwise the project's files (what git tracks or would track, minus every stage output
   and `dvc.lock`) are copied into a scratch copy, `.cache/pipeline-scratch/` (ignored by git), and
   `dvc repro` runs there, with every store (MLflow, models, feedback) pointing into the copy.
   The copy keeps its own lock and reports, so a second `make test` with no change reruns nothing.
3. The outputs that git ignores (DVC-cached `outs` such as `data/prepared` and `models`) are
   copied back into the working tree, where the tests read them. Tracked files stay untouched:
   only `make run` / `dvc repro` refresh `reports/` and `dvc.lock`.

The data stages (FIRST_STAGES) run first and their outputs are copied back at once, so that the
tests that read only the prepared data need not wait for training. With `--progress FILE` the
script records in FILE which outputs have reached the working tree and whether it has finished:
`make test` (scripts/run_tests.py) runs this script beside pytest, and the tests that read the
outputs wait for them (`wait_for_outputs`).

    python scripts/pipeline_scratch.py [--scratch DIR] [--force] [--progress FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCRATCH = ROOT / ".cache" / "pipeline-scratch"
# Besides every stage's outputs, the scratch copy owns its lock: never overwritten from the tree.
LOCK_FILE = "dvc.lock"
MANIFEST = ".synced-files"
# The stages that make the data (MNIST and the pen-digit trajectories, prepared): done in about a
# minute, and all that the feedback loop's and the Spark cluster's tests read.
FIRST_STAGES = ("prepare", "pendigits")
# Set by scripts/run_tests.py for pytest: the progress file of the run going on beside the tests.
PROGRESS_ENV = "DOODLE_PIPELINE_PROGRESS"


def dvc(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("dvc")), *args]
    return subprocess.run(command, cwd=cwd, env=env, check=check)


def up_to_date(root: Path) -> bool:
    """True when `dvc status` finds every stage of `root` current. A stage marked
    `always_changed` (the feedback snapshot) is always listed; it counts as current when that
    is all DVC says about it."""
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        return False
    try:
        status = json.loads(listed.stdout or "{}")
    except json.JSONDecodeError:
        return False
    return all(changes == ["always changed"] for changes in status.values())


def _entries(stage: dict, section: str) -> list[tuple[str, dict]]:
    """(path, options) of each entry of a stage's ``outs``, ``metrics`` or ``plots`` list."""
    return [
        (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        for entry in stage.get(section, [])
    ]


def stage_outputs(root: Path) -> list[str]:
    """Every path a stage of `root`'s dvc.yaml writes (outs, metrics, plots), cached or not."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return sorted(
        {
            name
            for stage in stages.values()
            for section in ("outs", "metrics", "plots")
            for name, _ in _entries(stage, section)
        }
    )


def project_files(root: Path) -> list[str]:
    """Paths git tracks or would track (not ignored), relative to `root`, minus what the scratch
    copy owns: the lock and every stage output (committed reports included). Inputs that live
    under reports/, such as the seed study's results, are copied like any other file."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    owned = stage_outputs(root)

    def is_owned(path: str) -> bool:
        return path == LOCK_FILE or any(
            path == out or path.startswith(out.rstrip("/") + "/") for out in owned
        )

    return sorted(path for path in listed if path and (root / path).is_file() and not is_owned(path))


def stale_files(root: Path, scratch: Path, files: list[str] | None = None) -> list[str]:
    """Project files of `root` (default: all of them) missing from `scratch` or different there."""
    return [
        path
        for path in (project_files(root) if files is None else files)
        if not (scratch / path).is_file() or (scratch / path).read_bytes() != (root / path).read_bytes()
    ]


def sync(root: Path, scratch: Path) -> int:
    """Mirror the project's files into `scratch`; return how many changed. Files synced last
    time but gone from the project now are removed from the copy too."""
    files = project_files(root)
    manifest = scratch / MANIFEST
    previous = set(manifest.read_text().splitlines()) if manifest.is_file() else set()
    changed = 0
    for path in stale_files(root, scratch, files):
        target = scratch / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, target)
        changed += 1
    for gone in previous - set(files):
        (scratch / gone).unlink(missing_ok=True)
        changed += 1
    manifest.write_text("\n".join(files) + "\n")
    # No git in the copy: DVC is told so in the copy's local config (ignored by git anyway).
    (scratch / ".dvc" / "config.local").write_text("[core]\n    no_scm = True\n")
    return changed


def current_run(root: Path = ROOT, scratch: Path = DEFAULT_SCRATCH) -> Path | None:
    """The folder whose stage outputs (executed notebooks, metrics) are current for `root`'s
    files: `root` itself when its pipeline is up to date, else `scratch` when it holds exactly
    `root`'s project files and its pipeline is up to date there (what a run of this script
    leaves); None when neither is (run this script first)."""
    if up_to_date(root):
        return root
    manifest = scratch / MANIFEST
    files = project_files(root)
    if (
        not manifest.is_file()
        or manifest.read_text().splitlines() != files
        or stale_files(root, scratch, files)
    ):
        return None
    return scratch if up_to_date(scratch) else None


def scratch_environment(scratch: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for running the project from a copy of it at `scratch` (this script's
    pipeline run, the notebook checks, the feedback loop's test): `base` (default `os.environ`)
    with the copy's `doodle` imported first, this interpreter's tools first on PATH, and every
    store the project writes (MLflow, models, feedback, Spark, IPython, Jupyter and matplotlib
    settings) inside the copy."""
    environment = dict(os.environ if base is None else base)
    environment.update(
        PATH=os.pathsep.join(filter(None, [str(Path(sys.executable).parent), environment.get("PATH")])),
        PYTHONPATH=os.pathsep.join(filter(None, [str(scratch), environment.get("PYTHONPATH")])),
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


def cached_outputs(scratch: Path, stage_names: Sequence[str] | None = None) -> list[str]:
    """The `outs` of every stage (of `stage_names` when given) that DVC caches or persists (git
    ignores them): what the tests read."""
    stages = yaml.safe_load((scratch / "dvc.yaml").read_text())["stages"]
    found = []
    for name, stage in stages.items():
        if stage_names is not None and name not in stage_names:
            continue
        for name, options in _entries(stage, "outs"):
            # A persistent output that DVC does not cache (models/, what is served) is the
            # tests' input all the same.
            if options.get("cache", True) or options.get("persist", False):
                found.append(name)
    return found


def copy_back(scratch: Path, root: Path, outputs: list[str]) -> None:
    """Replace each output in `root` with the scratch copy's, through a temporary name."""
    for name in outputs:
        source, target = scratch / name, root / name
        if not source.exists():
            raise SystemExit(f"{name}: missing in the scratch run's outputs ({scratch})")
        staging = target.with_name(f".{target.name}.incoming")
        shutil.rmtree(staging, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, staging)
        else:
            shutil.copy2(source, staging)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        staging.rename(target)


class Progress:
    """What has reached the working tree so far, kept in a JSON file (none: nothing is kept):
    ``ready``, the outputs copied back; ``finished``, whether the run is over; ``error``, why it
    failed, if it did; ``seconds``, how long it took. Each write replaces the file whole, so a
    reader never sees half of one. `resume` carries on from what the file holds."""

    def __init__(self, path: Path | None, resume: bool = False) -> None:
        self.path = path
        self.started = time.monotonic()
        self.state: dict = {"ready": [], "finished": False, "error": None, "seconds": None}
        if resume and path is not None:
            self.state.update(read_progress(path) or {})
        else:
            self._write()

    def ready(self, outputs: Sequence[str]) -> None:
        self.state["ready"] = sorted({*self.state["ready"], *outputs})
        self._write()

    def finish(self, error: str | None = None) -> None:
        self.state.update(finished=True, error=error, seconds=round(time.monotonic() - self.started))
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.incoming")
        staging.write_text(json.dumps(self.state) + "\n")
        staging.replace(self.path)


def read_progress(path: Path) -> dict | None:
    """The state a `Progress` wrote to `path`, or None while there is none."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_for_outputs(
    outputs: Sequence[str] | None = None, progress_file: Path | None = None, poll_seconds: float = 0.5
) -> str | None:
    """Wait until the run recorded in `progress_file` (default: $DOODLE_PIPELINE_PROGRESS) has
    copied `outputs` (default: all of them: until it has finished) into the working tree. Returns
    None when they are there, or why they never will be (the run failed or stopped first).
    Without a progress file nothing runs beside the caller and it returns None at once."""
    if progress_file is None:
        if not os.environ.get(PROGRESS_ENV):
            return None
        progress_file = Path(os.environ[PROGRESS_ENV])
    while True:
        state = read_progress(progress_file) or {"ready": [], "finished": False, "error": None}
        if outputs is not None and set(outputs) <= set(state["ready"]):
            return None
        if state["finished"]:
            if state["error"]:
                return f"the pipeline's run failed: {state['error']}"
            if outputs is None:
                return None
            missing = sorted(set(outputs) - set(state["ready"]))
            return f"the pipeline's run finished without copying {', '.join(missing)} into the working tree"
        time.sleep(poll_seconds)


def run(root: Path, scratch: Path, force: bool, progress: Progress) -> None:
    """Bring `root`'s ignored outputs up to date (see the module's docstring), the data stages'
    first, recording in `progress` what has reached `root`."""
    if not force and up_to_date(root):
        print("Pipeline outputs in the working tree are up to date: the tests use them.")
        progress.ready(cached_outputs(root))
        return
    scratch.mkdir(parents=True, exist_ok=True)
    changed = sync(root, scratch)
    print(
        f"Running the pipeline in {scratch.relative_to(root) if scratch.is_relative_to(root) else scratch}"
        f" ({changed} files updated); tracked files in the working tree stay as committed."
    )
    environment = scratch_environment(scratch)
    stages = yaml.safe_load((scratch / "dvc.yaml").read_text())["stages"]
    first = [name for name in FIRST_STAGES if name in stages]
    copied: list[str] = []
    if first:
        dvc("repro", *first, cwd=scratch, env=environment)
        copied = cached_outputs(scratch, first)
        copy_back(scratch, root, copied)
        progress.ready(copied)
        print(f"Copied {', '.join(copied)} into the working tree for the tests; the other stages follow.")
    dvc("repro", cwd=scratch, env=environment)
    # The data stages' outputs are not copied twice: tests may be reading them by now.
    outputs = [name for name in cached_outputs(scratch) if name not in copied]
    copy_back(scratch, root, outputs)
    progress.ready(outputs)
    print(f"Copied {', '.join(outputs)} into the working tree for the tests.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="folder of the scratch copy")
    parser.add_argument(
        "--force", action="store_true", help="use the scratch copy even if the tree is current"
    )
    parser.add_argument(
        "--progress", type=Path, help="JSON file recording which outputs are in the working tree so far"
    )
    args = parser.parse_args(argv)

    progress = Progress(args.progress)
    try:
        run(ROOT, args.scratch.resolve(), args.force, progress)
    except subprocess.CalledProcessError as error:
        progress.finish(f"`dvc {' '.join(map(str, error.cmd[1:]))}` exited with status {error.returncode}")
        return error.returncode or 1
    except BaseException as error:
        progress.finish(f"{type(error).__name__}: {error}")
        raise
    progress.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
