"""The layers of `common`, and the check that its imports respect them.

Dependencies point one way: a module imports only from layers below its own (and from its
own sub-package); two sub-packages of one layer never import each other; nothing in
`common` imports `tools/` or `functions/`. Function-level and `if TYPE_CHECKING:` imports,
and modules named in strings for importlib, count like any other: a lazy import is still a
dependency, it only moves the failure to the first request. Why each layer sits where it does:

0 common.core         settings, errors, logs, time and the table schema: vocabulary every
                      other layer speaks, so it can depend on nothing of ours.
1 common.warehouse    the ports and their adapters (SQL warehouse, artifact store, data
  common.storage      sources): each talks to one outside system in core's terms and knows
  common.sources      nothing of forecasting or of each other, so an adapter can be
                      swapped or tested alone.
2 common.forecasting  the domain: features, model, training, evaluation, registry,
                      forecast, snapshot. Pure computation over frames plus the store for
                      model artifacts; it never decides where data comes from.
3 common.runtime      what every job needs to run in a function: the Services it is handed
                      (settings, warehouse, store), the run audit, the location list, the
                      HTTP glue. Above the adapters it wires together, below the jobs.
4 common.monitoring   health signals and the status over what the jobs wrote (warehouse,
                      registry, snapshot) and the drift reference train stores: above the
                      runtime whose Services it reads, below the jobs, so predict can store
                      the status and train the reference without a job importing a job.
5 common.ingest       one job per function, each composing runtime, adapters and domain.
  common.train        Peers: a job never calls another job (the scheduler sequences them),
  common.predict      so each function ships and fails alone.
6 common.serving      consumers of the jobs' outputs: the api reads what predict published;
  common.scheduling   the scheduler fires the functions over HTTP. Nothing below may know
                      how it is served or scheduled.
7 common.ops          the operator's CLI and demo, which drive everything below and which
                      no function needs: the one layer that no function zip carries.

`tools/` (generate, packaging) is build-time tooling outside the package. A function's
`functions/<fn>/main.py` is a thin entry point: it may import core, runtime and its own
job (or serving) package, nothing else of ours. The test is tests/tools/test_layers.py; the
packager (tools/packaging.py) refuses to ship a TOOLING module.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.imports import Import, module_name, package_modules, reached, read_imports

PACKAGE = "common"

# Bottom to top; a sub-package's layer is its index here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("common.core",),
    ("common.warehouse", "common.storage", "common.sources"),
    ("common.forecasting",),
    ("common.runtime",),
    ("common.monitoring",),
    ("common.ingest", "common.train", "common.predict"),
    ("common.serving", "common.scheduling"),
    ("common.ops",),
)

# Operator tooling: never in a function zip.
TOOLING: tuple[str, ...] = ("common.ops",)

# Top-level folders of the repository that `common` must never import: not shipped with it.
OUTSIDE: tuple[str, ...] = ("tools", "functions")

# What every functions/<fn>/main.py may import, and the package that is its own.
FUNCTION_SHARED: tuple[str, ...] = ("common.core", "common.runtime")
FUNCTION_PACKAGES: Mapping[str, str] = {
    "ingest": "common.ingest",
    "train": "common.train",
    "predict": "common.predict",
    "monitor": "common.monitoring",
    "api": "common.serving",
}


def unit_of(module: str) -> str | None:
    """The sub-package of LAYERS that holds `module`, or None (the root, or unknown)."""
    for layer in LAYERS:
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return unit
    return None


def layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


@dataclass(frozen=True)
class Report:
    """What the check found: import cycles (each a path that ends where it starts) and
    imports against the layer rules, as readable lines."""

    cycles: list[list[str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cycles or self.violations)

    def lines(self) -> list[str]:
        return [*(f"cycle: {' -> '.join(c)}" for c in self.cycles), *self.violations]


def _where(imp: Import, paths: Mapping[str, Path], root: Path) -> str:
    return f"{paths[imp.module].relative_to(root).as_posix()}:{imp.line} ({imp.scope})"


def _rule(source: str, target: str) -> str | None:
    """Why `source` must not import `target` (both modules of common), or None."""
    if target == PACKAGE:
        return None  # the root package: an empty namespace every module sits in
    if source == PACKAGE:
        return "the root package must stay an empty namespace"
    s, t = unit_of(source), unit_of(target)
    if s is None or t is None or s == t:  # (a module in no layer is reported once, alone)
        return None
    if layer_of(t) > layer_of(s):
        return f"layer {layer_of(s)} ({s}) imports layer {layer_of(t)} ({t})"
    if layer_of(t) == layer_of(s):
        return f"peers in layer {layer_of(s)}: {s} imports {t}"
    return None


def _cycles(graph: Mapping[str, Mapping[str, Import]]) -> list[list[str]]:
    """One cycle path per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    paths = []
    for component in sorted(components):
        start, inside = component[0], set(component)
        came_from: dict[str, str] = {}
        frontier = [start]
        while start not in came_from:  # breadth first, back to start: a shortest cycle
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in inside and w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(came_from[path[-1]])
        paths.append(path[::-1])
    return paths


def check(root: Path) -> Report:
    """Check every import in <root>/common and <root>/functions/*/main.py."""
    modules = package_modules(root, PACKAGE)
    paths = dict(modules)
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules}
    violations: list[str] = []

    for module, path in modules.items():
        if module != PACKAGE and unit_of(module) is None:
            rel = path.relative_to(root).as_posix()
            violations.append(f"{rel}: {module} is in no layer of tools/layers.py")
        for imp in read_imports(path, module):
            where = _where(imp, paths, root)
            top = imp.target.partition(".")[0]
            if top in OUTSIDE:
                violations.append(f"{where}: {module} imports {imp.target}, outside the package")
                continue
            targets = reached(imp, modules)
            named = imp.scope != "dynamic"  # a dotted string may be no module name at all
            if named and top == PACKAGE and not targets and imp.target != module:
                violations.append(f"{where}: {module} imports {imp.target}, which does not exist")
            for target in targets:
                graph[module].setdefault(target, imp)
                if why := _rule(module, target):
                    violations.append(f"{where}: {module} imports {target}: {why}")

    for main in sorted((root / "functions").glob("*/main.py")):
        function = main.parent.name
        name = module_name(main, root)
        paths[name] = main
        own = FUNCTION_PACKAGES.get(function)
        if own is None:
            missing = f"{function} has no own package in tools/layers.FUNCTION_PACKAGES"
            violations.append(f"{main.relative_to(root).as_posix()}: {missing}")
        allowed = {*FUNCTION_SHARED, *([own] if own else [])}
        listed = ", ".join(sorted(allowed))
        for imp in read_imports(main, name):
            where = _where(imp, paths, root)
            if imp.target.partition(".")[0] in OUTSIDE:
                violations.append(f"{where}: {function} imports {imp.target}, not shipped")
            for target in reached(imp, modules):
                if target != PACKAGE and unit_of(target) not in allowed:
                    why = f"a function imports only {listed}"
                    violations.append(f"{where}: {function} imports {target}; {why}")

    cycles = []
    for cycle in _cycles(graph):
        steps = [cycle[0]]
        for a, b in itertools.pairwise(cycle):
            steps.append(f"{b} [{_where(graph[a][b], paths, root)}]")
        cycles.append(steps)
    return Report(cycles, violations)


def main() -> int:
    """`python -m tools.layers`: print what the check finds; exit 1 if anything."""
    report = check(Path(__file__).resolve().parent.parent)
    for line in report.lines():
        print(line)
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
