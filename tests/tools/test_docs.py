"""The docs cannot drift: the generated settings table, links (and sections) that resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.core.config import Settings
from tools import docs

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]*)(#[^)\s]*)?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """The fragments GitHub gives headings: lower case, punctuation dropped, spaces to -."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.splitlines()
        if line.startswith("#")
    }


def test_settings_table_is_generated_from_the_settings() -> None:
    committed = docs.CONFIGURATION.read_text(encoding="utf-8")
    assert docs.render(committed) == committed, "run `make generate`"
    for name, info in Settings.model_fields.items():
        assert f"`{docs.env_names(name, info)[0]}`" in committed
        assert info.description, f"setting {name} has no description for the docs"


def test_render_replaces_a_stale_table() -> None:
    stale = f"intro\n{docs.START}\n| old | table |\n{docs.END}\noutro\n"
    fresh = docs.render(stale)
    assert "| old | table |" not in fresh
    assert "`AIRCAST_BACKEND`" in fresh
    assert fresh.startswith("intro\n") and fresh.endswith("outro\n")
    with pytest.raises(ValueError, match="markers"):
        docs.render("no markers here")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = [
        target
        for target, _ in LINK.findall(page.read_text(encoding="utf-8"))
        if target
        and "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert not broken, f"{page.name} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_section_links_name_a_heading(page: Path) -> None:
    """A renamed or moved section breaks `page.md#section` links silently; this catches it."""
    broken = [
        target + fragment
        for target, fragment in LINK.findall(page.read_text(encoding="utf-8"))
        if fragment
        and "://" not in target
        and (page.parent / target).suffix in (".md", "")
        and fragment[1:] not in anchors(page.parent / target if target else page)
    ]
    assert not broken, f"{page.name} links to missing sections: {broken}"


def test_readme_reads_in_five_minutes() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.split()) < 1200, "reference material belongs in docs/"
    assert "make demo" in text and "make test" in text


ARCHITECTURE = ROOT / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"^(common(?:\.\w+)+)(?:\(.*\))?$")
PATH = re.compile(r"^((?:common|functions|tools|tests|bench)/[\w/.-]+\.(?:py|html|toml))$")
CALL = re.compile(r"^(?:[\w.]+\.)?(\w+)\(.*\)?$")
CLASS = re.compile(r"^[A-Z][a-z]+[A-Z]\w*$")  # CamelCase: one of our classes, by name


def defined_names() -> set[str]:
    """Every function and class defined in common/, functions/, tools/ and tests/."""
    import ast

    names: set[str] = set()
    for root in ("common", "functions", "tools", "tests"):
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
    return names


def resolves(dotted: str) -> bool:
    """`common.a.b.C.d`: the longest importable module, then attributes down the rest."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_architecture_docs_code_references_exist() -> None:
    """Every `common.x.y`, `common/x/y.py` and function or class name the architecture doc
    cites exists, so a rename or a cut that leaves the doc behind fails here."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    names = defined_names()
    missing = []
    cited = 0
    for ref in TICKED.findall(text):
        ref = ref.strip()
        if "<" in ref or "..." in ref or "…" in ref:  # a pattern (`common/<name>/job.py`)
            continue
        if m := DOTTED.match(ref):
            cited += 1
            missing += [] if resolves(m.group(1)) else [ref]
        elif m := PATH.match(ref):
            cited += 1
            missing += [] if (ROOT / m.group(1)).exists() else [ref]
        elif (m := CALL.match(ref)) or (
            m := re.match(r"^(\w+)$", ref) if CLASS.match(ref) else None
        ):
            cited += 1
            missing += [] if m.group(1) in names else [ref]
    assert cited > 50  # the doc does cite the code
    assert not missing, f"docs/architecture.md cites what does not exist: {missing}"
