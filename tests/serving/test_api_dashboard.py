"""The dashboard in headless Chromium (Debian's, installed by `make install-dev`).

Served like `aircast serve` serves it. Two networks: twelve real places (Beijing, Singapore,
Delhi, Berlin, ... with their coordinates and time zones; values synthetic), the page a
person opens; and 2,003 locations (three named, 2,000 spread over the globe), the page at
scale. Every page must load with no failed request, no request leaving loopback and no
script error, and pass axe-core (shipped in the axe-playwright-python wheel) with no
serious or critical violation, at a desktop's size and a phone's (390 x 844).

People first: the first screen shows the air quality now (the latest observed hour's index,
the api's `now`) as a number with its category, colour and advice, and the next 24 hours,
in the place's local time (UTC in each time's title); the map draws the countries (Natural
Earth, served by the api) with place labels visible without hover; a place is found by
city name (the api's gazetteer), by station name, by coordinates and "near me" (browser
geolocation), each going to the nearest forecast location; the URL names the place and the
pollutant, so a link opens the same view. Below: the forecast band, past forecasts against
what was observed, accuracy beside persistence, and the pipeline status, collapsed.

Set AIRCAST_SCREENSHOTS=docs to keep docs/dashboard.png and docs/dashboard-phone.png.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, sync_playwright

from common.core.aqi import US_EPA
from common.forecasting.snapshot import snapshot_key
from common.monitoring import STATUS_KEY
from common.storage.local import LocalStore
from tests.api_fixtures import LOCATIONS, PLACES, WORLD, make_snapshot, served_api

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
CATEGORIES = {c.name for c in US_EPA.categories}
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
TILE_PNG = bytes.fromhex(  # a 1x1 PNG, what a tile server answers in the tiles test
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a1e1bd3b0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("api-dashboard") / "home"
    with served_api(home, make_snapshot(locations=MANY)) as url:
        LocalStore(home / "artifacts").put_json(STATUS_KEY, PIPELINE)
        yield url


@pytest.fixture(scope="module")
def world_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("api-world") / "home"
    with served_api(home, make_snapshot(locations=WORLD)) as url:
        LocalStore(home / "artifacts").put_json(STATUS_KEY, PIPELINE)
        yield url


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _open(
    pw,
    api_url: str,
    width: int,
    height: int,
    problems: list[str],
    query: str = "",
    allow: dict[str, bytes] | None = None,
    **context: object,
) -> Page:
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    api_host = urlsplit(api_url).netloc

    def guard(route) -> None:  # nothing but the api itself: no CDN, no fonts, no tiles
        host = urlsplit(route.request.url).netloc
        if host == api_host:
            route.continue_()
        elif allow and host in allow:
            route.fulfill(status=200, body=allow[host], content_type="image/png")
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
    try:
        _goto(page, api_url + "/" + query)
    except Exception as exc:  # say what the page said, not only that it never got ready
        raise AssertionError(f"{exc}: {problems}") from exc
    return page


def _goto(page: Page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#meta")
    page.wait_for_selector("body[data-selected]:not([data-selected=loading])", timeout=10_000)


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


def _in_first_screen(page: Page, selector: str, height: int) -> None:
    box = page.locator(selector).first.bounding_box()
    assert box and box["height"] > 0 and box["y"] >= 0, (selector, box)
    assert box["y"] + box["height"] <= height, f"{selector} ends at {box['y'] + box['height']}"


def _air_now_is_shown(page: Page, api_url: str, location_id: str, height: int) -> dict:
    """The first screen shows the api's `now` for the place: number, category, colour."""
    fc = _get(f"{api_url}/v1/forecasts/{location_id}")
    now = fc["now"]
    assert page.inner_text("#now-aqi").split()[0] == str(now["aqi"])
    assert page.inner_text("#now-category") == now["category"] and now["category"] in CATEGORIES
    background = page.eval_on_selector("#now-card", "e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(now["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert background == f"rgb({r}, {g}, {b})"
    statement = page.inner_text("#now-statement")
    assert statement and (now["statement"] in statement or now["statement"] == "None.")
    for selector in ("#place", "#now-aqi", "#now-category", "#now-when", "#hours"):
        _in_first_screen(page, selector, height)
    # The next 24 hours: one cell per hour, its index in the category's colour.
    cells = page.locator("#hours li")
    assert cells.count() == 24
    assert _texts(page, "#hours li .v") == [str(p["aqi"]) for p in fc["points"][:24]]
    return fc


def _local(utc_iso: str, offset_min: int) -> str:
    """HH:MM of a UTC time at a fixed offset from UTC (the zones here keep one in November)."""
    minutes = (int(utc_iso[11:13]) * 60 + int(utc_iso[14:16]) + offset_min) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local_times_are_the_places(page: Page, fc: dict, offset_min: int) -> None:
    """Times read in the place's zone; each <time> keeps the UTC instant (datetime, title)."""
    when = page.locator("#now-when time")
    iso = when.get_attribute("datetime") or ""
    ts = fc["now"]["ts"]
    assert iso.startswith(ts[:16]), (iso, ts)
    assert when.inner_text().startswith(_local(ts, offset_min)), when.inner_text()
    assert when.get_attribute("title") == f"{ts[:10]} {ts[11:16]} UTC"
    first = page.locator("#hours li").first
    title = first.get_attribute("title") or ""
    target = fc["points"][0]["target_ts"]
    assert title.startswith(_local(target, offset_min)), title
    assert f"{target[:10]} {target[11:16]} UTC" in title, title
    assert page.locator("#worst-badge time").count() == 1


def _labels_are_visible(page: Page, at_least: int) -> list[str]:
    """Place names drawn on the map (no hover needed), inside it and not overlapping."""
    page.locator("#map").scroll_into_view_if_needed()
    box = page.eval_on_selector(
        "#map",
        "e => { const r = e.getBoundingClientRect();"
        " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; }",
    )
    labels = page.locator("#map text.label[data-location]")
    assert labels.count() >= at_least, labels.count()
    boxes = []
    for i in range(labels.count()):
        label = labels.nth(i)
        assert label.is_visible()
        b = label.evaluate(  # the glyphs' box (Playwright's box also counts the white halo)
            "e => { const r = e.getBoundingClientRect();"
            " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; }"
        )
        assert b and box
        assert box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
        assert box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"] + 1
        boxes.append(b)
    for a, b in itertools.combinations(boxes, 2):
        apart = (
            a["x"] + a["width"] <= b["x"] + 1
            or b["x"] + b["width"] <= a["x"] + 1
            or a["y"] + a["height"] <= b["y"] + 2
            or b["y"] + b["height"] <= a["y"] + 2
        )
        assert apart, (a, b)
    return _texts(page, "#map text.label[data-location]")


def _search(page: Page, text: str, expect: str) -> None:
    """Type into the search box, wait for a result leading to `expect`, press Enter."""
    page.fill("#search", "")
    page.focus("#search")
    page.keyboard.type(text)
    page.wait_for_selector(f'#results button[data-location="{expect}"]', timeout=10_000)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'body[data-selected="{expect}"]', timeout=10_000)


def test_dashboard_people_first_on_a_desktop(world_url: str, tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: `make install-dev` installs Debian's chromium")
    problems: list[str] = []
    with sync_playwright() as pw:
        page = _open(pw, world_url, 1440, 1000, problems, "?place=beijing-tiantan")
        assert page.inner_text("#place") == "Beijing Tiantan"
        fc = _air_now_is_shown(page, world_url, "beijing-tiantan", 1000)
        _local_times_are_the_places(page, fc, offset_min=8 * 60)  # Asia/Shanghai
        assert "Asia/Shanghai" in page.inner_text("#place-where")
        # The map: countries and coastlines, every place, labels without hover, the selected
        # place's among them; the network's extent fills the map.
        assert len(page.get_attribute("#geography path.land", "d") or "") > 10_000
        assert len(page.get_attribute("#geography path.coast", "d") or "") > 1_000
        assert page.locator("#map circle.site").count() == len(WORLD)
        names = _labels_are_visible(page, at_least=8)
        assert "Beijing Tiantan" in names and "Los Angeles Downtown" in names
        assert page.locator('#map text.label.selected[data-location="beijing-tiantan"]').count()
        # Find a place by city (the gazetteer, then the nearest forecast location) ...
        _search(page, "Berlin", "berlin-mitte")
        assert page.inner_text("#place") == "Berlin Mitte"
        assert page.locator('#map text.label.selected[data-location="berlin-mitte"]').count()
        _search(page, "Los Angeles", "los-angeles-downtown")
        fc = _air_now_is_shown(page, world_url, "los-angeles-downtown", 1000)
        _local_times_are_the_places(page, fc, offset_min=-8 * 60)  # America/Los_Angeles, PST
        # ... a city with no station of its name goes to the nearest (Munich -> Berlin), and
        # says how far that is ...
        _search(page, "Munich", "berlin-mitte")
        where = page.inner_text("#place-where")
        assert "nearest to Munich, Germany" in where and re.search(r"\d{3} km", where), where
        # ... and by coordinates.
        _search(page, "1.35, 103.82", "singapore-central")
        assert page.inner_text("#place") == "Singapore Central"
        assert re.search(r"\d+(\.\d)? km from 1\.35, 103\.82", page.inner_text("#place-where"))
        # The URL names the place; opened afresh it shows the same place.
        query = parse_qs(urlsplit(page.url).query)
        assert query["place"] == ["singapore-central"]
        _goto(page, page.url)
        assert page.get_attribute("body", "data-selected") == "singapore-central"
        assert page.inner_text("#place") == "Singapore Central"
        # Below the air now: the pipeline status, collapsed, its state spelt out.
        page.wait_for_selector("#pipeline-status[data-state=alert]", timeout=10_000)
        assert page.get_attribute("#pipeline-status", "open") is None
        assert "ALERT" in page.inner_text("#pipeline-h")
        assert page.locator("#pipeline-status").bounding_box()["y"] > 1000
        assert _serious(page) == []
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        page.context.browser.close()
    assert problems == []
    _keep(shot, "dashboard.png")


def test_dashboard_first_screen_on_a_phone(world_url: str, tmp_path: Path):
    problems: list[str] = []
    lat, lon, _ = PLACES["delhi-anand-vihar"]
    with sync_playwright() as pw:
        page = _open(
            pw,
            world_url,
            390,
            844,
            problems,
            geolocation={"latitude": lat + 0.05, "longitude": lon - 0.05},
            permissions=["geolocation"],
        )
        # One column, nothing wider than the screen; the air now and the next hours first.
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('body *'))"
            ".filter(e => e.getBoundingClientRect().right > 391)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)"
        )
        assert width <= 390, (width, wide)
        # "Near me": the browser's position -> the nearest forecast location, with distance.
        page.click("#near-me")
        page.wait_for_selector('body[data-selected="delhi-anand-vihar"]', timeout=10_000)
        assert re.search(r"\d+(\.\d)? km from you", page.inner_text("#place-where"))
        page.evaluate("window.scrollTo(0, 0)")
        fc = _air_now_is_shown(page, world_url, "delhi-anand-vihar", 844)
        _local_times_are_the_places(page, fc, offset_min=5 * 60 + 30)  # Asia/Kolkata
        assert page.locator("#forecast-chart svg").bounding_box()["width"] <= 390
        assert query_place(page.url) == "delhi-anand-vihar"
        shot = tmp_path / "dashboard-phone.png"
        page.screenshot(path=str(shot))  # the first screen, as a phone shows it
        _labels_are_visible(page, at_least=5)
        assert _serious(page) == []
        # Search works on a phone too (the results drop over the page), and so does a link.
        page.evaluate("window.scrollTo(0, 0)")
        _search(page, "Munich", "berlin-mitte")
        _search(page, "-33.9 151.2", "sydney-randwick")
        _air_now_is_shown(page, world_url, "sydney-randwick", 844)
        assert query_place(page.url) == "sydney-randwick"
        _goto(page, page.url)
        assert page.inner_text("#place") == "Sydney Randwick"
        page.context.browser.close()
    assert problems == []
    _keep(shot, "dashboard-phone.png")


def query_place(url: str) -> str:
    return parse_qs(urlsplit(url).query)["place"][0]


def test_dashboard_at_scale_map_search_charts_and_status(api_url: str):
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
        assert "locations coloured by air quality now" in (
            page.get_attribute("#map", "aria-label") or ""
        )
        assert 10 <= len(_labels_are_visible(page, at_least=10)) <= 40
        # Search among thousands, keyboard only: type, Enter picks the first match.
        page.focus("#search")
        page.keyboard.type("tiantan")
        page.wait_for_selector('#results button[data-location="beijing-tiantan"]')
        page.keyboard.press("Enter")
        page.wait_for_selector('body[data-selected="beijing-tiantan"]', timeout=10_000)
        assert page.inner_text("#place") == "Beijing Tiantan"
        assert page.locator('circle.site.selected[data-location="beijing-tiantan"]').count() == 1
        # The examples: cities, each to its nearest forecast location.
        for city, lat, lon in (("Los Angeles", 34.052, -118.244), ("Berlin", 52.524, 13.411)):
            (near,) = _get(f"{api_url}/v1/locations?lat={lat}&lon={lon}&limit=1")["locations"]
            _search(page, city, near["location_id"])
            assert f"nearest to {city}" in page.inner_text("#place-where")
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
        # Readable ticks: nice numbers on the value axis, whole local hours (or a day) on time.
        ticks = _texts(page, "#forecast-chart text.ytick")
        assert len(ticks) >= 3 and _nice(ticks), ticks
        assert all(
            re.fullmatch(r"\d\d:00|[A-Z][a-z]{2} \d{1,2}", t)
            for t in page.eval_on_selector_all(  # the label, not its UTC <title>
                "#forecast-chart text.xtick", "els => els.map(e => e.firstChild.nodeValue)"
            )
        )
        assert all(t.endswith(" UTC") for t in _texts(page, "#forecast-chart text.xtick title"))
        # Past forecasts against what was observed.
        past = page.locator("#hindcast-chart svg")
        assert past.locator("polyline.hindcast").count() >= 1
        assert past.locator("polyline.obs").count() >= 1
        assert "mean abs. error" in page.inner_text("#hindcast-chart")
        assert _nice(_texts(page, "#hindcast-chart text.ytick"))
        # The model's accuracy beside persistence's, by horizon.
        assert page.locator("#accuracy-table tbody tr").count() == 24
        assert "persistence MAE" in page.inner_text("#accuracy-table thead")
        assert "CAMS MAE" in page.inner_text("#accuracy-table thead")  # aircast vs CAMS
        # A click on the map picks that location.
        page.locator('circle.site[data-location="singapore-central"]').dispatch_event("click")
        page.wait_for_selector('body[data-selected="singapore-central"]', timeout=10_000)
        assert page.inner_text("#place") == "Singapore Central"
        # The pipeline status panel: collapsed; opened, the stored conditions, each with its
        # state spelt out (not only coloured) and its detail.
        page.wait_for_selector("#pipeline-status[data-state=alert]", timeout=10_000)
        page.click("#pipeline-h")
        for c in PIPELINE["conditions"]:
            name = c["name"]
            item = page.inner_text(f'#pipeline-conditions li[data-condition="{name}"]')
            state = "ALERT" if c["state"] == "alert" else c["state"]
            assert item.startswith(state) and c["name"] in item and c["detail"] in item, item
        assert _serious(page) == []
        page.context.browser.close()
    assert problems == []


def test_dashboard_street_tiles_only_when_asked(world_url: str):
    """The page never leaves its api unless the street map is ticked; then it asks
    OpenStreetMap's tile server for the tiles under the map's extent (here answered by the
    test), and the outlines and places stay drawn on top."""
    problems: list[str] = []
    with sync_playwright() as pw:
        page = _open(
            pw, world_url, 1200, 900, problems, "?place=berlin-mitte",
            allow={"tile.openstreetmap.org": TILE_PNG},
        )  # fmt: skip
        assert not page.is_checked("#tiles")
        assert page.locator("#tile-layer image").count() == 0
        page.check("#tiles")
        page.wait_for_selector("#tile-layer image")
        hrefs = page.eval_on_selector_all(
            "#tile-layer image", "els => els.map(e => e.getAttribute('href'))"
        )
        assert hrefs and all(
            re.fullmatch(r"https://tile\.openstreetmap\.org/\d+/\d+/\d+\.png", h) for h in hrefs
        )
        assert "OpenStreetMap contributors" in page.text_content("#tile-layer")
        order = page.eval_on_selector("#map", "m => [...m.children].map(c => c.id)")
        assert order.index("tile-layer") < order.index("geography") < order.index("sites")
        page.uncheck("#tiles")
        assert page.locator("#tile-layer image").count() == 0
        page.context.browser.close()
    assert problems == []


def test_dashboard_picks_among_several_targets(tmp_path: Path):
    """With AIRCAST_TARGETS the page offers a pollutant picker (labelled, keyboard-usable);
    a choice reloads every panel for that target and the URL keeps the place and the
    pollutant; one target shows no picker (above)."""
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
        page = _open(pw, url, 1200, 900, problems, "?place=beijing-dongsi")
        page.wait_for_selector("#target-pick:not([hidden])", timeout=10_000)
        assert page.eval_on_selector_all("#target option", "os => os.map(o => o.value)") == [
            "pm2_5",
            "pm10",
        ]
        assert page.input_value("#target") == "pm2_5" and "pm2_5" in page.inner_text("#place-sub")
        page.select_option("#target", "pm10")
        page.wait_for_url(re.compile(r"target=pm10"), timeout=10_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        page.wait_for_selector("body[data-selected]:not([data-selected=loading])")
        assert "pm10" in page.inner_text("#place-sub") and "v-pm10" in page.inner_text("#meta")
        assert page.input_value("#target") == "pm10"
        query = parse_qs(urlsplit(page.url).query)
        assert query == {"place": ["beijing-dongsi"], "target": ["pm10"]}
        # The shared link opens the same place and pollutant.
        _goto(page, page.url)
        assert page.get_attribute("body", "data-selected") == "beijing-dongsi"
        assert page.input_value("#target") == "pm10" and "PM10" in page.inner_text("#now-when")
        assert _serious(page) == []
        page.context.browser.close()
    assert problems == []


def test_dashboard_map_follows_a_turned_phone(world_url: str):
    """Turned sideways, the map is redrawn at the new width, its labels still inside it."""
    problems: list[str] = []
    with sync_playwright() as pw:
        page = _open(pw, world_url, 390, 844, problems, "?place=tokyo-shinjuku")
        before = page.get_attribute("#map", "viewBox")
        page.set_viewport_size({"width": 844, "height": 390})
        page.wait_for_function(
            f"document.querySelector('#map').getAttribute('viewBox') !== {before!r}"
        )
        width = int((page.get_attribute("#map", "viewBox") or "").split()[2])
        wrap = page.evaluate("document.getElementById('map-wrap').clientWidth")
        assert width == wrap and width != int(before.split()[2]), (width, wrap, before)
        assert "Tokyo Shinjuku" in _labels_are_visible(page, at_least=5)
        page.context.browser.close()
    assert problems == []
