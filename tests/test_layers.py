"""The README's layer diagram of `doodle/` is what the code is: every module is in it once, and each
imports only modules of the layers below its own (so imports run one way and no loop can form)."""

from __future__ import annotations

import ast
import re

from doodle.paths import ROOT

PACKAGE = ROOT / "doodle"


def readme_layers() -> dict[str, int]:
    """Module -> layer number, from the README's diagram: lines ``N  mod mod ...`` and their
    continuation lines, up to the description column."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("Layers of `doodle/`") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    layers: dict[str, int] = {}
    level = None
    for line in block.splitlines():
        numbered = re.match(r"^(\d+)\s", line)
        if numbered:
            level = int(numbered.group(1))
        names = line[:62].split()
        for name in names[1:] if numbered else names:
            assert name not in layers, f"README: {name} is in two layers"
            layers[name] = level
    return layers


def doodle_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "doodle":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("doodle."))
    return found


def test_every_module_is_in_the_diagram_once():
    layers = readme_layers()
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert not modules - set(layers), (
        f"add these to the README's layer diagram: {sorted(modules - set(layers))}"
    )
    assert not set(layers) - modules, (
        f"the README's diagram names modules that do not exist: {sorted(set(layers) - modules)}"
    )


def test_imports_run_down_the_layers():
    layers = readme_layers()
    upward = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem == "__init__" or path.stem not in layers:
            continue
        for imported in sorted(doodle_imports(path) - {path.stem}):
            if layers.get(imported, -1) >= layers[path.stem]:
                upward.append(
                    f"{path.stem} (layer {layers[path.stem]}) imports {imported} (layer {layers.get(imported)})"
                )
    assert not upward, "imports that do not run down the README's layers:\n" + "\n".join(upward)
