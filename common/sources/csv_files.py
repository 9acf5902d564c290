"""CSV source: history that users own, from files.

Two formats, told apart by their header:

- The UCI "Beijing Multi-Site Air-Quality" files (one per station; Zhang et al. 2017,
  CC BY 4.0): local time (Beijing, UTC+8, no daylight saving) in year/month/day/hour,
  pollutants in µg/m³ (CO too), TEMP/DEWP °C, PRES hPa, RAIN mm, WSPM m/s, and `wd` as a
  16-point compass direction. Each station becomes a location `beijing-<station>`.
- A long format: `location_id,ts,<variable>,...` where `ts` is ISO-8601 (an offset, or
  UTC when none) and variable columns are named as the observation columns
  (`pm2_5`, `temperature_2m`, ...; units as in `common.core.schema`). Optional `name`,
  `latitude`, `longitude` and `timezone` columns describe the location.

Files are parsed once per process (keyed by path, size and mtime), so hourly replays over
the same files only filter in memory.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd

from common.core.config import Settings
from common.core.meteo import KMH_PER_MS, relative_humidity
from common.core.schema import VARIABLES
from common.sources.base import Batch, Location, Rejection, Source, Window, payload_text
from common.sources.http import SourceError

BEIJING_COLUMNS = [
    "No",
    "year",
    "month",
    "day",
    "hour",
    "PM2.5",
    "PM10",
    "SO2",
    "NO2",
    "CO",
    "O3",
    "TEMP",
    "PRES",
    "DEWP",
    "RAIN",
    "wd",
    "WSPM",
    "station",
]
BEIJING_UTC_OFFSET = pd.Timedelta(hours=8)
COMPASS = {
    name: i * 22.5
    for i, name in enumerate(
        [
            "N",
            "NNE",
            "NE",
            "ENE",
            "E",
            "ESE",
            "SE",
            "SSE",
            "S",
            "SSW",
            "SW",
            "WSW",
            "W",
            "WNW",
            "NW",
            "NNW",
        ]
    )
}
# Station positions (WGS84, 3 decimals, ~100 m) from the Beijing Municipal Environmental
# Monitoring Center's station list as published with the KDD Cup 2018 air-quality data
# (Beijing_AirQuality_Stations: dongsi_aq 116.417,39.929 ...; Changping is listed there as
# "pingchang_aq", 昌平镇). The UCI files themselves carry no coordinates.
BEIJING_STATIONS = {
    "Aotizhongxin": (39.982, 116.397),
    "Changping": (40.217, 116.230),
    "Dingling": (40.292, 116.220),
    "Dongsi": (39.929, 116.417),
    "Guanyuan": (39.929, 116.339),
    "Gucheng": (39.914, 116.184),
    "Huairou": (40.328, 116.628),
    "Nongzhanguan": (39.937, 116.461),
    "Shunyi": (40.127, 116.655),
    "Tiantan": (39.886, 116.407),
    "Wanliu": (39.987, 116.287),
    "Wanshouxigong": (39.878, 116.352),
}
LONG_META = ("name", "latitude", "longitude", "timezone")


def beijing_location_id(station: str) -> str:
    return "beijing-" + station.strip().lower()


class CsvSource(Source):
    name = "csv"
    needs_locations = False

    def __init__(self, settings: Settings, path: str | Path | None) -> None:
        super().__init__(settings)
        if not path:
            raise SourceError("the csv source needs a path (a .csv file or a folder of them)")
        self.root = configured_root(settings)
        self.path = Path(path)
        inside(self.root, self.path)  # before anything looks at the file
        if not self.path.exists():
            raise SourceError(f"{self.path} does not exist")
        self.files()  # a folder without CSV files is the caller's mistake: say so up front

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        # A symlink in the folder that leads out of the root is not ours to read.
        files = [f for f in sorted(self.path.glob("*.csv")) if _is_inside(self.root, f)]
        if not files:
            raise SourceError(f"no .csv files in {self.path}")
        return files

    def fetch(self, locations: list[Location], window: Window) -> Batch:
        wanted = {loc.location_id for loc in locations} or None
        batch = Batch()
        for file in self.files():
            stat = file.stat()
            try:
                parsed = _parse(str(file), stat.st_size, stat.st_mtime_ns)
            except SourceError as exc:
                batch.failed[file.name] = str(exc)
                continue
            batch.extend(_window(parsed, window, wanted))
        return batch


def configured_root(settings: Settings) -> Path:
    """AIRCAST_CSV_PATH: the one file or folder the csv source may read (a request's path
    must lie within it), so a caller cannot make ingest read the server's own files."""
    if settings.csv_path is None:
        raise SourceError(
            "the csv source reads only under AIRCAST_CSV_PATH, which is not set "
            "(on gcp, upload to gs://<bucket>/imports/ and pass that path)"
        )
    return settings.csv_path


def _is_inside(root: Path, path: Path) -> bool:
    """Whether `path`, symlinks and `..` resolved (no file opened), is `root` or under it."""
    real_root, real = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    return real == real_root or real_root in real.parents


def inside(root: Path, path: Path) -> None:
    """SourceError unless `path` lies within `root` (see `_is_inside`)."""
    if not _is_inside(root, path):
        raise SourceError(f"{path} is outside AIRCAST_CSV_PATH; the csv source reads only there")


def _window(parsed: Batch, window: Window, wanted: set[str] | None) -> Batch:
    obs = parsed.observations
    ts = obs["ts"]
    keep = ts.isna() | ((ts >= pd.Timestamp(window.start)) & (ts <= pd.Timestamp(window.end)))
    if wanted is not None:
        keep &= obs["location_id"].isin(wanted)
    locs = [loc for loc in parsed.locations if wanted is None or loc.location_id in wanted]
    return Batch(obs[keep].reset_index(drop=True), list(parsed.rejected), {}, locs)


@functools.lru_cache(maxsize=64)
def _parse(path: str, size: int, mtime_ns: int) -> Batch:
    """Parse one file (cached by path, size and mtime)."""
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"{os.path.basename(path)}: not a readable CSV ({exc})") from None
    if header == BEIJING_COLUMNS:
        return _parse_beijing(path)
    if {"location_id", "ts"} <= set(header):
        return _parse_long(path, header)
    raise SourceError(
        f"{os.path.basename(path)}: unknown CSV layout; expected the UCI Beijing columns or "
        "location_id,ts,<variables>"
    )


def _parse_beijing(path: str) -> Batch:
    raw = pd.read_csv(path, na_values=["NA", ""], keep_default_na=False, low_memory=False)
    local = pd.to_datetime(raw[["year", "month", "day", "hour"]], errors="coerce")
    ts = (local - BEIJING_UTC_OFFSET).dt.tz_localize("UTC")
    wd = raw["wd"].map(COMPASS)
    bad_wd = raw["wd"].notna() & wd.isna()
    temp = pd.to_numeric(raw["TEMP"], errors="coerce")
    dew = pd.to_numeric(raw["DEWP"], errors="coerce")
    obs = pd.DataFrame(
        {
            "location_id": raw["station"].astype(str).map(beijing_location_id),
            "ts": ts,
            "pm2_5": raw["PM2.5"],
            "pm10": raw["PM10"],
            "sulphur_dioxide": raw["SO2"],
            "nitrogen_dioxide": raw["NO2"],
            "carbon_monoxide": raw["CO"],
            "ozone": raw["O3"],
            "temperature_2m": raw["TEMP"],
            "dew_point_2m": raw["DEWP"],
            "relative_humidity_2m": relative_humidity(temp, dew).round(1),
            "surface_pressure": raw["PRES"],  # station pressure, taken as surface pressure
            "precipitation": raw["RAIN"],
            "wind_speed_10m": _scaled(raw["WSPM"], KMH_PER_MS),
            "wind_direction_10m": wd,
        }
    )
    obs["payload"] = None
    rejected = [
        Rejection(
            obs.at[i, "location_id"],
            obs.at[i, "ts"],
            f"unknown compass direction {raw.at[i, 'wd']!r}",
            payload_text(raw.loc[i].to_dict()),
        )
        for i in np.flatnonzero(bad_wd.to_numpy())
    ]
    unparsed = obs["ts"].isna()
    obs.loc[unparsed, "payload"] = [
        payload_text(raw.loc[i].to_dict()) for i in np.flatnonzero(unparsed)
    ]
    obs = obs[~bad_wd.to_numpy()].reset_index(drop=True)  # quarantined above, whole row
    locations = []
    for st in sorted(raw["station"].dropna().astype(str).unique()):
        lat, lon = BEIJING_STATIONS.get(st, (None, None))
        locations.append(
            Location(beijing_location_id(st), f"Beijing {st}", lat, lon, "csv", "Asia/Shanghai")
        )
    return Batch(obs, rejected, {}, locations)


def _parse_long(path: str, header: list[str]) -> Batch:
    unknown = [
        c for c in header if c not in VARIABLES and c not in ("location_id", "ts", *LONG_META)
    ]
    if unknown:
        raise SourceError(
            f"{os.path.basename(path)}: unknown columns {unknown}; variable columns must be "
            f"named as observation columns ({', '.join(list(VARIABLES)[:6])}, ...)"
        )
    raw = pd.read_csv(path, dtype={"location_id": "string", "ts": "string"}, low_memory=False)
    obs = raw[[c for c in header if c not in LONG_META]].copy()
    obs["location_id"] = obs["location_id"].astype("object")
    obs["ts"] = pd.to_datetime(raw["ts"], utc=True, errors="coerce", format="ISO8601")
    obs["payload"] = None
    unparsed = obs["ts"].isna()
    obs.loc[unparsed, "payload"] = [
        payload_text(raw.loc[i].to_dict()) for i in np.flatnonzero(unparsed)
    ]
    meta = raw.drop_duplicates("location_id", keep="last").set_index("location_id")
    locations = []
    for loc_id in meta.index.dropna():
        row = meta.loc[loc_id]
        get = lambda c, row=row: None if c not in meta.columns or pd.isna(row[c]) else row[c]  # noqa: E731
        locations.append(
            Location(
                str(loc_id),
                str(get("name") or loc_id),
                _float(get("latitude")),
                _float(get("longitude")),
                "csv",
                str(get("timezone") or "UTC"),
            )
        )
    return Batch(obs, [], {}, locations)


def _scaled(raw: pd.Series, factor: float) -> pd.Series:
    """Numbers times `factor`; text that is not a number stays as it was, for validation
    to quarantine with a reason instead of silently becoming missing."""
    num = pd.to_numeric(raw, errors="coerce")
    text = num.isna() & raw.notna()
    return (num * factor).astype(object).where(~text, raw) if text.any() else num * factor


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
