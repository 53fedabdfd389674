"""The package tree is the architecture (doc/design.md#layers): every palhm import,
at module level or inside a function, points to the same or a lower layer, packages of
one layer do not import each other, and the module graph has no cycle."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "palhm"

LAYERS: dict[str, int] = {
    "cli": 5,
    "ops": 4,
    "config": 4,
    "bootreport": 4,
    "notify": 3,
    "engine": 2,
    "backends": 1,
}
CORE = 0  # every other top-level module: model, values, errors, manifest, prefix ...


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The first component below palhm: the package (or core module) of a module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    return LAYERS.get(unit(module), CORE)


@cache
def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """palhm modules a file imports ("from palhm.x import y" counts palhm.x.y when that
    is a module, else palhm.x)."""
    modules = all_modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("palhm"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("palhm"):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found - {"palhm"}


def edges() -> list[tuple[str, str]]:
    return [(m, dep) for m, path in all_modules().items() for dep in sorted(imports_of(path))]


def test_the_tree_has_the_layer_packages() -> None:
    for package in ("cli", "engine", "ops", "notify", "backends", "config", "backends/s3"):
        assert (PACKAGE / package / "__init__.py").is_file(), package
    flat = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert set(flat) <= {
        "aws", "bootreport", "durations", "errors", "faults", "manifest", "model",
        "modules", "prefix", "records", "rundir", "values",
    }, flat  # fmt: skip


@pytest.mark.parametrize("source,target", edges())
def test_no_import_points_upward_or_sideways(source: str, target: str) -> None:
    if source == "palhm.__main__" or unit(source) == unit(target):
        return
    assert layer(target) < layer(source) or (layer(source) == CORE == layer(target)), (
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
    )


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in all_modules()}
    for source, target in edges():
        # a package's __init__ importing its own modules is how packages work, not a cycle
        if target in graph and not target.startswith(source + "."):
            graph[source].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The rule above would catch engine importing ops (the checker is not vacuous)."""
    assert layer("palhm.ops.restore") > layer("palhm.engine.backup")
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from palhm.ops import restore\n", encoding="utf-8")
    assert imports_of(source) == {"palhm.ops.restore"}


def private_names_imported(path: Path) -> list[str]:
    """Private names ("_x") a file imports from another palhm module. A private module
    of the same package (`from palhm.backends import _fsutil`) is not a name."""
    modules = all_modules()
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("palhm"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{node.module}.{alias.name}" not in modules:
                    found.append(f"{node.module}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    """What one module needs of another has a public name and a contract."""
    found = {m: private_names_imported(p) for m, p in all_modules().items()}
    assert {m: names for m, names in found.items() if names} == {}


def test_the_checker_sees_a_planted_private_import(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("from palhm.engine.spawn import _prctl, spawn\n", encoding="utf-8")
    assert private_names_imported(source) == ["palhm.engine.spawn._prctl"]


def test_only_the_command_line_and_the_stdout_mua_print() -> None:
    """Everything else logs (doc/design.md#notifications): a print() elsewhere would
    bypass -q/-v and break `palhm get ... > FILE`."""
    printers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if unit(name) == "cli" or name == "palhm.notify.mua.stdout":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
        printers += [f"{name}:{line}" for line in calls]
    assert printers == []
