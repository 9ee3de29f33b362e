"""The checked cells of every pipeline notebook: the run the tests were given must reproduce the
committed executed notebooks in reports/notebooks/, cell by cell.

Every notebook in reports/notebooks/ is a DVC stage's output, and `make test` has just run the
pipeline (scripts/pipeline_scratch.py: in a scratch copy, or nowhere when the working tree's
pipeline is already up to date). So a second execution here would only repeat that run: instead
the cells tagged `nbval-check-output` of the current run's executed notebooks are compared with
the committed ones the way nbval compares them (`--nbval-lax`: streams coalesced, text outputs
compared after the sanitizers below, images and metadata left out). Every other cell has already
had to run without error, since papermill stops a stage at the first error.

Where the outputs come from: the scratch copy, when it holds the working tree's project files and
its pipeline is up to date there (the committed notebooks in the working tree are then the
reference); the working tree itself when its own pipeline is up to date (after `make run`; the
reference is then the last commit's copy).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import coalesce_streams, get_sanitize_patterns, transform_streams_for_comparison

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import pipeline_scratch  # noqa: E402

EXECUTED = "reports/notebooks"
NOTEBOOKS = sorted((ROOT / EXECUTED).glob("*.ipynb"))
CHECK_TAG = "nbval-check-output"

# nbval's sanitizer file format; both runs' roots are filled in. Every match is replaced in the
# stored and the new outputs of a checked cell before they are compared.
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

# What nbval leaves out of a comparison (nbval.plugin.IPyNbFile.skip_compare, without nbdime).
SKIP_COMPARE = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}


def sanitize_patterns(*roots: Path) -> list[tuple[str, str]]:
    """(regex, replacement) pairs of SANITIZERS, the longest root first."""
    names = sorted({str(r) for root in roots for r in (root, root.resolve())}, key=len, reverse=True)
    return get_sanitize_patterns(SANITIZERS.format(roots="|".join(re.escape(name) for name in names)))


def comparable(outputs: list, patterns: list[tuple[str, str]]) -> dict[str, list]:
    """A cell's outputs as nbval compares them: streams coalesced and keyed by stream name, each
    MIME type of the data flattened to its own key, skipped keys dropped, strings sanitized."""

    def sanitize(value):
        if isinstance(value, str):
            for regex, replacement in patterns:
                value = re.sub(regex, replacement, value)
        return value

    flattened: dict[str, list] = defaultdict(list)
    nodes = [nbformat.from_dict(copy.deepcopy(output)) for output in outputs]
    for output in transform_streams_for_comparison(coalesce_streams(nodes)):
        for key, value in output.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP_COMPARE:
                        flattened[mime].append(sanitize(content))
            else:
                flattened[key].append(sanitize(value))
    return dict(flattened)


def checked_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if CHECK_TAG in cell.get("metadata", {}).get("tags", [])]


def differences(reference: dict, fresh: dict, patterns: list[tuple[str, str]]) -> list[str]:
    """One sentence per checked cell of `reference` that `fresh` does not reproduce: missing
    (no checked cell with the same source), without output, or with other outputs."""
    found = []
    by_source = {cell["source"]: cell for cell in checked_cells(fresh)}
    for number, cell in enumerate(checked_cells(reference), start=1):
        source = cell["source"]
        first_line = source.splitlines()[0] if source else ""
        if source not in by_source:
            found.append(
                f"checked cell {number} ({first_line!r}) is not in the new run: the committed notebook "
                "is older than its source; rerun the pipeline and commit reports/notebooks"
            )
            continue
        expected, got = (
            comparable(cell.get("outputs", []), patterns),
            comparable(by_source[source].get("outputs", []), patterns),
        )
        if not expected:
            found.append(f"checked cell {number} ({first_line!r}) has no stored output to compare")
        elif expected != got:
            found.append(
                f"checked cell {number} ({first_line!r}):\n  stored: {json.dumps(expected)}\n  new:    {json.dumps(got)}"
            )
    return found


def committed_copy(path: str) -> nbformat.NotebookNode | None:
    """The last commit's version of a notebook of the working tree (None when git has none)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
    return nbformat.reads(shown.stdout, as_version=4) if shown.returncode == 0 else None


@pytest.fixture(scope="module")
def current_run() -> Path:
    found = pipeline_scratch.current_run(ROOT)
    if found is None:
        stale = pipeline_scratch.stale_files(ROOT, pipeline_scratch.DEFAULT_SCRATCH)
        pytest.fail(
            "no current pipeline run to check: run `make test-pipeline` (or `make test`) first"
            + (f"; the scratch copy lacks {len(stale)} of the project's files: {stale[:5]}" if stale else ""),
            pytrace=False,
        )
    return found


@pytest.mark.pipeline
@pytest.mark.parametrize("executed", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_pipeline_run_reproduces_the_checked_cells(executed: Path, current_run: Path):
    relative = f"{EXECUTED}/{executed.name}"
    reference = nbformat.read(executed, as_version=4)
    if current_run == ROOT:
        reference = committed_copy(relative)
        if reference is None:
            pytest.skip(f"{relative} is not committed: nothing to compare the working tree's run with")
    # Without a checked cell the comparison would prove nothing.
    assert checked_cells(reference), f"{executed.name}: no cell tagged {CHECK_TAG}"
    fresh = nbformat.read(current_run / relative, as_version=4)
    found = differences(reference, fresh, sanitize_patterns(ROOT, current_run))
    assert not found, f"{relative} ({current_run}):\n" + "\n".join(found)


def probe(answer: str, root: Path, took: str = "1.5 s") -> dict:
    """A notebook as papermill leaves it: a plain cell, then a checked cell printing a path under
    `root`, a duration and an answer, and showing a figure."""
    plain = nbformat.v4.new_code_cell(
        "x = 6 * 7", outputs=[nbformat.v4.new_output("stream", name="stdout", text="anything\n")]
    )
    check = nbformat.v4.new_code_cell("print(where, took)\nprint(x)\nfigure")
    check.metadata.update(tags=[CHECK_TAG], keep_output=True)
    check.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"{root}/data took {took}\n"),
        nbformat.v4.new_output("stream", name="stdout", text=f"{answer}\n"),
        nbformat.v4.new_output(
            "display_data", data={"image/png": f"png-of-{took}", "text/plain": "<Figure>"}
        ),
    ]
    return nbformat.v4.new_notebook(cells=[plain, check])


def test_checked_cells_match_across_roots_durations_and_figures(tmp_path):
    patterns = sanitize_patterns(ROOT, tmp_path)
    assert differences(probe("42", ROOT), probe("42", tmp_path, took="2.75 s"), patterns) == []


def test_a_changed_checked_output_fails(tmp_path):
    patterns = sanitize_patterns(ROOT, tmp_path)
    found = differences(probe("42", ROOT), probe("41", tmp_path), patterns)
    assert len(found) == 1 and "42\\n" in found[0] and "41\\n" in found[0], found
    # A checked cell that printed nothing in the new run fails too.
    silent = probe("42", tmp_path)
    silent.cells[1].outputs = []
    assert len(differences(probe("42", ROOT), silent, patterns)) == 1


def test_a_checked_cell_missing_from_the_new_run_or_empty_in_the_reference_fails(tmp_path):
    patterns = sanitize_patterns(ROOT, tmp_path)
    edited = probe("42", tmp_path)
    edited.cells[1].source += "\nprint('more')"
    assert "is not in the new run" in differences(probe("42", ROOT), edited, patterns)[0]
    empty = probe("42", ROOT)
    empty.cells[1].outputs = []
    assert "no stored output" in differences(empty, probe("42", tmp_path), patterns)[0]
