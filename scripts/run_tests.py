"""`make test`: the pipeline's scratch run and pytest at once, on the same cores.

Most tests read nothing the pipeline makes, and they wait on servers, browsers and subprocesses
much of the time, so they run while `scripts/pipeline_scratch.py` runs the pipeline beside them.
The tests that read its outputs are marked `pipeline` (tests/conftest.py schedules them last and
makes each wait for the outputs it names, or fail if the run fails); no test skips for want of
them. The pipeline's output goes to a log file, printed whole after pytest's own; the exit status
is pytest's, or the pipeline's when pytest passed and the pipeline failed.

    python scripts/run_tests.py [pytest arguments...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pipeline_scratch

ROOT = Path(__file__).resolve().parent.parent
LOG_FILE = ROOT / ".cache" / "pipeline-scratch.log"
PROGRESS_FILE = ROOT / ".cache" / "pipeline-progress.json"
# The pipeline is the longest chain (the tests marked `pipeline` wait for it, and training takes
# a core for minutes), so pytest and what it starts run at a lower priority and use what the
# pipeline leaves of the cores; once it is done, the niceness no longer matters.
TESTS_NICENESS = 5
# One BLAS thread in every process of the run, unless the caller sets another count. The cores are
# never idle here, and OpenBLAS's second thread spins after every matrix product waiting for the
# next: the evaluate stage's whole-number benchmark (about 2,000 products of a few rows) took 20 s
# of CPU with two threads and 12 s with one on a quiet machine, with the same answers. Training
# and the API pin one thread themselves (doodle.model.train, serving.config).
BLAS_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1"}


def start_pipeline() -> subprocess.Popen:
    """scripts/pipeline_scratch.py in the background (its own process group, output to LOG_FILE)."""
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    PROGRESS_FILE.unlink(missing_ok=True)
    with LOG_FILE.open("w") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "pipeline_scratch.py"), "--progress", str(PROGRESS_FILE)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def watch(pipeline: subprocess.Popen, progress_file: Path = PROGRESS_FILE) -> None:
    """Record the pipeline's end in `progress_file` if it ended without doing so itself
    (killed, say), so that no test waits for it forever."""
    status = pipeline.wait()
    progress = pipeline_scratch.Progress(progress_file, resume=True)
    if not progress.state["finished"]:
        progress.finish(f"scripts/pipeline_scratch.py ended with status {status} before it had finished")


def main(pytest_args: list[str]) -> int:
    for name, value in BLAS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # the pipeline and pytest inherit it
    pipeline = start_pipeline()
    watcher = threading.Thread(target=watch, args=(pipeline,), daemon=True)
    watcher.start()
    environment = dict(os.environ, **{pipeline_scratch.PROGRESS_ENV: str(PROGRESS_FILE)})
    # Stopped (Ctrl-C, or SIGTERM from CI), the pipeline and everything it started stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        tests = subprocess.run(
            [str(Path(sys.executable).with_name("pytest")), *pytest_args],
            env=environment,
            preexec_fn=lambda: os.nice(TESTS_NICENESS),
        )
        watcher.join()
    finally:
        if pipeline.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pipeline.pid, signal.SIGTERM)
    state = pipeline_scratch.read_progress(PROGRESS_FILE) or {}
    print(f"\n{'=' * 24} the pipeline's scratch run ({LOG_FILE.relative_to(ROOT)}) {'=' * 24}", flush=True)
    print(LOG_FILE.read_text(errors="replace").rstrip(), flush=True)
    outcome = f"failed: {state.get('error')}" if state.get("error") or pipeline.returncode else "passed"
    print(
        f"The pipeline's run {outcome} ({state.get('seconds')} s, beside the tests);"
        f" pytest exited with status {tests.returncode}.",
        flush=True,
    )
    return tests.returncode or (1 if state.get("error") or pipeline.returncode else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
