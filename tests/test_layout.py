"""The house rules, read from the code itself (ast): data flows down the layers and never comes back.

Every import statement counts, at the top of a module or inside a function, TYPE_CHECKING or not:
a lazy import is still a dependency, and a circle through one is still a circle.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moss_cli"
# Highest first: a module may import its own layer and the layers after it, never one before it.
LAYERS = ["cli", "serve", "live", "batch", "tasks", "engine", "speakers", "output", "audio", "model", "(root)"]
BACKENDS = ("moss_cli.engine.local", "moss_cli.engine.remote")
FACTORY = "moss_cli.engine.factory"
# A module path in a string (moss_cli/__init__.py's table of lazily imported names) imports it all the same.
NAMED_BACKEND = re.compile(r"^(moss_cli)?\.?engine\.(local|remote)(\.|$)")
MAX_LINES = 500
MAX_ROOT_MODULES = 12


def module_name(path: Path) -> str:
    parts = ["moss_cli", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """Every moss_cli module `name` imports, relative imports resolved; `from pkg import mod` counts as mod."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names}
    return {module for module in found if module in modules() and module != name}


def imports_anything(name: str, prefix: str) -> bool:
    path = modules()[name]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(n == prefix or n.startswith(prefix + ".") for n in names):
            return True
    return False


def layer(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "(root)"


def test_every_package_has_a_layer():
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages <= set(LAYERS)


def test_no_import_circle():
    graph = {name: imported(name) for name in modules()}
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(other):] + [other]))
            if other not in state:
                visit(other)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_go_down_the_layers(name):
    upward = sorted(other for other in imported(name) if LAYERS.index(layer(other)) < LAYERS.index(layer(name)))
    assert upward == [], f"{name} ({layer(name)}) imports a layer above it"


def test_nothing_below_the_cli_imports_it():
    below = [name for name in modules() if layer(name) != "cli"]
    assert [name for name in below if any(layer(other) == "cli" for other in imported(name))] == []


def test_the_engine_contract_imports_neither_torch_nor_a_backend():
    contract = "moss_cli.engine.base"
    assert not imports_anything(contract, "torch") and not imports_anything(contract, "transformers")
    assert not any(other.startswith(BACKENDS) or other == FACTORY for other in imported(contract))
    assert not imports_anything(FACTORY, "torch")  # it picks a backend; the backend brings torch


def named_backends(name: str) -> set[str]:
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return {f"moss_cli.engine.{match[2]}" for value in strings if (match := NAMED_BACKEND.match(value))}


def test_only_the_factory_and_a_backends_own_package_reach_a_backend():
    offenders = []
    for name in modules():
        for other in imported(name) | named_backends(name):
            backend = next((b for b in BACKENDS if other == b or other.startswith(b + ".")), None)
            if backend and name != FACTORY and not (name == backend or name.startswith(backend + ".")):
                offenders.append(f"{name} -> {other}")
    assert offenders == []


def test_no_module_is_over_500_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_few_modules_sit_directly_in_the_package():
    root = [path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"]
    assert len(root) <= MAX_ROOT_MODULES, root


def test_only_the_cli_writes_to_the_terminal():
    """Below cli/ nothing prints, writes to stdout/stderr or opens a console (flushing before an exit is fine)."""
    writers = []
    for name, path in modules().items():
        if layer(name) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                writers.append(f"{name}:{node.lineno} print()")
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr") and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys" and name != "moss_cli.interrupts":
                writers.append(f"{name}:{node.lineno} sys.{node.attr}")
            if isinstance(node, ast.Name) and node.id == "Console":
                writers.append(f"{name}:{node.lineno} Console")
    assert writers == []
