"""Function packages: each zip imports on its own with only its pinned requirements, and
the same sources give the same bytes (so Terraform redeploys only what changed)."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from common.scheduling.schedules import FUNCTIONS
from tests.terraform_hcl import entry_points
from tools import packaging
from tools.packaging import canonical

# Runs in a fresh interpreter: -I -S, so neither the repository, PYTHONPATH, the current
# folder nor the .pth files (the editable install's finder among them) are on the path.
IMPORT_MAIN = """
import importlib.abc, json, sys
folder, site_dirs, blocked, entry_point = json.loads(sys.argv[1])
sys.path[:] = [p for p in sys.path if "site-packages" not in p]
sys.path[:0] = [folder]
sys.path.extend(site_dirs)

class NotInRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name}: its distribution is not in requirements.txt")
        return None

sys.meta_path.insert(0, NotInRequirements())
import main, common
print(json.dumps({
    "main": main.__file__,
    "common": common.__file__,
    "entry_point_callable": callable(getattr(main, entry_point, None)),
}))
"""


def pinned_names(requirements: tuple[str, ...]) -> set[str]:
    return {canonical(line.split("==")[0]) for line in requirements}


def blocked_modules(allowed: set[str]) -> list[str]:
    """Top-level modules whose installed distributions are all outside `allowed`."""
    blocked = []
    for module, dists in md.packages_distributions().items():
        if module != "common" and not {canonical(d) for d in dists} & allowed:
            blocked.append(module)
    return sorted(blocked)


def import_in_fresh_interpreter(package: packaging.Package, folder: Path, entry_point: str):
    folder.mkdir()
    with zipfile.ZipFile(package.path) as zf:
        zf.extractall(folder)
    blocked = blocked_modules(pinned_names(package.requirements))
    args = json.dumps([str(folder), site.getsitepackages(), blocked, entry_point])
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_MAIN, args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, packaging.Package]:
    out = tmp_path_factory.mktemp("packages")
    return {p.function: p for p in packaging.build_all(out)}


def test_every_function_folder_is_packaged(packages):
    names = packaging.function_names()
    assert "ingest" in names and set(names) <= set(FUNCTIONS)
    assert sorted(packages) == names


def test_each_package_imports_alone_with_only_its_requirements(packages, tmp_path):
    """Unzipped alone, main imports and has the entry point Terraform deploys it with."""
    for name, package in packages.items():
        folder = tmp_path / name
        seen = import_in_fresh_interpreter(package, folder, entry_point=entry_points()[name])
        assert Path(seen["main"]).parent == folder, "main.py must sit at the zip root"
        assert Path(seen["common"]).parent == folder / "common", "common must come from the zip"
        assert seen["entry_point_callable"], f"{name}/main.py lacks {entry_points()[name]}()"


def test_package_layout_and_pins(packages):
    runtime = set(packaging.runtime_requirements())
    for name, package in packages.items():
        with zipfile.ZipFile(package.path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            requirements = zf.read("requirements.txt").decode().splitlines()
        assert names == sorted(names) == list(package.members)
        assert {"main.py", "requirements.txt", "common/__init__.py"} <= set(names)
        assert "common/runtime/locations.toml" in names  # package data of an imported package
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {i.date_time for i in infos} == {packaging.ZIP_DATE}
        assert {i.external_attr >> 16 for i in infos} == {packaging.FILE_MODE}
        pins = [line for line in requirements if not line.startswith("#")]
        assert pins == list(package.requirements) and all("==" in p for p in pins)
        for pin in pins:  # pinned to exactly what the tests run against
            dist, version = pin.split("==")
            assert md.version(dist) == version
        if name not in packaging.LIGHT_FUNCTIONS:
            assert runtime <= pinned_names(package.requirements)


def test_packages_carry_no_tooling(packages):
    """No CLI or demo, no build tools, no scheduler or local stack: no function imports them
    (functions import core, runtime and their own package; see tools/layers.py)."""
    for name, package in packages.items():
        tooling = [
            n
            for n in package.members
            if n.startswith(("common/ops/", "common/scheduling/", "tools/", "tests/"))
        ]
        assert not tooling, f"{name}.zip carries {tooling}"


def test_packages_carry_only_what_their_function_imports(packages):
    """Each job ships its own package and none of the others'; the dashboard travels with
    the api only."""
    own = {
        "ingest": "common/ingest/",
        "train": "common/train/",
        "predict": "common/predict/",
        "monitor": "common/monitoring/job.py",
    }
    for name, package in packages.items():
        for function, folder in own.items():
            carried = any(n.startswith(folder) for n in package.members)
            assert carried == (name == function), f"{name}.zip and {folder}"
        assert ("common/serving/dashboard.html" in package.members) == (name == "api")


def test_code_loaded_later_is_shipped(packages):
    """Lazily imported code must be in the zip though importing main.py does not load it:
    the api's /v1/predict model code (function-level imports) and every source adapter of
    ingest (imported by name when the source is chosen)."""
    api = set(packages["api"].members)
    assert {"common/serving/online.py", "common/forecasting/model.py"} <= api
    adapters = {
        p.relative_to(packaging.ROOT).as_posix()
        for p in (packaging.COMMON_DIR / "sources").glob("*.py")
    }
    assert len(adapters) > 3 and adapters <= set(packages["ingest"].members)


def test_a_function_reaching_operator_tooling_is_refused(tmp_path):
    functions = tmp_path / "functions"
    (functions / "api").mkdir(parents=True)
    (functions / "api" / "main.py").write_text(
        "def api(request):\n    from common.ops import cli\n    return cli.main()\n"
    )
    with pytest.raises(packaging.PackagingError, match=r"common\.ops\.cli"):
        packaging.build("api", tmp_path / "out", functions)


def test_two_builds_give_identical_bytes(tmp_path):
    functions = tmp_path / "functions"
    shutil.copytree(packaging.FUNCTIONS_DIR / "ingest", functions / "ingest")
    first = packaging.build("ingest", tmp_path / "a", functions)
    # What differs between checkouts must not reach the zip: mtimes and permission bits.
    main = functions / "ingest" / "main.py"
    os.utime(main, (1_900_000_000, 1_900_000_000))
    main.chmod(0o755)
    second = packaging.build("ingest", tmp_path / "b", functions)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_a_changed_source_changes_the_hash(tmp_path):
    functions = tmp_path / "functions"
    (functions / "ingest").mkdir(parents=True)
    source = (packaging.FUNCTIONS_DIR / "ingest" / "main.py").read_text()
    (functions / "ingest" / "main.py").write_text(source)
    before = packaging.build("ingest", tmp_path / "a", functions)
    (functions / "ingest" / "main.py").write_text(source + "\n# changed\n")
    after = packaging.build("ingest", tmp_path / "b", functions)
    assert before.sha256 != after.sha256


LIGHT_MAIN = """
import functions_framework
from flask import Request

from common.forecasting.snapshot import Snapshot
from common.storage import open_store


@functions_framework.http
def api(request: Request) -> tuple[dict, int]:
    return {"snapshot": Snapshot.__name__, "store": open_store.__name__}, 200
"""

LAZY_IMPORT = """

def later():
    from common.serving import online

    return online
"""


def test_a_stand_in_function_ships_its_closure(tmp_path):
    """A function-level import pulls in its module, the module's packages and their data."""
    functions = tmp_path / "functions"
    (functions / "api").mkdir(parents=True)
    (functions / "api" / "main.py").write_text(LIGHT_MAIN + LAZY_IMPORT)
    package = packaging.build("api", tmp_path / "out", functions)
    members = set(package.members)
    assert {
        "common/forecasting/snapshot.py",
        "common/storage/__init__.py",
        "common/serving/__init__.py",
        "common/serving/online.py",
        "common/serving/dashboard.html",
    } <= members
    assert not {"common/ingest/job.py", "common/runtime/runs.py"} & members


def test_light_function_gets_only_what_it_imports(tmp_path):
    """The api's requirements: the serving base, its module-level imports and those of the
    model code /v1/predict loads lazily; never the warehouse stack. Checked on a stand-in
    api so it holds whatever the real one imports."""
    functions = tmp_path / "functions"
    (functions / "api").mkdir(parents=True)
    (functions / "api" / "main.py").write_text(LIGHT_MAIN)
    package = packaging.build("api", tmp_path / "out", functions)
    names = pinned_names(package.requirements)
    assert {canonical(n) for n in packaging.LIGHT_BASE} <= names
    heavy = {"duckdb", "google-cloud-bigquery-storage", "sqlglot", "google-cloud-bigquery"}
    assert not names & heavy
    assert {"xgboost-cpu", "scikit-learn", "pandas"} <= names  # for /v1/predict, on first use
    seen = import_in_fresh_interpreter(package, tmp_path / "unzipped", entry_point="api")
    assert seen["entry_point_callable"]


def test_module_level_import_analysis_follows_common_but_not_function_bodies(tmp_path):
    main = tmp_path / "main.py"
    main.write_text(
        "from typing import TYPE_CHECKING\n"
        "import requests\n"
        "from common.core import errors\n"
        "if TYPE_CHECKING:\n    import xgboost\n"
        "def later():\n    import duckdb\n"
    )
    found = packaging.third_party_imports(main)
    assert "requests" in found
    assert not {"xgboost", "duckdb"} & found


def test_light_function_also_gets_what_it_loads_on_first_use(tmp_path, monkeypatch):
    """/v1/predict loads the model code lazily; its imports must be installed all the same."""
    functions = tmp_path / "functions"
    (functions / "api").mkdir(parents=True)
    (functions / "api" / "main.py").write_text(LIGHT_MAIN)
    monkeypatch.setitem(packaging.LAZY_MODULES, "api", ("common.runtime.runs", "common.not_yet"))
    names = pinned_names(packaging.requirements_for("api", functions))
    assert {"pandas", "numpy"} <= names  # common.runtime.runs imports pandas; pandas needs numpy
