"""Only the factory knows the backends, and the contract knows neither torch nor a backend: read from
every import statement of the package (those inside functions too), relative ones resolved."""

from __future__ import annotations

import ast
import re

import pytest

from support.paths import REPO

PACKAGE = REPO / "moss_cli"
BACKENDS = ("moss_cli.engine.local", "moss_cli.engine.remote")
FACTORY = "moss_cli.engine.factory"
# A module path in a string (an import_module table): a backend named there is imported all the same.
NAMED_BACKEND = re.compile(r"^(moss_cli)?\.?engine\.(local|remote)(\.|$)")


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module an import statement anywhere in `tree` may bring in; `from X import name` counts
    X and X.name, since the name may be a submodule."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found += [target] + [f"{target}.{alias.name}" for alias in node.names]
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path.name == "__init__.py", ast.parse(path.read_text(encoding="utf-8"))


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_import_reader_resolves_relative_imports_inside_functions():
    source = "def f():\n    from ..engine.remote import http\n    from ..engine import local\n    import torch.nn\n"
    found = imported(ast.parse(source), "moss_cli.cli.doctor", is_package=False)
    assert "moss_cli.engine.remote.http" in found and "moss_cli.engine.local" in found and "torch.nn" in found
    assert "moss_cli.engine.local.engine" in imported(ast.parse("from .local import engine"), "moss_cli.engine", True)


def named(tree: ast.AST) -> list[str]:
    """The backends a string in the module names as a module path, as moss_cli/__init__.py's table of
    lazily imported names would."""
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return [f"moss_cli.engine.{match[2]}" for value in strings if (match := NAMED_BACKEND.match(value))]


def test_only_the_factory_and_a_backends_own_package_import_a_backend():
    offenders = []
    for module, is_package, tree in modules():
        reached = imported(tree, module, is_package) + named(tree)
        offenders += [f"{module}: {name}" for name in reached for backend in BACKENDS
                      if within(name, backend) and module != FACTORY and not within(module, backend)]
    assert not offenders


@pytest.mark.parametrize("module", ["moss_cli.engine.base", "moss_cli.engine.factory"])
def test_the_contract_and_the_factory_import_no_torch_and_base_no_backend(module):
    [(is_package, tree)] = [(package, tree) for name, package, tree in modules() if name == module]
    names = imported(tree, module, is_package)
    assert not [name for name in names if within(name, "torch")]
    if module == "moss_cli.engine.base":
        assert not [name for name in names if any(within(name, b) for b in (*BACKENDS, FACTORY))]
