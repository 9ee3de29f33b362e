"""What a test does when the pipeline's outputs it reads are missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "scripts"))
import pipeline_scratch  # noqa: E402


def outputs_missing(reason: str) -> NoReturn:
    """Skip the test when pytest runs alone before any pipeline run; fail it under `make test`,
    where the pipeline runs beside the tests: there a test that reads its outputs is marked
    `pipeline` and waits for them, so finding them missing means the mark is missing or the run
    did not make them, never that the test may pass without them."""
    import pytest

    if os.environ.get(pipeline_scratch.PROGRESS_ENV):
        pytest.fail(
            f"{reason}; under `make test` the pipeline runs beside the tests: a test that reads its"
            " outputs must be marked `pipeline` to wait for them",
            pytrace=False,
        )
    pytest.skip(reason)
