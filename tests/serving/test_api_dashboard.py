"""The dashboard in headless Chromium (Debian's, installed by `make install-dev`).

Served like `aircast serve` serves it, with a snapshot of 2,003 forecast locations (three
named ones and 2,000 spread over the globe): the page must load with no failed request, no
request leaving loopback and no script error; draw every location on the map coloured by
its worst forecast category; find a location by search (keyboard only) and by a click on
the map; show its next 24 hours with category colours and the band, its past forecasts
against what was observed, and the model's accuracy beside persistence's, on nice axis
ticks; fit a phone's width; and pass axe-core (shipped in the axe-playwright-python wheel)
with no serious or critical violation at either width; and show the pipeline status panel
with the conditions stored at health/status.json (state spelt out, detail beside it).

Set AIRCAST_SCREENSHOTS=docs to keep docs/dashboard.png and docs/dashboard-phone.png.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, sync_playwright

from common.core.aqi import US_EPA
from common.forecasting.snapshot import snapshot_key
from common.monitoring import STATUS_KEY
from common.storage.local import LocalStore
from tests.api_fixtures import LOCATIONS, make_snapshot, served_api

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
MANY = LOCATIONS + tuple(f"site-{i:04d}" for i in range(2000))
COLORS = {c.color for c in US_EPA.categories}
# Conditions laid out as the monitor stores them (health/status.json); one warns, one alerts.
PIPELINE = {
    "status": "alert",
    "as_of": "2026-11-20T08:00:00Z",
    "conditions": [
        {"name": "freshness", "state": "ok", "detail": "all 2003 active locations within 3 h"},
        {"name": "runs", "state": "ok", "detail": "ingest, predict succeeded within 2 h"},
        {"name": "model_age", "state": "warn", "detail": "production v1 is 4.0 days old"},
        {"name": "rejected_share", "state": "ok", "detail": "largest share 0.01 (csv)"},
        {"name": "accuracy", "state": "ok", "detail": "v1 MAE / persistence 0.81"},
        {"name": "drift", "state": "alert", "detail": "largest PSI 1.2 (pm2_5)"},
        {"name": "snapshot", "state": "ok", "detail": "snapshot 0.2 h old"},
    ],
}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("api-dashboard") / "home"
    with served_api(home, make_snapshot(locations=MANY)) as url:
        LocalStore(home / "artifacts").put_json(STATUS_KEY, PIPELINE)
        yield url


def _open(pw, api_url: str, width: int, height: int, problems: list[str]) -> Page:
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    api_host = urlsplit(api_url).netloc

    def guard(route) -> None:  # nothing but the api itself: no CDN, no fonts, no tiles
        if urlsplit(route.request.url).netloc == api_host:
            route.continue_()
        else:
            problems.append(f"off-site request {route.request.url}")
            route.abort()

    page.route("**/*", guard)
    page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
    page.on(
        "response",
        lambda r: problems.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(api_url + "/", wait_until="networkidle")
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#meta")
    return page


def _serious(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _nice(labels: list[str]) -> bool:
    """Evenly spaced by 1, 2 or 5 x 10^k, each label a multiple of the step."""
    values = [float(s) for s in labels]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    if len(steps) != 1:
        return False
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    return round(mantissa, 6) in (1, 2, 5) and all(
        abs(v / step - round(v / step)) < 1e-6 for v in values
    )


def _texts(page: Page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def _keep(shot: Path, name: str) -> None:
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if folder := os.environ.get("AIRCAST_SCREENSHOTS"):
        shutil.copyfile(shot, Path(folder) / name)


def test_dashboard_desktop_map_search_charts_and_accessibility(api_url: str, tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: `make install-dev` installs Debian's chromium")
    problems: list[str] = []
    with sync_playwright() as pw:
        page = _open(pw, api_url, 1440, 1000, problems)
        # The map: every forecast location, coloured by a category of the scheme.
        dots = page.locator("#map circle.site")
        assert dots.count() == len(MANY)
        fills = page.eval_on_selector_all(
            "#map circle.site", "els => els.map(e => e.getAttribute('fill'))"
        )
        assert set(fills) <= COLORS and len(set(fills)) >= 2
        assert "locations by worst forecast category" in (
            page.get_attribute("#map", "aria-label") or ""
        )
        # Search among thousands, keyboard only: type, Enter picks the first match.
        page.focus("#search")
        page.keyboard.type("tiantan")
        assert page.locator("#results button").count() == 1
        page.keyboard.press("Enter")
        page.wait_for_selector('body[data-selected="beijing-tiantan"]', timeout=10_000)
        assert page.inner_text("#place") == "Beijing Tiantan"
        assert page.locator('circle.site.selected[data-location="beijing-tiantan"]').count() == 1
        # Next 24 h: median line, band, one category cell per hour, the worst hour's advice.
        chart = page.locator("#forecast-chart svg")
        assert len((chart.locator("polyline.yhat").get_attribute("points") or "").split()) == 24
        assert chart.locator("polygon.band").count() == 1
        cells = chart.locator("rect.cat-cell")
        assert cells.count() == 24
        cell_fills = page.eval_on_selector_all(
            "#forecast-chart rect.cat-cell", "els => els.map(e => e.getAttribute('fill'))"
        )
        assert set(cell_fills) <= COLORS
        badge = page.inner_text("#worst-badge")
        assert "AQI" in badge and any(c.name in badge for c in US_EPA.categories)
        assert any(c.statement in page.inner_text("#worst") for c in US_EPA.categories)
        # Readable ticks: nice numbers on the value axis, whole hours on the time axis.
        ticks = _texts(page, "#forecast-chart text.ytick")
        assert len(ticks) >= 3 and _nice(ticks), ticks
        assert all(
            t.endswith(":00") or t[0].isdigit() for t in _texts(page, "#forecast-chart text.xtick")
        )
        # Past forecasts against what was observed.
        past = page.locator("#hindcast-chart svg")
        assert past.locator("polyline.hindcast").count() >= 1
        assert past.locator("polyline.obs").count() >= 1
        assert "mean abs. error" in page.inner_text("#hindcast-chart")
        assert _nice(_texts(page, "#hindcast-chart text.ytick"))
        # The model's accuracy beside persistence's, by horizon.
        assert page.locator("#accuracy-table tbody tr").count() == 24
        assert "persistence MAE" in page.inner_text("#accuracy-table thead")
        # A click on the map picks that location.
        page.locator('circle.site[data-location="singapore-central"]').dispatch_event("click")
        page.wait_for_selector('body[data-selected="singapore-central"]', timeout=10_000)
        assert page.inner_text("#place") == "Singapore Central"
        # The pipeline status panel: the stored conditions, each with its state and detail,
        # opened because one alerts; the state is spelt out, not only coloured.
        page.wait_for_selector("#pipeline-status[data-state=alert]", timeout=10_000)
        assert page.get_attribute("#pipeline-status", "open") is not None
        assert "ALERT" in page.inner_text("#pipeline-h")
        for c in PIPELINE["conditions"]:
            name = c["name"]
            item = page.inner_text(f'#pipeline-conditions li[data-condition="{name}"]')
            state = "ALERT" if c["state"] == "alert" else c["state"]
            assert item.startswith(state) and c["name"] in item and c["detail"] in item, item
        assert _serious(page) == []
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        page.context.browser.close()
    assert problems == []
    _keep(shot, "dashboard.png")


def test_dashboard_phone_layout_and_accessibility(api_url: str, tmp_path: Path):
    problems: list[str] = []
    with sync_playwright() as pw:
        page = _open(pw, api_url, 390, 844, problems)
        page.wait_for_selector("body[data-selected]:not([data-selected=loading])")
        # One column, nothing wider than the screen.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        find = page.locator("section.panel").nth(0).bounding_box()
        detail = page.locator("#detail").bounding_box()
        assert find and detail and detail["y"] >= find["y"] + find["height"]
        assert page.locator("#forecast-chart svg").bounding_box()["width"] <= 390
        assert _serious(page) == []
        shot = tmp_path / "dashboard-phone.png"
        page.screenshot(path=str(shot), full_page=True)
        page.context.browser.close()
    assert problems == []
    _keep(shot, "dashboard-phone.png")


def test_dashboard_picks_among_several_targets(tmp_path: Path):
    """With AIRCAST_TARGETS the page offers a pollutant picker (labelled, keyboard-usable);
    a choice reloads every panel for that target; one target shows no picker (above)."""
    home = tmp_path / "home"
    pm10 = make_snapshot().model_copy(
        update={"target": "pm10", "model_name": "aircast-pm10", "model_version": "v-pm10"}
    )
    LocalStore(home / "artifacts").put(
        snapshot_key(0, 1, "pm10", "pm2_5"), pm10.model_dump_json().encode()
    )
    problems: list[str] = []
    with (
        served_api(home, settings={"AIRCAST_TARGETS": "pm2_5,pm10"}) as url,
        sync_playwright() as pw,
    ):
        page = _open(pw, url, 1200, 900, problems)
        page.wait_for_selector("#target-pick:not([hidden])", timeout=10_000)
        assert page.eval_on_selector_all("#target option", "os => os.map(o => o.value)") == [
            "pm2_5",
            "pm10",
        ]
        assert page.input_value("#target") == "pm2_5" and "pm2_5" in page.inner_text("#place-sub")
        page.select_option("#target", "pm10")
        page.wait_for_url("**/?target=pm10", timeout=10_000)
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        page.wait_for_selector("body[data-selected]:not([data-selected=loading])")
        assert "pm10" in page.inner_text("#place-sub") and "v-pm10" in page.inner_text("#meta")
        assert page.input_value("#target") == "pm10"
        assert _serious(page) == []
        page.context.browser.close()
    assert problems == []
