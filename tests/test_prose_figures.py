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
    half = 0.5 * 10.0**-decimals + 1e-12
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
    module.write_text(
        '"""Module: 0.951."""\n\nFLOOR = 0.952  # gate: 0.953\n\ndef f():\n    """Doc 0.954."""\n'
    )
    prose = " ".join(text for _, text in python_prose(module, tmp_path))
    assert [value for _, value, _ in quotes(prose)] == pytest.approx([0.953, 0.951, 0.954])


def test_notebook_markdown_and_test_comments_quote_current_figures():
    measured = metric_values()
    if not measured:
        pytest.skip("no reports/metrics/*.json: run `dvc repro` first")
    texts = [
        text for path in sorted((ROOT / "notebooks").glob("*.ipynb")) for text in notebook_markdown(path)
    ]
    texts += [text for path in sorted((ROOT / "tests").rglob("*.py")) for text in python_prose(path)]
    assert stale_quotes(texts, measured) == []


# ---- Claims about what happened in a run, checked against what the run recorded.
#
# Beyond figures, markdown states facts about the pipeline's runs: that early stopping ended training,
# that training accuracy sits below validation, that so many lines of code do a thing, that a table's
# index counts what its label says. Each kind has a checker and examples it must catch.

TRAIN_HISTORY = ROOT / "reports" / "plots" / "train_history.csv"
STUDY_RESULTS = ROOT / "reports" / "experiments" / "results.csv"
PARAMS = ROOT / "params.yaml"

SENTENCE = re.compile(r"[^.!?\n]*(?:\n(?!\n)[^.!?\n]*)*[.!?]?")
# Words that make a sentence about early stopping conditional or negative rather than a report of it.
# (and sentences naming the rule or its setting, which say how a run may stop, not that it did).
HEDGE = re.compile(r"\b(not|never|no|would|if|unless|could|might|rule|patience)\b|n't\b", re.IGNORECASE)
EARLY_STOP = re.compile(r"early[ -]stopping|stop(?:s|ped)? early|stopped (?:after|at) epoch", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    return [" ".join(found.split()) for found in SENTENCE.findall(text) if found.strip()]


def early_stopping_claims(text: str) -> list[str]:
    """Sentences that state, unhedged, that early stopping acted (picked, stopped, cut a run short)."""
    return [
        sentence for sentence in sentences(text) if EARLY_STOP.search(sentence) and not HEDGE.search(sentence)
    ]


TRAIN_VS_VALIDATION = re.compile(
    r"train(?:ing)? accuracy\b[^.]*?\b(below|under|lower than|above|over|higher than)\b[^.]*?\bvalidation",
    re.IGNORECASE,
)
TENDENCY = re.compile(
    r"\b(tends?|not at every|not always|usually|often|most|counts|in \d+ of)\b", re.IGNORECASE
)


def train_validation_claims(text: str) -> list[tuple[str, str]]:
    """(sentence, "below" or "above") for each unhedged claim that training accuracy sits below or above
    validation accuracy: a claim about every epoch."""
    found = []
    for sentence in sentences(text):
        match = TRAIN_VS_VALIDATION.search(sentence)
        if match and not TENDENCY.search(sentence):
            side = "below" if match.group(1).lower() in ("below", "under", "lower than") else "above"
            found.append((sentence, side))
    return found


NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
LINE_COUNT = re.compile(r"\b(\w+) lines from `([^`]+)` to `([^`]+)`", re.IGNORECASE)


def counted_lines(code: str, first: str, last: str) -> int | None:
    """Code lines (blank and comment-only lines left out) from the first line that starts with ``first``
    to the last line that starts with ``last``, in ``code``; None when either is missing."""
    lines = [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]

    def names(line: str, name: str) -> bool:  # `dlogits` names `dlogits += ...`, not `dlogits_fused = ...`
        return re.match(rf"{re.escape(name)}\b", line) is not None

    starts = [i for i, line in enumerate(lines) if names(line, first)]
    ends = [i for i, line in enumerate(lines) if names(line, last)]
    if not starts or not ends or ends[-1] < starts[0]:
        return None
    return ends[-1] - starts[0] + 1


def line_count_claims(cells: list[dict]) -> list[str]:
    """Markdown cells saying "the N lines from `a` to `b`" where the code cells before them hold another count."""
    wrong = []
    code_so_far = ""
    for index, cell in enumerate(cells):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            code_so_far += text + "\n"
            continue
        for word, first, last in LINE_COUNT.findall(text):
            said = NUMBER_WORDS.get(word.lower(), int(word) if word.isdigit() else None)
            if said is None:
                continue
            counted = counted_lines(code_so_far, first, last)
            if counted != said:
                wrong.append(
                    f"cell {index}: says {word} lines from `{first}` to `{last}`, the code has {counted}"
                )
    return wrong


def runs_stopped_early() -> bool | None:
    """Whether any recorded run ended before its epoch budget: the pipeline's last run and every row of the
    seed study; None when nothing is recorded."""
    import csv

    import yaml

    budget = int(yaml.safe_load(PARAMS.read_text())["train"]["epochs"])
    epochs_run = []
    for name in ("train_details.json", "train.json"):
        path = METRICS_DIR / name
        if path.is_file() and "epochs_run" in json.loads(path.read_text()):
            epochs_run.append(int(json.loads(path.read_text())["epochs_run"]))
            break
    if STUDY_RESULTS.is_file():
        with STUDY_RESULTS.open(newline="") as handle:
            for row in csv.DictReader(handle):
                overrides = json.loads(row.get("overrides") or "{}")
                epochs_run.append(int(row["epochs_run"]) - int(overrides.get("epochs", budget)) + budget)
    if not epochs_run:
        return None
    return any(value < budget for value in epochs_run)


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("The validation split picks the best epoch (early stopping) and decides the champion.", 1),
        ("Training stopped early at epoch 9.", 1),
        ("Training would stop early if the loss went 4 epochs without a new low.", 0),
        ("Early stopping did not trigger: all 15 epochs ran.", 0),
        ("Each epoch visits the training set once.", 0),
        ("The same schedule, early-stopping rule and temperature fit.", 0),
    ],
)
def test_early_stopping_claims_are_found(text, claims):
    assert len(early_stopping_claims(text)) == claims


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        (
            "Training accuracy is measured on augmented images, so it sits below validation accuracy.",
            [("below",)],
        ),
        ("Training accuracy tends to sit below validation, but not at every epoch.", []),
        ("Training accuracy is above the validation accuracy once the model overfits.", [("above",)]),
    ],
)
def test_train_validation_claims_are_found(text, claims):
    assert [(side,) for _, side in train_validation_claims(text)] == claims


def test_line_counts_are_checked_against_the_code_before_them():
    cells = [
        {
            "cell_type": "code",
            "source": ["a = 1\n", "# a comment\n", "b = a\n", "\n", "c = b\n", "d = c\n", "d_2 = d\n"],
        },
        {"cell_type": "markdown", "source": ["The three lines from `a` to `c` become one."]},
        {"cell_type": "markdown", "source": ["The twelve lines from `a` to `d` become one."]},
    ]
    assert line_count_claims(cells) == ["cell 2: says twelve lines from `a` to `d`, the code has 4"]


def notebook_cells() -> list[tuple[Path, list[dict]]]:
    return [
        (path, json.loads(path.read_text())["cells"]) for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
    ]


def test_no_notebook_reports_early_stopping_that_no_run_did():
    stopped = runs_stopped_early()
    if stopped is None:
        pytest.skip("no recorded run: run `dvc repro` first")
    if stopped:
        return
    claims = [
        f"{path.name} cell {index}: {claim}"
        for path, cells in notebook_cells()
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for claim in early_stopping_claims("".join(cell["source"]))
    ]
    assert claims == [], "every recorded run ran all its epochs, yet markdown says early stopping acted"


def test_train_against_validation_accuracy_claims_hold_at_every_epoch():
    if not TRAIN_HISTORY.is_file():
        pytest.skip("no reports/plots/train_history.csv: run `dvc repro` first")
    import csv

    with TRAIN_HISTORY.open(newline="") as handle:
        history = [(float(row["train_acc"]), float(row["val_acc"])) for row in csv.DictReader(handle)]
    holds = {"below": all(t < v for t, v in history), "above": all(t > v for t, v in history)}
    false = [
        f"{path.name} cell {index}: {sentence}"
        for path, cells in notebook_cells()
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for sentence, side in train_validation_claims("".join(cell["source"]))
        if not holds[side]
    ]
    assert false == []


def test_line_counts_in_markdown_match_the_code():
    assert [
        f"{path.name} {problem}" for path, cells in notebook_cells() for problem in line_count_claims(cells)
    ] == []


def test_the_number_tables_index_labels_each_row_by_its_length_not_its_digit_count():
    # The whole-number table of 04_evaluate is indexed by (gaps, length); a row's `digits` column
    # counts its digit drawings, which is `length` times `numbers`. A table indexed by the count
    # column instead would label sixty 4-digit numbers "240".
    from doodle.study import numbers

    numbers_json = METRICS_DIR / "numbers.json"
    result = (
        json.loads(numbers_json.read_text())
        if numbers_json.is_file()
        else {
            "bands": {
                "clear": {
                    "numbers": 3,
                    "number_accuracy": 1.0,
                    "digits": 7,
                    "digit_accuracy": 1.0,
                    "by_count": {
                        "2": {"numbers": 2, "number_accuracy": 1.0, "digits": 4, "digit_accuracy": 1.0},
                        "3": {"numbers": 1, "number_accuracy": 1.0, "digits": 3, "digit_accuracy": 1.0},
                    },
                }
            },
            "touching": {
                "clear": {"numbers": 0, "number_accuracy": None, "digits": 0, "digit_accuracy": None}
            },
        }
    )
    rows = numbers.table_rows(result)
    assert rows, "no rows"
    for row in rows:
        if row["length"] != "all":
            assert row["digits"] == int(row["length"]) * row["numbers"], row
    assert {row["length"] for row in rows} - {"all"} == set(next(iter(result["bands"].values()))["by_count"])
