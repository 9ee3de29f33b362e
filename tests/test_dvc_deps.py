"""Every DVC stage's ``deps`` name each `doodle` module its code imports, directly or through other
`doodle` modules, so ``dvc repro`` reruns a stage whose code changed, and name no `doodle` module it
does not use, so a change elsewhere does not rerun it.

A stage's code is what its ``cmd`` runs: the notebooks it hands to papermill, the modules it runs
with ``python -m`` and the scripts it runs with ``python``. Imports are read with `ast` (code cells
of a notebook, IPython magics skipped), including those inside functions, so a stage that may run
an import depends on it. Every stage of dvc.yaml is checked, new ones included.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from doodle.paths import ROOT

PACKAGE = "doodle"
NOTEBOOK = re.compile(r"\bpapermill\s+(\S+\.ipynb)")
MODULE = re.compile(r"\bpython\s+-m\s+(\w+(?:\.\w+)*)")
SCRIPT = re.compile(r"\bpython\s+(\S+\.py)")


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def notebook_source(path: Path) -> str:
    """A notebook's code cells as one module (IPython magics and shell lines left out)."""
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines.extend(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        lines.append("")
    return "\n".join(lines)


def module_file(name: str) -> Path | None:
    """``doodle.x.y`` -> its file under the repository (``x/y.py`` or ``x/y/__init__.py``), or
    ``None`` for a name that is no module of the package."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str) -> set[str]:
    """The package's modules a piece of code imports (``import doodle.x``, ``from doodle.x import
    f``, ``from doodle import x``), wherever in the code the import is."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}")
            )
    return found


def loaded_by_file_name(source: str, folder: Path) -> set[str]:
    """Modules a package module loads by their file name beside it, as `doodle.loop.tracking` hands
    ``mlflow_pyfunc.py`` to MLflow (``Path(__file__).with_name("x.py")``)."""
    names = re.findall(r"with_name\(\s*[\"'](\w+)\.py[\"']\s*\)", source)
    package = ".".join(folder.relative_to(ROOT).parts)
    return {f"{package}.{name}" for name in names if module_file(f"{package}.{name}")}


def module_closure(source: str) -> set[Path]:
    """The package's module files ``source`` needs, directly or transitively (modules loaded by
    file name included); the package's ``__init__.py`` files (a version string) are not counted."""
    seen: set[str] = set()
    pending = list(imported_modules(source))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is not None:
            text = path.read_text()
            pending.extend(imported_modules(text) | loaded_by_file_name(text, path.parent))
    files = {module_file(name) for name in seen}
    return {path.relative_to(ROOT) for path in files if path is not None and path.name != "__init__.py"}


def entry_points(command: str) -> list[Path]:
    """The files a stage's ``cmd`` runs: notebooks, ``python -m`` modules and scripts."""
    found = [Path(path) for path in NOTEBOOK.findall(command)]
    found += [module_file(name).relative_to(ROOT) for name in MODULE.findall(command) if module_file(name)]
    found += [Path(path) for path in SCRIPT.findall(command)]
    return found


def stage_code(stage: dict) -> tuple[list[Path], set[Path]]:
    """A stage's entry points and every package module they need (the entry point itself
    included when it is a module of the package)."""
    command = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
    points = entry_points(command)
    needed: set[Path] = set()
    for point in points:
        source = notebook_source(ROOT / point) if point.suffix == ".ipynb" else (ROOT / point).read_text()
        needed |= module_closure(source)
        if point.parts[0] == PACKAGE:
            needed.add(point)
    return points, needed


def declared(stage: dict) -> set[Path]:
    return {Path(str(dep)) for dep in stage.get("deps", [])}


STAGES = stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_runs_code_this_test_can_read(name):
    points, _ = stage_code(STAGES[name])
    assert points, f"dvc.yaml stage {name!r}: no notebook, python -m module or script found in its cmd"
    for point in points:
        assert (ROOT / point).is_file(), f"dvc.yaml stage {name!r} runs {point}, which does not exist"
        assert point in declared(STAGES[name]), (
            f"dvc.yaml stage {name!r}: deps miss {point}, which its cmd runs"
        )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_every_package_module_its_code_imports(name):
    _, needed = stage_code(STAGES[name])
    missing = sorted(str(path) for path in needed - declared(STAGES[name]))
    assert not missing, f"dvc.yaml stage {name!r}: deps miss {', '.join(missing)} (imported by its code)"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_no_package_module_its_code_does_not_import(name):
    _, needed = stage_code(STAGES[name])
    package_deps = {
        path for path in declared(STAGES[name]) if path.parts[0] == PACKAGE and path.suffix == ".py"
    }
    unused = sorted(str(path) for path in package_deps - needed)
    assert not unused, f"dvc.yaml stage {name!r}: deps name {', '.join(unused)}, which its code never imports"


def test_imports_are_followed_through_modules_and_from_imports(tmp_path):
    """The reader itself: a notebook's ``from doodle import x`` and a module's function-level
    import both count; names that are not modules do not."""
    closure = module_closure("from doodle.study import numbers\nfrom doodle.constants import CANVAS_SIZE\n")
    assert Path("doodle/study/numbers.py") in closure
    assert Path("doodle/reading/number_reading.py") in closure  # numbers -> number_reading
    assert Path("doodle/canvas/segment.py") in closure  # numbers -> number_reading -> segment
    assert Path("doodle/constants.py") in closure
    assert not any(path.name == "CANVAS_SIZE.py" for path in closure)
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "markdown", "source": ["from doodle.model import train"]},
                    {
                        "cell_type": "code",
                        "source": ["%matplotlib inline\n", "def f():\n", "    import doodle.study.stats\n"],
                    },
                ]
            }
        )
    )
    assert module_closure(notebook_source(notebook)) == {Path("doodle/study/stats.py")}
