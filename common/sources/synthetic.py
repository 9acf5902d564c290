"""Synthetic source: hourly air quality and weather with the structure of real air, offline
and deterministic. Every value it returns is invented (the packaged places are real cities,
their numbers are not); the location names say "(synthetic)".

Every value is a pure function of (seed, location, hour): random numbers come from a
counter-based hash, slow processes are value noise with hashed knots, and the pollution
"memory" is a fixed-length sum over the hours before (never a recursion from where a fetch
happens to start). So any window, fetched in any order or twice, gives the same numbers,
which is what makes `make demo`, replays and the end-to-end tests reproducible.

What a forecaster can learn from it, as from real air:
- weather regimes: days of stagnant high pressure (light wind, dry, strong daily cycle of
  temperature) alternate with fronts (pressure drop, wind, rain);
- a box model of the air over the city: emissions (rush hours, less at weekends, heating
  when cold) build up a load that wind ventilates and rain washes out, so particle
  episodes build for days under a high and clear out when the front arrives;
- a shallow night-time boundary layer and a deep afternoon one, so surface values follow
  a daily cycle; ozone made in sunshine and warmth and eaten by traffic NO2 at night;
  coarse dust raised by dry wind;
- sensor noise, missing hours, outages, single missing values, and hours published late
  (visible only to runs with a later as_of);
- weather forecasts (the truth plus an error growing with lead) and CAMS-like air-quality
  forecasts (the truth with a per-location bias and noise growing with lead).
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
MEMORY = 96  # hours of emissions the air over a place still holds (the box model's memory)
# The packaged demo places, in the order of their real PM2.5 levels (other places get a
# hashed scale): relative emissions, not data.
EMISSION_SCALE = {
    "synth-delhi": 2.5,
    "synth-beijing": 1.4,
    "synth-sao-paulo": 0.5,
    "synth-los-angeles": 0.45,
    "synth-singapore": 0.35,
    "synth-berlin": 0.3,
}


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


def grid_h(ts: pd.DatetimeIndex) -> np.ndarray:
    """Hours since the epoch, as floats (the index of the hashed streams)."""
    return (ts.as_unit("s").asi8 // 3600).astype(np.float64)


def _memory(inflow: np.ndarray, keep: np.ndarray, hours: int) -> np.ndarray:
    """What the air holds at each hour: the inflow of the `hours` hours up to it, each
    shrunk by the `keep` share of every hour since. A fixed-length sum, evaluated in the
    same order for every hour, so the value of an hour does not depend on the window it is
    computed in (the first `hours` entries lack history: callers start that much earlier)."""
    n = len(inflow)
    total = np.zeros(n)
    factor = np.ones(n)
    for j in range(min(hours, n)):
        total[j:] += factor[j:] * inflow[: n - j]  # the inflow of hour t - j ...
        factor[j:] *= keep[: n - j]  # ... and what survives hour t - j, for the next one
    return total


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
        return self._weather(loc, ts)[0]

    def _weather(self, loc: Location, ts: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict]:
        """The weather at `ts` and the drivers the air's box model reads (unrounded)."""
        h = (ts.as_unit("s").asi8 // 3600).astype(np.float64)
        k = lambda name: self._key(loc, name)  # noqa: E731
        local = ts.tz_convert(zoneinfo.ZoneInfo(loc.timezone))
        lh = local.hour.to_numpy() + local.minute.to_numpy() / 60
        doy = local.day_of_year.to_numpy()
        lat = loc.latitude or 0.0
        season = np.cos(2 * np.pi * (doy - 200) / 365.25) * (1 if lat >= 0 else -1)
        # The regime: 1 under a high (stagnant, clear), 0 in a front (windy, wet, cloudy).
        high = np.clip(0.65 * smooth(k("syn"), h, 84) + 0.35 * smooth(k("syn2"), h, 30) - 0.1, 0, 1)
        high = high / 0.8
        sun = np.clip(np.sin(np.pi * (lh - 6.5) / 12), 0, None) * (0.35 + 0.65 * high)
        climate = 27 - 0.35 * abs(lat)
        temp = (
            climate
            + (0.3 * abs(lat)) * season
            + (2 + 5 * high) * np.sin(2 * np.pi * (lh - 9) / 24)
            + 5 * (smooth(k("temp"), h, 72) - 0.5)
        )
        front = np.clip(0.25 - high, 0, None)
        cell = np.clip(smooth(k("cell"), h, 5) - 0.4, 0, None)
        rain = front * cell * 80 * (0.6 + 0.8 * uniform(k("rain"), h))
        mixing = np.clip(np.sin(np.pi * (lh - 7) / 12), 0, None)  # afternoon convection
        wind = (7 + 8 * uniform(k("windy"), np.zeros(1))[0]) * (
            (0.3 + 2.2 * (1 - high) ** 2) * (0.75 + 0.5 * mixing)
        ) + 4 * (uniform(k("gust"), h) - 0.3)
        wind = np.clip(wind, 0.5, None)
        direction = (360 * smooth(k("dir"), h, 30) + 40 * (uniform(k("dirn"), h) - 0.5)) % 360
        rh = np.clip(
            50 + 35 * (1 - high) - 12 * np.sin(2 * np.pi * (lh - 9) / 24) + 30 * np.sqrt(rain),
            8,
            100,
        )
        pressure = 1013 + 24 * (high - 0.5) + 1.2 * np.cos(2 * np.pi * (lh - 10) / 12)
        dew = dew_point(temp, rh)
        frame = pd.DataFrame(
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
        drivers = {"temp": temp, "rain": rain, "wind": wind, "rh": rh, "sun": sun, "mix": mixing}
        return frame, drivers

    def series(self, loc: Location, ts: pd.DatetimeIndex, gaps: bool = True) -> pd.DataFrame:
        """Observations at `ts`, with the source's gaps (missing hours) already applied
        (`gaps=False`: every hour, the truth a model forecasts)."""
        ts = pd.DatetimeIndex(ts).tz_convert("UTC") if len(ts) else pd.DatetimeIndex(ts)
        h = grid_h(ts)
        k = lambda name: self._key(loc, name)  # noqa: E731
        # The box model's memory: every hour of `ts` sums the MEMORY hours before it, so the
        # weather and emissions are computed on an hourly grid that starts that much earlier.
        first = ts.min().floor("h") - pd.Timedelta(hours=MEMORY) if len(ts) else None
        grid = (
            pd.date_range(first, ts.max().floor("h"), freq="h")
            if first is not None
            else pd.DatetimeIndex([], tz="UTC")
        )
        frame, d = self._weather(loc, grid)
        pm25, pm10, no2, ozone, heating = self._pollutants(loc, grid, d)
        at = np.searchsorted(grid.as_unit("s").asi8, ts.floor("h").as_unit("s").asi8)
        sensor = lambda name, sd: np.exp(  # noqa: E731
            sd * (uniform(k(name), h) + uniform(k(name + "2"), h) - 1) * 2.45
        )
        pm25_obs = pm25[at] * sensor("n-pm25", 0.09)
        out = pd.DataFrame(
            {
                "location_id": loc.location_id,
                "ts": ts,
                "pm2_5": pm25_obs.round(1),
                "pm10": (pm10[at] * sensor("n-pm10", 0.1)).round(1),
                "nitrogen_dioxide": (no2[at] * sensor("n-no2", 0.1)).round(1),
                "ozone": (ozone[at] * sensor("n-o3", 0.06)).round(1),
                "sulphur_dioxide": (2 + 0.08 * pm25[at] * heating[at] * sensor("n-so2", 0.2)).round(
                    1
                ),
                "carbon_monoxide": (150 + 6 * pm25[at] + 40 * no2[at] / 10).round(0),
                **{c: frame[c].to_numpy()[at] for c in frame.columns},
            }
        )
        if not gaps:
            return out
        return self._with_gaps(loc, out, h)

    def _pollutants(
        self, loc: Location, grid: pd.DatetimeIndex, d: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The true pm2_5, pm10, nitrogen dioxide and ozone of the box model on the hourly
        `grid` from the weather drivers `d`, and the heating demand (which also drives sulphur
        dioxide): emissions by traffic and heating carried over MEMORY hours, lost to
        deposition, wind and rain, diluted by the mixing layer."""
        k = lambda name: self._key(loc, name)  # noqa: E731
        local = grid.tz_convert(zoneinfo.ZoneInfo(loc.timezone))
        lh = local.hour.to_numpy()
        dow = local.day_of_week.to_numpy()
        traffic = (
            0.5 + np.exp(-(((lh - 8) / 1.8) ** 2)) + 0.9 * np.exp(-(((lh - 18.5) / 2.2) ** 2))
        ) * np.select([dow == 5, dow == 6], [0.8, 0.65], 1.0)
        heating = np.clip(16 - d["temp"], 0, None) / 12
        scale = EMISSION_SCALE.get(
            loc.location_id, 0.4 * np.exp(2 * uniform(k("base"), np.zeros(1))[0])
        )
        # Loss per hour: deposition, ventilation by wind, washout by rain.
        keep = np.exp(-(0.012 + 0.006 * d["wind"] + 0.35 * d["rain"] ** 0.7))
        # What no input shows: fires, building sites, a holiday's traffic (days-long swings).
        unseen = np.exp(0.8 * (smooth(k("unseen"), grid_h(grid), 30) - 0.5))
        load = _memory(scale * (0.7 * traffic + heating + 0.25) * unseen, keep, MEMORY)
        # Shallow at night and when calm, deep on sunny afternoons and in wind.
        layer = 0.6 + 0.6 * d["mix"] * (0.4 + 0.6 * d["sun"]) + d["wind"] / 40
        swell = 1 + 0.6 * np.clip((d["rh"] - 65) / 35, 0, None)  # particles take up water
        pm25 = 3 + 1.6 * load / layer * swell
        no2_load = _memory(
            scale**0.5 * 6 * traffic,
            np.exp(-(0.3 + 0.01 * d["wind"] + 0.4 * d["sun"])),
            12,
        )
        no2 = 6 + no2_load / layer
        ozone_made = _memory(
            d["sun"] * np.clip(d["temp"] + 5, 0, None) * 0.9,
            np.exp(-(0.035 + 0.003 * d["wind"])),
            MEMORY,
        )
        ozone = np.clip((28 + 0.5 * ozone_made) * (0.55 + 0.45 * d["mix"]) - 0.55 * no2, 2, None)
        dust = 2 * scale**0.5 * np.clip(d["wind"] - 15, 0, None) ** 1.5 / 10 * (d["rh"] < 60)
        pm10 = pm25 * (1.35 + 0.3 * smooth(k("coarse"), grid_h(grid), 48)) + dust
        return pm25, pm10, no2, ozone, heating

    def _with_gaps(self, loc: Location, out: pd.DataFrame, h: np.ndarray) -> pd.DataFrame:
        """`out` with the source's missing hours dropped and single values gone missing."""
        k = lambda name: self._key(loc, name)  # noqa: E731
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
