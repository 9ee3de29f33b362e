"""The README's layer diagram of `doodle/` is what the code is: every module is in it once, under
its own folder, and a subpackage imports only subpackages of the layers below its own (two in one
layer import neither each other), so imports between subpackages run one way; inside a subpackage
the modules import each other without a loop, and a subpackage's ``__init__.py`` holds its docstring
alone, so importing one module never imports its neighbours."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from doodle.paths import ROOT

PACKAGE = ROOT / "doodle"
NAMES_WIDTH = 62  # the diagram's names end here; the description column follows


def readme_diagram() -> tuple[dict[str, int], dict[str, str]]:
    """From the README's diagram, lines ``N  folder/  mod mod ...`` and their continuation lines up to
    the description column: folder -> layer number, and module (dotted) -> its folder."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("Layers of `doodle/`") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    layers: dict[str, int] = {}
    modules: dict[str, str] = {}
    folder = None
    for line in block.splitlines():
        names = line[:NAMES_WIDTH].split()
        numbered = re.match(r"^(\d+)\s+(\S+)/\s", line)
        if numbered:
            folder = numbered.group(2)
            assert folder not in layers, f"README: {folder}/ has two layers"
            layers[folder] = int(numbered.group(1))
            names = names[2:]
        for name in names:
            dotted = f"doodle.{name}" if folder == "doodle" else f"doodle.{folder}.{name}"
            assert dotted not in modules, f"README: {name} is in the diagram twice"
            modules[dotted] = folder
    return layers, modules


def dotted_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package (dotted name -> file), subpackages' ``__init__`` left out."""
    return {dotted_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}


def folder_of(module: str) -> str:
    """``doodle.model.train`` -> ``model``; ``doodle.paths`` (or ``doodle`` itself) -> ``doodle``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "doodle"


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def doodle_imports(path: Path) -> set[str]:
    """The package's modules (or subpackages) a module imports, as dotted names; relative imports
    resolved against the module's own package."""
    package = dotted_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: package.count(".") + 2 - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "doodle":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "doodle")
    return found - {"doodle"}


def test_every_module_is_in_the_diagram_once_under_its_folder():
    layers, diagram = readme_diagram()
    modules = package_modules()
    missing = sorted(set(modules) - set(diagram))
    assert not missing, f"add these to the README's layer diagram, under their folder: {missing}"
    absent = sorted(set(diagram) - set(modules))
    assert not absent, (
        f"the README's diagram names modules that do not exist (or not in that folder): {absent}"
    )
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | {"doodle"}
    assert folders == set(layers), (
        f"the README's diagram has folders {sorted(layers)}, the package {sorted(folders)}"
    )


def test_subpackages_import_only_the_layers_below():
    layers, _ = readme_diagram()
    upward = []
    for module, path in sorted(package_modules().items()):
        own = folder_of(module)
        for imported in sorted(doodle_imports(path)):
            other = folder_of(imported)
            if other != own and layers.get(other, -1) >= layers[own]:
                upward.append(
                    f"{module} ({own}/, layer {layers[own]}) imports {imported} "
                    f"({other}/, layer {layers.get(other)})"
                )
    assert not upward, "imports that do not run down the README's layers:\n" + "\n".join(upward)


def test_no_import_loop_inside_a_subpackage():
    modules = package_modules()
    edges = {
        module: {i for i in doodle_imports(path) if i in modules and folder_of(i) == folder_of(module)}
        for module, path in modules.items()
    }
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            loop = trail[trail.index(module) :] + [module]
            raise AssertionError("modules import each other in a loop: " + " -> ".join(loop))
        if module in done:
            return
        for imported in sorted(edges[module]):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_a_subpackage_init_holds_only_its_docstring():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        body = ast.parse(init.read_text()).body
        assert ast.get_docstring(ast.Module(body=body, type_ignores=[])), f"{init}: say what the folder holds"
        assert len(body) == 1, f"{init}: holds code; a subpackage's __init__ is its docstring alone"


def test_the_checks_read_imports_and_folders_the_way_python_does():
    """The reader itself: ``from doodle.x import y`` names module ``y`` when there is one, else
    ``x``; a module's folder is its subpackage, ``doodle`` for the top level."""
    imports = doodle_imports(PACKAGE / "model" / "train.py")
    assert "doodle.model.mlp" in imports and "doodle.canvas.strokes" in imports
    assert folder_of("doodle.model.mlp") == "model" and folder_of("doodle.paths") == "doodle"
    assert folder_of("doodle.model") == "model"
