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
