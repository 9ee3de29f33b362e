"""Shared numbers are defined once (doodle/constants.py), agree with each other, and every
environment setting the code reads is documented in the README's settings table."""

import ast
import re

from doodle import constants, paths
from doodle.sources import data

CODE_DIRS = ("doodle", "serving", "scripts", "benchmarks")
README = paths.ROOT / "README.md"


def _code_files():
    for folder in CODE_DIRS:
        yield from (paths.ROOT / folder).rglob("*.py")
        yield from (paths.ROOT / folder).rglob("*.sh")
    yield paths.ROOT / "Makefile"


def test_constants_agree():
    assert constants.N_PIXELS == constants.IMAGE_SIDE**2 == 784
    # byte >= BINARY_INK_BYTE is exactly "value on the [0, 1] scale > BINARY_INK_LEVEL"
    assert [b for b in range(256) if b >= constants.BINARY_INK_BYTE] == [
        b for b in range(256) if b / 255 > constants.BINARY_INK_LEVEL
    ]


def test_shared_numbers_are_assigned_only_in_constants():
    assignment = re.compile(r"^\s*[A-Z_]+\s*(?::[^=]+)?=\s*(784|280|10|128|0\.5|\(28, 28\)|28)\s*(#.*)?$")
    offenders = []
    for path in _code_files():
        if path == paths.ROOT / "doodle" / "constants.py" or path.suffix != ".py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if assignment.match(line) and re.search(r"PIXEL|SIDE|SIZE|CLASSES|INK|THRESHOLD|SHAPE", line):
                offenders.append(f"{path.relative_to(paths.ROOT)}:{number}: {line.strip()}")
    assert not offenders, "define these in doodle/constants.py and import them:\n" + "\n".join(offenders)


def test_ports_and_the_digit_limit_are_written_once():
    """The servers' ports and the number reading's digit limit are numbers only in
    doodle/constants.py among the code (the Makefile reads the ports from there; docstrings may
    show them)."""
    offenders = []
    for path in _code_files():
        if path == paths.ROOT / "doodle" / "constants.py":
            continue
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text())):
                port = (
                    isinstance(node, ast.Constant) and type(node.value) is int and node.value in (8000, 8866)
                )
                limit = (
                    isinstance(node, ast.Assign)
                    and any("MAX_NUMBER_DIGITS" in ast.unparse(target) for target in node.targets)
                    and isinstance(node.value, ast.Constant)
                    and type(node.value.value) is int
                )
                if port or limit:
                    offenders.append(f"{path.relative_to(paths.ROOT)}:{node.lineno}")
        else:
            code = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
            offenders += [
                f"{path.relative_to(paths.ROOT)}: {line}"
                for line in code
                if re.search(r"\b(8000|8866)\b", line)
            ]
    assert not offenders, "use doodle.constants' ports and digit limit:\n" + "\n".join(offenders)


def test_prepared_data_root_does_not_depend_on_the_working_directory():
    assert data.DEFAULT_ROOT.is_absolute()
    assert data.DEFAULT_ROOT == paths.ROOT / "data" / "prepared"


def test_every_setting_is_in_the_readme_table():
    readme = README.read_text()
    section = readme[readme.index("## Settings") :]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(DOODLE_[A-Z_]+)`", section, flags=re.M))
    used = set()
    for path in _code_files():
        used |= set(re.findall(r"DOODLE_[A-Z][A-Z_]*[A-Z]", path.read_text()))
    assert used, "the scan found no settings at all"
    assert not used - documented, f"settings missing from README's table: {sorted(used - documented)}"
