"""Open-Meteo's JSON answer (one object per location, a list for several) as the forecast,
archive, previous-runs and historical-forecast hosts all write it (see
../shared/reference/open-meteo.md section 4), shared by the live source and the backfill of
past forecasts."""

from __future__ import annotations

import requests
from pydantic import BaseModel, ConfigDict, model_validator

LOCATIONS_PER_REQUEST = 50


class Hourly(BaseModel):
    model_config = ConfigDict(extra="allow")

    time: list[str]

    @model_validator(mode="after")
    def _same_length(self) -> Hourly:
        for name, values in (self.model_extra or {}).items():
            if not isinstance(values, list) or len(values) != len(self.time):
                raise ValueError(f"hourly.{name} does not have one value per hourly.time")
        return self


class LocationResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    latitude: float
    longitude: float
    hourly_units: dict[str, str] = {}
    hourly: Hourly


def unit_text(text: str) -> str:
    """A unit as aircast writes it (Open-Meteo sends the Greek mu for micro)."""
    return text.replace("μ", "µ").strip()


def error_reason(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("reason") or body)[:300]
    except (ValueError, AttributeError):
        return resp.text[:300] or resp.reason
