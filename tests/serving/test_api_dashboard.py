"""The dashboard in headless Chromium (Debian's, installed by `make install-dev`).

Served like `aircast serve` serves it, with a snapshot of three forecast locations: the page
must load with no failed request, no request leaving loopback, no script error, and one chart
per location plus the accuracy table. Set AIRCAST_SCREENSHOT=docs/dashboard.png to keep the
screenshot (that is how docs/dashboard.png was made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.api_fixtures import LOCATIONS, served_api

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a sandboxed root session on a closed network (no background connections).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_api(tmp_path_factory.mktemp("api-dashboard") / "home") as url:
        yield url


def test_dashboard_renders_one_chart_per_location(api_url: str, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: `make install-dev` installs Debian's chromium")
    failed: list[str] = []
    errors: list[str] = []
    api_host = urlsplit(api_url).netloc
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})

            def guard(route) -> None:  # nothing but the api itself: no CDN, no fonts
                if urlsplit(route.request.url).netloc == api_host:
                    route.continue_()
                else:
                    failed.append(f"off-site request {route.request.url}")
                    route.abort()

            page.route("**/*", guard)
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on(
                "response",
                lambda r: failed.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None,
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(api_url + "/", wait_until="networkidle")
            page.wait_for_selector("body[data-ready]", timeout=15_000)
            assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#meta")

            cards = page.locator(".card")
            assert cards.count() == len(LOCATIONS)
            shown = [cards.nth(i).get_attribute("data-location") for i in range(cards.count())]
            assert shown == list(LOCATIONS)
            for i in range(cards.count()):
                card = cards.nth(i)
                assert card.locator("svg.chart").count() == 1
                # observations, the p50 line and the p10-p90 band are all drawn
                assert card.locator("polyline.obs").count() == 1
                assert card.locator("polyline.yhat").count() == 1
                assert card.locator("polygon.band").count() == 1
                points = card.locator("polyline.yhat").get_attribute("points") or ""
                assert len(points.split()) == 24
            assert page.locator("#accuracy-table tr").count() == 1 + 24
            assert "Retired Station: not forecast" in page.inner_text("#charts")  # skipped

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert failed == []
    assert errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if keep := os.environ.get("AIRCAST_SCREENSHOT"):
        shutil.copyfile(shot, keep)
