"""The docs cannot drift: the generated settings table, links that resolve, a short README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.core.config import Settings
from tools import docs

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


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
        if "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_readme_reads_in_five_minutes() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.split()) < 1200, "reference material belongs in docs/"
    assert "make demo" in text and "make test" in text
