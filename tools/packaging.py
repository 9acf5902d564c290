"""Stage and zip each function for Cloud Run functions, reproducibly (same input, same bytes).

`python -m tools.packaging` (or `make package`) writes build/packages/<fn>.zip for every
functions/<fn>/main.py: the function's folder at the zip root, the modules of `common` it
imports (transitively, through every import, lazy ones included, with their packages'
__init__.py and package data such as common/runtime/locations.toml) and a requirements.txt
pinned for that function. What no function imports (the CLI, the demo, the local stack) and
tools/ stay out. Terraform names the uploaded object after the zip's hash, so only a changed
zip redeploys.

Pins: every requirement is pinned to the version installed in the environment that runs the
packaging (the .venv that `make test` just tested), and the pins cover the whole dependency
closure, so Cloud Build installs exactly what the tests ran against instead of whatever is
newest on the day of the deploy. No separate constraints file to keep in step by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import re
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.imports import Scope, module_name, package_modules, read_imports
from tools.imports import closure as reachable
from tools.layers import TOOLING, unit_of

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
COMMON_DIR = ROOT / "common"
OUT_DIR = ROOT / "build" / "packages"

# Functions that only serve what others computed: they get a light requirement set (the
# base below plus whatever their modules import at module level), not the training stack.
LIGHT_FUNCTIONS = frozenset({"api"})
LIGHT_BASE = ("functions-framework", "flask", "pydantic", "pydantic-settings",
              "google-cloud-storage")  # fmt: skip

# Modules a light function imports lazily, on first use (the api's /v1/predict runs the
# batch feature and model code): their module-level imports count as the function's own,
# once those modules exist.
LAZY_MODULES = {
    "api": (
        "common.forecasting.forecast",
        "common.forecasting.features",
        "common.forecasting.model",
        "common.forecasting.registry",
    )
}

# Cloud Run functions' runtime (python312 on Linux): requirement markers are evaluated for
# it, not for the interpreter that happens to run the packaging.
TARGET_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}

MODULE_LEVEL: frozenset[Scope] = frozenset({"module"})  # what runs when a module is imported

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: no build time leaks in
FILE_MODE = 0o100644  # regular file, rw-r--r--, whatever the checkout's umask was
SKIP_PARTS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache"})
SKIP_SUFFIXES = frozenset({".pyc", ".pyo"})


class PackagingError(RuntimeError):
    """A function cannot be packaged (unknown import, missing distribution, ...)."""


@dataclass(frozen=True)
class Package:
    function: str
    path: Path
    sha256: str
    requirements: tuple[str, ...]  # "name==version", sorted
    members: tuple[str, ...] = ()  # the zip's file names, sorted


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def function_names(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """Every functions/<name>/main.py that exists, sorted."""
    return sorted(p.parent.name for p in functions_dir.glob("*/main.py"))


def runtime_requirements() -> list[str]:
    """aircast's own runtime dependencies (no extras), as declared in pyproject.toml."""
    from packaging.requirements import Requirement

    names = []
    for spec in md.requires("aircast") or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({**TARGET_MARKERS, "extra": ""}):
            names.append(canonical(req.name))
    return sorted(set(names))


def common_modules() -> dict[str, Path]:
    """Every module of the `common` package in the repository: dotted name -> file."""
    return package_modules(ROOT, "common")


def _start(path: Path) -> dict[str, Path]:
    """{module name: path} for a file to follow imports from (a function's main.py is
    imported as `main`; a file of common by its dotted name, for its relative imports)."""
    return {module_name(path, ROOT) if path.is_relative_to(COMMON_DIR) else path.stem: path}


def third_party_imports(main: Path) -> set[str]:
    """Top-level third-party modules imported at module level by `main` and, transitively,
    by the `common` modules it imports (their parent packages' __init__ included).

    Imports inside functions run later (and only on some paths), so they are not followed
    here (LAZY_MODULES names the ones a light function needs); `if TYPE_CHECKING:` blocks
    never run.
    """
    modules = common_modules()
    start = _start(main)
    files = {**start, **{m: modules[m] for m in reachable(start, modules, MODULE_LEVEL)}}
    third_party: set[str] = set()
    for name, path in files.items():
        for imp in read_imports(path, name):
            top = imp.target.partition(".")[0]
            if imp.scope == "module" and top != "common" and top not in sys.stdlib_module_names:
                third_party.add(top)
    return third_party


def distributions_for(modules: set[str]) -> set[str]:
    """Distribution names that provide these top-level modules."""
    providers = md.packages_distributions()
    found: set[str] = set()
    for module in sorted(modules):
        if module not in providers:
            raise PackagingError(f"no installed distribution provides module {module!r}")
        found.update(canonical(d) for d in providers[module])
    return found


def closure(names: set[str]) -> dict[str, str]:
    """Every distribution the given ones need on the target runtime -> installed version."""
    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(n, frozenset()) for n in sorted(names)]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise PackagingError(f"{name} is not installed; run `make install`") from None
        pinned[name] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            wanted = req.marker is None or any(
                req.marker.evaluate({**TARGET_MARKERS, "extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                todo.append((canonical(req.name), frozenset(req.extras)))
    return pinned


def requirements_for(function: str, functions_dir: Path = FUNCTIONS_DIR) -> tuple[str, ...]:
    """Pinned requirement lines for one function."""
    main = functions_dir / function / "main.py"
    direct = set(runtime_requirements())
    if function in LIGHT_FUNCTIONS:
        modules = common_modules()
        roots = [main, *(modules[m] for m in LAZY_MODULES.get(function, ()) if m in modules)]
        imported = set().union(*(third_party_imports(root) for root in roots))
        direct = {*LIGHT_BASE, *distributions_for(imported)}
    direct.discard("aircast")  # the common package travels inside the zip
    return tuple(f"{name}=={version}" for name, version in sorted(closure(direct).items()))


def _files(folder: Path, prefix: str) -> dict[str, Path]:
    files = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not SKIP_PARTS & set(rel.parts) and path.suffix not in SKIP_SUFFIXES:
            files[f"{prefix}{rel.as_posix()}"] = path
    return files


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.external_attr = FILE_MODE << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so the mode bits mean the same on every build host
    return info


def shipped_modules(main: Path) -> list[str]:
    """The modules of `common` a function needs: every one its main.py reaches through any
    import (lazy ones too: that code runs on some request and must be there), with their
    parent packages. Operator tooling is refused, whatever imports it."""
    modules = reachable(_start(main), common_modules())
    if tooling := sorted(m for m in modules if unit_of(m) in TOOLING):
        raise PackagingError(f"{main} reaches operator tooling, which no function ships: "
                             f"{', '.join(tooling)}")  # fmt: skip
    return sorted(modules)


def package_data() -> dict[str, list[str]]:
    """pyproject.toml's [tool.setuptools.package-data]: package -> file patterns. The zips
    carry the same data files as the installed package, for the packages they include."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    setuptools = config.get("tool", {}).get("setuptools", {})
    data: dict[str, list[str]] = setuptools.get("package-data", {})
    return data


def common_files(main: Path) -> dict[str, Path]:
    """Zip member name -> file for the part of `common` a function ships."""
    modules = common_modules()
    data = package_data()
    files = {}
    for name in shipped_modules(main):
        path = modules[name]
        files[path.relative_to(ROOT).as_posix()] = path
        if path.name == "__init__.py":
            for pattern in data.get(name, []):
                for extra in sorted(path.parent.glob(pattern)):
                    if extra.is_file():
                        files[extra.relative_to(ROOT).as_posix()] = extra
    return files


def build(function: str, out_dir: Path = OUT_DIR, functions_dir: Path = FUNCTIONS_DIR) -> Package:
    """Write <out_dir>/<function>.zip; the same sources and pins give the same bytes."""
    folder = functions_dir / function
    if not (folder / "main.py").is_file():
        raise PackagingError(f"{folder}/main.py does not exist")
    requirements = requirements_for(function, functions_dir)
    shipped = common_files(folder / "main.py")
    members: dict[str, bytes] = {
        name: path.read_bytes()
        for name, path in {**shipped, **_files(folder, "")}.items()
        if name != "requirements.txt"
    }
    header = f"# {function}: generated by `make package` (tools/packaging.py); do not edit\n"
    members["requirements.txt"] = (header + "\n".join(requirements) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{function}.zip"
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(members):
            zf.writestr(_entry(name), members[name], compresslevel=9)
    tmp.replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return Package(function, target, digest, requirements, tuple(sorted(members)))


def build_all(out_dir: Path = OUT_DIR, functions_dir: Path = FUNCTIONS_DIR) -> list[Package]:
    return [build(name, out_dir, functions_dir) for name in function_names(functions_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="*", help="default: every functions/*/main.py")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    try:
        names = args.functions or function_names()
        for package in (build(name, args.out) for name in names):
            shipped = [m for m in package.members if m.startswith("common/")]
            print(f"{package.path}  sha256={package.sha256}  {len(shipped)} files of common  "
                  f"{len(package.requirements)} pinned requirements")  # fmt: skip
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
