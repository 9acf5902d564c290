"""The import graph of `common` has no cycles and points down the layers of tools/layers.py,
function-level and `if TYPE_CHECKING:` imports included; each function's main.py imports
only core, runtime and its own package. A fake tree shows the check can fail."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools import layers
from tools.imports import package_modules, read_imports

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report() -> layers.Report:
    return layers.check(ROOT)


def test_common_has_no_import_cycles(report):
    assert not report.cycles, "\n".join(report.lines())


def test_imports_follow_the_layers(report):
    assert not report.violations, "\n".join(report.violations)


def test_the_layer_table_names_each_sub_package_once():
    units = [unit for layer in layers.LAYERS for unit in layer]
    assert len(units) == len(set(units))
    on_disk = {f"common.{p.parent.name}" for p in (ROOT / "common").glob("*/__init__.py")}
    assert on_disk == set(units), "a sub-package of common is missing from tools/layers.py"
    assert set(layers.FUNCTION_PACKAGES.values()) <= set(units)
    assert {p.parent.name for p in (ROOT / "functions").glob("*/main.py")} == set(
        layers.FUNCTION_PACKAGES
    )


def test_the_walk_sees_every_kind_of_import(tmp_path):
    """Module level, in functions, under TYPE_CHECKING, relative, a submodule named in a
    from-import, and a module named in a string for importlib: each is a dependency."""
    tree = {
        "common/__init__.py": "",
        "common/pkg/__init__.py": "",
        "common/pkg/a.py": """
            from typing import TYPE_CHECKING
            import common.pkg.b
            from . import c
            from .d import thing
            if TYPE_CHECKING:
                from common.pkg import e
            else:
                import json
            class K:
                def method(self):
                    from ..pkg import f
            ADAPTERS = {"g": "common.pkg.g:Thing", "file": "data.json", "dotted": "not.ours"}
            """,
    }
    write_tree(tmp_path, tree)
    for name in "bcdefg":
        (tmp_path / "common" / "pkg" / f"{name}.py").write_text("thing = 1\n")
    modules = package_modules(tmp_path, "common")
    found = {
        (target, imp.scope)
        for imp in read_imports(modules["common.pkg.a"], "common.pkg.a")
        for target in [imp.target, *(f"{imp.target}.{n}" for n in imp.names)]
        if target in modules
    }
    assert found == {
        ("common.pkg.b", "module"),
        ("common.pkg", "module"),
        ("common.pkg.c", "module"),
        ("common.pkg.d", "module"),
        ("common.pkg", "type-checking"),
        ("common.pkg.e", "type-checking"),
        ("common.pkg", "function"),
        ("common.pkg.f", "function"),
        ("common.pkg.g", "dynamic"),
    }


# A tree with one of each fault, and imports that are allowed, to show both sides.
FAULTY = {
    "common/__init__.py": "",
    "common/core/__init__.py": "",
    # A cycle only through a function-level, relative import: a -> b at module level,
    # b -> a inside a function.
    "common/core/a.py": "from common.core import b\n",
    "common/core/b.py": "def later():\n    from . import a\n",
    # Lower imports higher, hidden under TYPE_CHECKING.
    "common/core/c.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from common.forecasting.model import Model\n"
    ),
    # Anything in common importing build tooling.
    "common/core/d.py": "def f():\n    import tools.generate\n",
    "common/storage/__init__.py": "from common.core import a\n",  # down: allowed
    "common/storage/x.py": "import common.warehouse.base\n",  # a peer in layer 1
    "common/warehouse/__init__.py": "",
    "common/warehouse/base.py": "import common\nfrom common.core.a import b\n",  # allowed
    "common/forecasting/__init__.py": "",
    "common/forecasting/model.py": "from common.storage import x\n",  # down: allowed
    "common/forecasting/report.py": "def f():\n    from common.core.gone import y\n",  # missing
    "common/stray.py": "",  # in no layer
    "functions/ingest/main.py": (
        "from common.core import a\n"
        "from common.ingest import job\n"
        "from common.forecasting.model import Model\n"  # not core, runtime or its own
    ),
    "common/ingest/__init__.py": "",
    "common/ingest/job.py": "from common.forecasting import model\n",  # down: allowed
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_check_reports_a_cycle_and_each_kind_of_violation(tmp_path):
    write_tree(tmp_path, FAULTY)
    found = layers.check(tmp_path)
    assert found.cycles == [
        [
            "common.core.a",
            "common.core.b [common/core/a.py:1 (module)]",
            "common.core.a [common/core/b.py:2 (function)]",
        ]
    ]
    assert sorted(found.violations) == sorted(
        [
            "common/core/c.py:3 (type-checking): common.core.c imports "
            "common.forecasting.model: layer 0 (common.core) imports layer 2 "
            "(common.forecasting)",
            "common/core/d.py:2 (function): common.core.d imports tools.generate, "
            "outside the package",
            "common/storage/x.py:1 (module): common.storage.x imports common.warehouse.base: "
            "peers in layer 1: common.storage imports common.warehouse",
            "common/forecasting/report.py:2 (function): common.forecasting.report imports "
            "common.core.gone, which does not exist",
            "common/stray.py: common.stray is in no layer of tools/layers.py",
            "functions/ingest/main.py:3 (module): ingest imports common.forecasting.model; "
            "a function imports only common.core, common.ingest, common.runtime",
        ]
    )
    assert found and found.lines()[0].startswith("cycle: common.core.a -> common.core.b")
