"""Synthetic source: plausible hourly air quality and weather, offline and deterministic.

Every value is a pure function of (seed, location, hour): random numbers come from a
counter-based hash, and slow processes (weather systems, pollution episodes) are value
noise with hashed knots. So any window, fetched in any order or twice, gives the same
numbers, which is what makes `make demo`, replays and the end-to-end tests reproducible.

The physics is cartoonish but has the structure a forecaster can learn: daily and weekly
cycles in local time, wind dispersing and rain washing out particles, multi-day episodes,
missing hours, and hours published late (visible only to runs with a later as_of). It also
issues weather forecasts (truth plus error growing with lead) and CAMS-like air-quality
forecasts (truth with a per-location bias and noise growing with lead).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo

import numpy as np
import pandas as pd

from common.core.meteo import dew_point
from common.sources.base import Batch, Location, Source, Window

FORECAST_HOURS = 48
LATE_SHARE = 1 / 12  # hours published late (1-3 h), for the overlap of scheduled runs
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread uint64 hash of each element."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _stream(*parts: object) -> np.uint64:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def uniform(key: np.uint64, idx: np.ndarray) -> np.ndarray:
    """U[0,1) for each integer index, for the stream `key`."""
    with np.errstate(over="ignore"):
        x = _mix(idx.astype(np.int64).astype(np.uint64) * _GOLDEN + key)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def smooth(key: np.uint64, hours: np.ndarray, period: float) -> np.ndarray:
    """Value noise in [0, 1): hashed knots every `period` hours, smoothstep between."""
    pos = hours / period
    k0 = np.floor(pos)
    f = pos - k0
    f = f * f * (3 - 2 * f)
    return (1 - f) * uniform(key, k0) + f * uniform(key, k0 + 1)


class SyntheticSource(Source):
    name = "synthetic"
    keeps_past_forecasts = True  # a pure function: its forecasts can be issued again
    ISSUE_EVERY = 6  # hours between the past issues it re-creates (a 6-hourly model)

    def fetch(self, locations: list[Location], window: Window) -> Batch:
        end = min(window.end, window.as_of)
        hours = pd.date_range(window.start, end, freq="h", tz="UTC")
        frames, forecasts, cams = [], [], []
        for loc in locations:
            obs = self.series(loc, hours)
            obs = obs[obs["ts"] + self.report_delay(loc, obs["ts"]) <= window.as_of]
            frames.append(obs.assign(payload=None))
            if window.live:
                forecasts.append(self.weather_forecast(loc, window.as_of))
                cams.append(self.cams_forecast(loc, window.as_of))
        batch = Batch()
        if frames:
            batch.observations = pd.concat(frames, ignore_index=True)
        if forecasts:
            batch.weather_forecasts = pd.concat(forecasts, ignore_index=True)
            batch.air_quality_forecasts = pd.concat(cams, ignore_index=True)
        return batch

    def past_forecasts(self, locations: list[Location], window: Window, horizon: int) -> Batch:
        """The weather and CAMS-like forecasts it issued every ISSUE_EVERY hours before and
        during the window (exactly as a live run would have kept them), for its hours."""
        step = self.ISSUE_EVERY
        first = pd.Timestamp(window.start).floor(f"{step}h") - pd.Timedelta(hours=FORECAST_HOURS)
        issues = pd.date_range(first, window.end, freq=f"{step}h")
        issues = issues[issues <= pd.Timestamp(window.as_of)]
        lo, hi = pd.Timestamp(window.start), pd.Timestamp(window.end)
        weather, cams = [], []
        for loc in locations:
            w = self.weather_forecasts(loc, issues)
            c = self.cams_forecasts(loc, issues)
            weather.append(w[(w["ts"] >= lo) & (w["ts"] <= hi)].assign(kind="as-issued"))
            cams.append(c[(c["ts"] >= lo) & (c["ts"] <= hi)])
        batch = Batch()
        if weather:
            batch.weather_forecasts = pd.concat(weather, ignore_index=True)
            batch.air_quality_forecasts = pd.concat(cams, ignore_index=True)
        return batch

    # -- the generator ------------------------------------------------------------------
    def _key(self, loc: Location, name: str) -> np.uint64:
        return _stream(self.settings.synthetic_seed, loc.location_id, name)

    def weather(self, loc: Location, ts: pd.DatetimeIndex) -> pd.DataFrame:
        """True weather at `ts` (UTC hours)."""
        h = (ts.as_unit("s").asi8 // 3600).astype(np.float64)
        k = lambda name: self._key(loc, name)  # noqa: E731
        local = ts.tz_convert(zoneinfo.ZoneInfo(loc.timezone))
        lh = local.hour.to_numpy() + local.minute.to_numpy() / 60
        doy = local.day_of_year.to_numpy()
        lat = loc.latitude or 0.0
        season = np.cos(2 * np.pi * (doy - 200) / 365.25) * (1 if lat >= 0 else -1)
        climate = 27 - 0.35 * abs(lat)
        temp = (
            climate
            + (0.3 * abs(lat)) * season
            + 4.5 * np.sin(2 * np.pi * (lh - 9) / 24)
            + 6 * (smooth(k("temp"), h, 72) - 0.5)
        )
        storm = smooth(k("storm"), h, 10)
        rain = np.clip(storm - 0.78, 0, None) * 45 * (0.6 + 0.8 * uniform(k("rain"), h))
        wind = 4 + 26 * smooth(k("wind"), h, 16) ** 2 + 6 * smooth(k("gust"), h, 3) + 12 * storm**4
        direction = (360 * smooth(k("dir"), h, 30) + 40 * (uniform(k("dirn"), h) - 0.5)) % 360
        rh = np.clip(45 + 35 * storm + 12 * np.cos(2 * np.pi * (lh - 5) / 24), 8, 100)
        pressure = 1012 + 18 * (smooth(k("pres"), h, 60) - 0.5) - 8 * storm
        dew = dew_point(temp, rh)
        return pd.DataFrame(
            {
                "temperature_2m": temp.round(1),
                "relative_humidity_2m": rh.round(0),
                "dew_point_2m": dew.round(1),
                "precipitation": rain.round(1),
                "surface_pressure": pressure.round(1),
                "wind_speed_10m": wind.round(1),
                "wind_direction_10m": direction.round(0),
            }
        )

    def series(self, loc: Location, ts: pd.DatetimeIndex, gaps: bool = True) -> pd.DataFrame:
        """Observations at `ts`, with the source's gaps (missing hours) already applied
        (`gaps=False`: every hour, the truth a model forecasts)."""
        h = (ts.as_unit("s").asi8 // 3600).astype(np.float64)
        k = lambda name: self._key(loc, name)  # noqa: E731
        w = self.weather(loc, ts)
        local = ts.tz_convert(zoneinfo.ZoneInfo(loc.timezone))
        lh = local.hour.to_numpy()
        dow = local.day_of_week.to_numpy()
        base = 12 + 50 * uniform(k("base"), np.zeros(1))[0]
        episode = np.exp(
            1.6 * (smooth(k("episode"), h, 70) - 0.5) + 0.8 * (smooth(k("ep2"), h, 20) - 0.5)
        )
        traffic = (
            1 + 0.35 * np.exp(-(((lh - 8) / 2.0) ** 2)) + 0.45 * np.exp(-(((lh - 19) / 2.5) ** 2))
        )
        night = 1 + 0.25 * np.exp(-(((lh - 2) / 3.0) ** 2))  # shallow boundary layer
        weekly = np.where(dow >= 5, 0.82, 1.0)
        dispersion = 1 / (1 + (w["wind_speed_10m"].to_numpy() / 14) ** 1.3)
        rain_6h = sum(
            self.weather(loc, ts - pd.Timedelta(hours=i))["precipitation"].to_numpy()
            for i in range(6)
        )
        washout = np.exp(-0.08 * rain_6h)
        noise = np.exp(
            0.18 * (smooth(k("noise"), h, 2) - 0.5) + 0.12 * (uniform(k("jitter"), h) - 0.5)
        )
        pm25 = (
            base * episode * traffic * night * weekly * (0.35 + 1.3 * dispersion) * washout * noise
        )
        sun = np.clip(np.sin(np.pi * (lh - 6) / 14), 0, None)
        no2 = (15 + 35 * traffic * (0.4 + dispersion)) * noise
        ozone = np.clip(
            25 + 90 * sun * (0.5 + w["temperature_2m"].to_numpy() / 40) - 0.4 * no2, 2, None
        )
        out = pd.DataFrame(
            {
                "location_id": loc.location_id,
                "ts": ts,
                "pm2_5": pm25.round(1),
                "pm10": (pm25 * (1.35 + 0.5 * smooth(k("coarse"), h, 24))).round(1),
                "nitrogen_dioxide": no2.round(1),
                "ozone": ozone.round(1),
                "sulphur_dioxide": (3 + 0.12 * pm25 * (0.5 + uniform(k("so2"), h))).round(1),
                "carbon_monoxide": (200 + 9 * pm25 + 60 * traffic).round(0),
                **{c: w[c].to_numpy() for c in w.columns},
            }
        )
        if not gaps:
            return out
        gap = (uniform(k("gap"), h) < 0.015) | (smooth(k("outage"), h, 150) > 0.985)
        out = out[~gap].reset_index(drop=True)
        dropout = uniform(k("dropout"), (h[~gap] * 7).astype(np.int64)) < 0.01
        out.loc[dropout, "pm2_5"] = np.nan  # a sensor hiccup: one value missing
        return out

    def report_delay(self, loc: Location, ts: pd.Series) -> pd.Series:
        """How late each hour is published: most at once, about 1 in 12 one to three hours
        late. The value never changes; only when a run (by its as_of) can first see it, so
        the scheduled runs' overlap has late data to catch, as with real feeds."""
        h = (pd.DatetimeIndex(ts).as_unit("s").asi8 // 3600).astype(np.float64)
        late = uniform(self._key(loc, "late"), h) < LATE_SHARE
        hours = 1 + np.floor(3 * uniform(self._key(loc, "delay"), h))
        return pd.Series(pd.to_timedelta(np.where(late, hours, 0), unit="h"), index=ts.index)

    def weather_forecast(self, loc: Location, issued_at: dt.datetime) -> pd.DataFrame:
        """Forecast of the next FORECAST_HOURS hours: truth plus error growing with lead."""
        return self.weather_forecasts(loc, pd.DatetimeIndex([pd.Timestamp(issued_at)]))

    def weather_forecasts(self, loc: Location, issues: pd.DatetimeIndex) -> pd.DataFrame:
        """`weather_forecast` of each issue time at once (the same numbers, vectorised)."""
        ts, lead, idx = self._leads(issues)
        truth = self.weather(loc, ts)
        err = lambda name: uniform(self._key(loc, f"fc-{name}"), idx) - 0.5  # noqa: E731
        scale = np.sqrt(lead / 24)
        fc = truth.copy()
        fc["temperature_2m"] = (truth["temperature_2m"] + 3 * scale * err("t")).round(1)
        fc["wind_speed_10m"] = np.clip(
            truth["wind_speed_10m"] * (1 + 0.6 * scale * err("w")), 0, None
        ).round(1)
        fc["precipitation"] = np.clip(truth["precipitation"] + 2 * scale * err("p"), 0, None).round(
            1
        )
        fc["relative_humidity_2m"] = np.clip(
            truth["relative_humidity_2m"] + 12 * scale * err("h"), 1, 100
        ).round(0)
        fc["surface_pressure"] = (truth["surface_pressure"] + 4 * scale * err("s")).round(1)
        fc["wind_direction_10m"] = (
            (truth["wind_direction_10m"] + 60 * scale * err("d")) % 360
        ).round(0)
        fc["dew_point_2m"] = dew_point(fc["temperature_2m"], fc["relative_humidity_2m"]).round(1)
        issued = np.repeat(issues.tz_convert("UTC"), FORECAST_HOURS)
        return fc.assign(location_id=loc.location_id, issued_at=issued, ts=ts)

    def cams_forecast(self, loc: Location, issued_at: dt.datetime) -> pd.DataFrame:
        """A CAMS-like forecast of the pollutants for the next FORECAST_HOURS hours: the
        true values (the source's gaps do not hide them from a model) times a per-location
        bias in [0.7, 1.4] and a log-normal error growing with lead (a coarse model: right
        on the weather-driven swings, wrong on the local level)."""
        return self.cams_forecasts(loc, pd.DatetimeIndex([pd.Timestamp(issued_at)]))

    def cams_forecasts(self, loc: Location, issues: pd.DatetimeIndex) -> pd.DataFrame:
        """`cams_forecast` of each issue time at once (the same numbers, vectorised)."""
        ts, lead, idx = self._leads(issues)
        hours = ts.unique()
        truth = self._truth(loc, hours).reindex(ts)
        bias = 0.7 + 0.7 * uniform(self._key(loc, "cams-bias"), np.zeros(1))[0]
        out = pd.DataFrame({"location_id": loc.location_id, "ts": ts})
        for p in ("pm2_5", "pm10", "nitrogen_dioxide", "ozone", "sulphur_dioxide"):
            noise = uniform(self._key(loc, f"cams-{p}"), idx) - 0.5
            factor = bias * np.exp((0.25 + 0.25 * lead / 24) * 2 * noise)
            out[p] = (truth[p].to_numpy() * factor).round(1)
        out["carbon_monoxide"] = truth["carbon_monoxide"].to_numpy().round(0)
        issued = np.repeat(issues.tz_convert("UTC"), FORECAST_HOURS)
        return out.assign(issued_at=issued, provider="cams-synthetic")

    @staticmethod
    def _leads(issues: pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
        """Each issue's FORECAST_HOURS target hours (flat), their lead, and the counter the
        errors are hashed from (issue hour x 1000 + lead)."""
        issue_h = issues.tz_convert("UTC").as_unit("s").asi8 // 3600
        lead = np.tile(np.arange(1, FORECAST_HOURS + 1, dtype=np.float64), len(issues))
        base = np.repeat(issue_h, FORECAST_HOURS)
        ts = pd.DatetimeIndex(
            pd.to_datetime((base + lead).astype(np.int64) * 3600, unit="s", utc=True)
        )
        return ts, lead, base * 1000 + lead

    def _truth(self, loc: Location, ts: pd.DatetimeIndex) -> pd.DataFrame:
        """The pollutants at every hour of `ts` before the source's gaps (a pure function of
        the hour, so any window gives the same values)."""
        cols = ["pm2_5", "pm10", "nitrogen_dioxide", "ozone", "sulphur_dioxide", "carbon_monoxide"]
        return self.series(loc, ts, gaps=False).set_index("ts")[cols]
