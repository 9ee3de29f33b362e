"""Numbers in prose come from data: no metric figure typed by hand into a notebook's markdown or a
test's comments may differ from what the pipeline measured (reports/metrics/*.json).

What counts as a *metric quote* (in markdown cells of notebooks/*.ipynb, and in comments and
docstrings of tests/**/*.py):

- a percentage with a decimal point between 50 and 100 (an accuracy: "NN.NN %", with or without
  the space);
- a decimal fraction with at least three decimals between 0.5 and 1 (an accuracy or F1 as a
  fraction, "0.NNN");
- a number with at least three decimals within 30 characters after "ECE" (a calibration error).

A quote is current when some named number in reports/metrics/*.json (a key's value, in nested
objects too; not a per-class list's entry) rounds to it at the quote's own precision. Figures computed by a notebook (f-strings, Markdown display) live in code cells and
outputs, never in markdown sources, so they are not quotes. Thresholds belong in code, where a
test or a notebook check evaluates them.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
METRICS_DIR = ROOT / "reports" / "metrics"

PERCENT = re.compile(r"(?<![\w.])(\d{2,3}\.\d+)\s?%")
FRACTION = re.compile(r"(?<![\w.])(0\.\d{3,})(?![\d])")
ECE = re.compile(r"\bECE\b[^\n]{0,30}?(?<![\w.])(\d+\.\d{3,})(?![\d])")


def quotes(text: str) -> list[tuple[str, float, int]]:
    """Metric quotes in ``text`` as (as written, value as a fraction, decimals of that fraction)."""
    found: dict[int, tuple[str, float, int]] = {}
    for match in PERCENT.finditer(text):
        value = float(match.group(1))
        if 50.0 <= value <= 100.0:
            decimals = len(match.group(1).split(".")[1]) + 2
            found[match.start(1)] = (match.group(0), value / 100.0, decimals)
    for match in FRACTION.finditer(text):
        value = float(match.group(1))
        if 0.5 <= value < 1.0:
            found[match.start(1)] = (match.group(1), value, len(match.group(1).split(".")[1]))
    for match in ECE.finditer(text):
        found[match.start(1)] = (match.group(1), float(match.group(1)), len(match.group(1).split(".")[1]))
    return [found[start] for start in sorted(found)]


def metric_values(folder: Path = METRICS_DIR) -> list[float]:
    """Every named number in the metrics JSON files under ``folder``: values of keys, nested dicts
    included, but not the entries of lists (per-class vectors), which no sentence names one by one
    and which would otherwise match stale quotes by chance."""
    values: list[float] = []

    def walk(node) -> None:
        if isinstance(node, bool):
            return
        if isinstance(node, (int, float)):
            values.append(float(node))
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    for path in sorted(folder.glob("*.json")):
        walk(json.loads(path.read_text()))
    return values


def is_current(value: float, decimals: int, measured: list[float]) -> bool:
    """Whether a measured number rounds to ``value`` at ``decimals`` decimals."""
    half = 0.5 * 10.0 ** -decimals + 1e-12
    return any(abs(number - value) <= half for number in measured)


def notebook_markdown(path: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """(place, text) of each markdown cell of a notebook."""
    cells = json.loads(path.read_text())["cells"]
    return [
        (f"{path.relative_to(root)} cell {index}", "".join(cell["source"]))
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
    ]


def python_prose(path: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """(place, text) of each comment and docstring of a Python file."""
    source = path.read_text()
    name = path.relative_to(root)
    found = [
        (f"{name}:{token.start[0]}", token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                found.append((f"{name}:{getattr(node, 'lineno', 1)} (docstring)", docstring))
    return found


def stale_quotes(texts: list[tuple[str, str]], measured: list[float]) -> list[str]:
    return [
        f"{place}: {written!r} matches no figure in reports/metrics"
        for place, text in texts
        for written, value, decimals in quotes(text)
        if not is_current(value, decimals, measured)
    ]


# The checker on examples, so that it can be seen to catch what it should.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reached 99.09 % on test", [0.9909]),
        ("reached 99.1% on test", [0.991]),
        ("without augmentation (0.947)", [0.947]),
        ("ECE 0.0012 after calibration", [0.0012]),
        ("with ECE of about 0.025", [0.025]),
        ("96 % overall, every digit 90 %", []),  # whole-number targets are not quotes
        ("0.91 on the right digit", []),  # two decimals: a setting, not a measurement
        ("learning rate 0.001", []),  # below 0.5 and not after ECE
        ("version 1.20.3, 12.5 %", []),  # not an accuracy
    ],
)
def test_quotes_are_found_as_defined(text, expected):
    assert [value for _, value, _ in quotes(text)] == pytest.approx(expected)


def test_a_quote_is_current_only_at_its_own_precision():
    measured = [0.990912, 0.001234]
    assert is_current(0.9909, 4, measured)
    assert is_current(0.991, 3, measured)
    assert not is_current(0.9912, 4, measured)
    assert is_current(0.0012, 4, measured)
    assert not is_current(0.0025, 4, measured)


def test_stale_quotes_are_reported_with_their_place(tmp_path):
    (tmp_path / "evaluate.json").write_text(
        json.dumps({"test_accuracy": 0.9909, "nested": {"ece": 0.0012}, "per_class": [0.9916, 0.947]})
    )
    measured = metric_values(tmp_path)
    assert sorted(measured) == [0.0012, 0.9909]
    texts = [("a.ipynb cell 3", "now 99.09 % with ECE 0.0012"), ("b.py:7", "# was 99.16 %, doodles 0.947")]
    assert stale_quotes(texts, measured) == [
        "b.py:7: '99.16 %' matches no figure in reports/metrics",
        "b.py:7: '0.947' matches no figure in reports/metrics",
    ]


def test_python_prose_reads_comments_and_docstrings_not_code(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text('"""Module: 0.951."""\n\nFLOOR = 0.952  # gate: 0.953\n\ndef f():\n    """Doc 0.954."""\n')
    prose = " ".join(text for _, text in python_prose(module, tmp_path))
    assert [value for _, value, _ in quotes(prose)] == pytest.approx([0.953, 0.951, 0.954])


def test_notebook_markdown_and_test_comments_quote_current_figures():
    measured = metric_values()
    if not measured:
        pytest.skip("no reports/metrics/*.json: run `dvc repro` first")
    texts = [text for path in sorted((ROOT / "notebooks").glob("*.ipynb")) for text in notebook_markdown(path)]
    texts += [text for path in sorted((ROOT / "tests").rglob("*.py")) for text in python_prose(path)]
    assert stale_quotes(texts, measured) == []
