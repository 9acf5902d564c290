"""Read the import statements of Python files with `ast`, without importing anything.

One reader for two users: the layer test (tests/tools/test_layers.py, through tools/layers.py)
checks the graph for cycles and imports against the layer order, and the packager
(tools/packaging.py) zips the modules a function reaches. Both need the same answer to
"which of our modules does this file load", so it is computed in one place: every import
statement counts, at module level, inside functions (loaded later, but the code must be in
the zip and must respect the layers) and under `if TYPE_CHECKING:` (never run, but still a
dependency of the code's meaning). A string constant that names a module ("a.b" or
"a.b:Name", as handed to importlib.import_module) counts too, as a "dynamic" import: code
loaded by name must be shipped all the same. Each import carries its scope so a caller can
narrow it (the packager's requirements, for instance, follow module-level imports only).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["module", "function", "type-checking", "dynamic"]
ALL_SCOPES: frozenset[Scope] = frozenset({"module", "function", "type-checking", "dynamic"})

# A string that names a module ("a.b.c") or an object in one ("a.b.c:Name"), the way
# importlib.import_module, entry points and registries of adapters refer to code by name.
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?")

SKIP_PARTS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache"})


@dataclass(frozen=True)
class Import:
    """One imported module as written in `module`, relative imports made absolute.

    `target` is the module the statement names (`a.b` in `import a.b` and in
    `from a.b import c`); `names` are what a from-import takes out of it, any of which may
    itself be a submodule (`from common.runtime import locations`).
    """

    module: str
    target: str
    names: tuple[str, ...]
    line: int
    scope: Scope


def module_name(path: Path, root: Path) -> str:
    """Dotted name of the file at `path` under `root`; a package's __init__ is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the top-level `package` found under `root`: dotted name -> file."""
    folder = root / package
    modules = {}
    for path in sorted(folder.rglob("*.py")):
        if not SKIP_PARTS & set(path.relative_to(root).parts):
            modules[module_name(path, root)] = path
    return modules


def _absolute(module: str, is_package: bool, target: str | None, level: int) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if not level:
        return target or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(package) - 1:
        raise ValueError(f"{module}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def read_imports(path: Path, module: str) -> list[Import]:
    """Every import statement in the file, in source order, with the scope it runs in."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, scope: Scope) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, a.name, (), node.lineno, scope) for a in node.names)
            return
        if isinstance(node, ast.ImportFrom):
            if node.module != "__future__":
                target = _absolute(module, is_package, node.module, node.level)
                names = tuple(a.name for a in node.names)
                found.append(Import(module, target, names, node.lineno, scope))
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if DOTTED.fullmatch(node.value):
                target = node.value.partition(":")[0]
                found.append(Import(module, target, (), node.lineno, "dynamic"))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "function" if scope == "function" else "type-checking")
            for child in node.orelse:
                visit(child, scope)
            return
        function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        inner: Scope = "function" if function else scope
        for inner_node in ast.iter_child_nodes(node):
            visit(inner_node, inner)

    visit(tree, "module")
    return found


def reached(imp: Import, known: Mapping[str, Path] | set[str]) -> list[str]:
    """The modules among `known` that the import statement loads by name: the one it names
    and, for `from x import y`, `x.y` when that is a module. (Parent packages run too;
    `with_parents` adds them where that matters.)"""
    out = [imp.target] if imp.target in known else []
    out += [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in known]
    return [m for m in out if m != imp.module]


def parents(module: str) -> Iterator[str]:
    """`a.b.c` -> `a`, `a.b`: the packages Python initialises before the module itself."""
    parts = module.split(".")
    for i in range(1, len(parts)):
        yield ".".join(parts[:i])


def closure(
    starts: Mapping[str, Path],
    modules: Mapping[str, Path],
    scopes: frozenset[Scope] = ALL_SCOPES,
) -> set[str]:
    """The modules among `modules` reachable from the files `starts` (module name -> file)
    through imports in `scopes`, each with its parent packages, whose own imports are
    followed as well (importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py`)."""
    seen: set[str] = set()
    todo = list(starts.items())
    while todo:
        name, path = todo.pop()
        for imp in read_imports(path, name):
            if imp.scope not in scopes:
                continue
            for target in reached(imp, modules):
                for m in (*parents(target), target):
                    if m in modules and m not in seen:
                        seen.add(m)
                        todo.append((m, modules[m]))
    return seen
