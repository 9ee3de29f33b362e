"""The benchmarks and scripts run by hand, not by the suite: every name each takes from `doodle`
(``from doodle.x import name`` and ``module.name`` on an imported doodle module) must exist, so a
renamed or moved function breaks this test instead of the next person's measurement."""

from __future__ import annotations

import ast
import importlib
import importlib.util

import pytest

from doodle.paths import ROOT

FILES = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")])


def doodle_names(tree: ast.Module) -> list[tuple[str, str, int]]:
    """(module, name, line) for each name the file takes from a doodle module."""
    modules: dict[str, str] = {}  # local alias -> dotted doodle module
    used: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "doodle":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if _is_module(submodule):
                    modules[alias.asname or alias.name] = submodule
                else:
                    used.append((node.module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "doodle" and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            used.append((modules[node.value.id], node.attr, node.lineno))
    return used


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:
        return False


def missing_names(used: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [
        (module, name, line)
        for module, name, line in used
        if not hasattr(importlib.import_module(module), name)
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_name_taken_from_doodle_exists(path):
    missing = [
        f"line {line}: {module}.{name}"
        for module, name, line in missing_names(doodle_names(ast.parse(path.read_text())))
    ]
    assert not missing, f"{path.name} uses names doodle does not have: {missing}"


def test_the_check_sees_a_missing_name():
    tree = ast.parse(
        "from doodle.canvas import strokes\nfrom doodle.model.mlp import init_params, nothing\nstrokes.render\n"
    )
    used = doodle_names(tree)
    assert ("doodle.model.mlp", "init_params", 2) in used
    assert sorted(name for _, name, _ in missing_names(used)) == ["nothing", "render"]
