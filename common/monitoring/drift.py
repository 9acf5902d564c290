"""Drift of serving inputs away from a model's training data.

Per input: the population stability index (PSI) of recent values over the decile bins of
the training data, whose edges and shares train stores in the version's metadata.json
(`reference`, from `reference()`), so no training data is read again. Inputs such as
temperature or dew point move with the season, so against deciles of a whole year's
window a normal March week scores as drift (dew point PSI ~4 in the Beijing replay): train
also stores the deciles of each calendar month the window covers (`reference_by_month`,
from `monthly_reference()`), and the check compares a window with its own month of the
training years, falling back to the whole window for a month the training data lacks.
Even so, one week of one city's weather is far from its month's deciles by its weather
alone (Beijing's training weeks: dew point PSI 3.9 at the 95th percentile, 4.9 at most), so
train also stores how far the training data's own weeks are (`reference_natural`, from
`natural_psi()`), and an input warns or alerts only beyond both the fixed levels and
what its normal weeks showed.
Overall: the AUC of a classifier asked to tell recent rows from training rows (an
adversarial validator): 0.5 means it cannot, 1.0 that the two samples are disjoint. Its
training rows are a bounded sample train stores beside the version (`reference_sample()`,
SAMPLE_FILE), taken when the model was trained, so a later correction or shift of the
warehouse's rows cannot move the reference along with the serving inputs.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.forecasting.versions import (
    ColumnBins,
    DriftReference,
    DriftReferences,
    NaturalSpread,
)

QUANTILES = np.linspace(0, 1, 11)
EPS = 1e-4  # floor of a bin's share, so an empty bin gives a large, finite PSI
SAMPLE_FILE = "reference_sample.parquet"  # beside the version's metadata.json
SAMPLE_ROWS = 2000  # bounded: a few hundred kB at most, whatever the training window
MONTH_MIN_ROWS = 200  # rows of one calendar month before it gets its own deciles


def reference(obs: pd.DataFrame, columns: Sequence[str]) -> DriftReference:
    """Decile edges and the share of rows in each bin, per column (what train stores)."""
    out: DriftReference = {}
    for c in columns:
        values = pd.to_numeric(obs[c], errors="coerce").to_numpy(float) if c in obs else []
        values = values[~np.isnan(values)] if len(values) else np.array([])
        if len(values) < 10:
            continue
        cuts = np.unique(np.quantile(values, QUANTILES[1:-1]))
        shares = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
        out[c] = ColumnBins(
            cuts=[round(float(x), 6) for x in cuts],
            shares=[round(float(x), 6) for x in shares / len(values)],
            n=len(values),
        )
    return out


def monthly_reference(
    obs: pd.DataFrame, columns: Sequence[str], min_rows: int = MONTH_MIN_ROWS
) -> dict[int, DriftReference]:
    """`reference()` of each calendar month (1..12) with at least `min_rows` rows, over
    every year of the window."""
    if "ts" not in obs or obs.empty:
        return {}
    month = pd.to_datetime(obs["ts"], utc=True).dt.month.to_numpy()
    out: dict[int, DriftReference] = {}
    for m in np.unique(month):
        rows = obs[month == m]
        if len(rows) >= min_rows:
            ref = reference(rows, columns)
            if ref:
                out[int(m)] = ref
    return out


def pick_reference(
    refs: DriftReferences, start: dt.datetime, end: dt.datetime
) -> tuple[DriftReference, str]:
    """The deciles to compare the window (start, end] with, and what they are: the month of
    the window's middle when the version stores it, else the whole training window."""
    middle = start + (end - start) / 2
    ref = refs.reference_by_month.get(middle.month)
    if ref:
        return ref, f"{calendar.month_name[middle.month]} of the training window"
    return refs.reference, "the whole training window"


def natural_psi(
    rows: pd.DataFrame, references: DriftReferences, hours: int, quantile: float
) -> dict[str, NaturalSpread]:
    """Per column, the `quantile` and the largest PSI of the training rows' own windows of
    `hours` (runs of consecutive hours, cut every `hours`; a run shorter than half of it is
    left out). Each window is compared with what `pick_reference` would give it, rebuilt
    without the window itself (its month's other rows, or the whole window's other rows for
    a month the references lack), so that a week is not measured against its own values.
    Columns with fewer than 4 windows get nothing (the fixed levels apply)."""
    if "ts" not in rows or rows.empty:
        return {}
    columns = list(references.reference)
    ts = pd.to_datetime(rows["ts"], utc=True)
    hour = ((ts - ts.min()).dt.total_seconds() // 3600).astype(int).to_numpy()
    month = ts.dt.month.to_numpy()
    distinct = np.unique(hour)
    window = np.zeros(len(distinct), int)
    first = distinct[0]
    for i in range(1, len(distinct)):  # a gap or a full window starts the next one
        if distinct[i] - distinct[i - 1] > 1 or distinct[i] - first >= hours:
            window[i], first = window[i - 1] + 1, distinct[i]
        else:
            window[i] = window[i - 1]
    of_row = window[np.searchsorted(distinct, hour)]
    by_month = references.reference_by_month
    values: dict[str, list[float]] = {}
    for w in np.unique(of_row):
        inside = of_row == w
        start, end = ts[inside].min(), ts[inside].max()
        if (end - start) < pd.Timedelta(hours=hours // 2):
            continue
        middle = (start + (end - start) / 2).month
        same = month == middle if middle in by_month else np.ones(len(rows), bool)
        others = rows[same & ~inside]
        if len(others) < MONTH_MIN_ROWS:
            continue
        for c, v in psi_by_column(reference(others, columns), rows[inside]).items():
            values.setdefault(c, []).append(v)
    return {
        c: NaturalSpread(quantile=round(float(np.quantile(v, quantile)), 4), max=round(max(v), 4))
        for c, v in values.items()
        if len(v) >= 4
    }


def reference_sample(
    obs: pd.DataFrame, columns: Sequence[str], since: Any, rows: int = SAMPLE_ROWS
) -> bytes:
    """Parquet bytes of at most `rows` training input rows with ts after `since` (the end
    of the training window, as long as the drift window: the serving inputs of a freshly
    trained model look like them, whatever the season). Deterministic for the same rows."""
    recent = obs[pd.to_datetime(obs["ts"], utc=True) > pd.Timestamp(since)]
    cols = [c for c in columns if c in recent]
    picked = recent.sort_values(["ts", "location_id"]) if "location_id" in recent else recent
    if len(picked) > rows:
        picked = picked.sample(rows, random_state=0)
    buf = io.BytesIO()
    picked[cols].astype(float).reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def read_sample(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def psi(ref: ColumnBins, values: np.ndarray) -> float | None:
    """PSI of `values` against one column's reference; None with no values."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    cuts = np.asarray(ref.cuts, float)
    expected = np.maximum(np.asarray(ref.shares, float), EPS)
    counts = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
    actual = np.maximum(counts / len(values), EPS)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_by_column(ref: DriftReference, recent: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for c, r in ref.items():
        if c in recent:
            value = psi(r, pd.to_numeric(recent[c], errors="coerce").to_numpy(float))
            if value is not None:
                out[c] = round(value, 4)
    return out


def adversarial_auc(training: pd.DataFrame, recent: pd.DataFrame, seed: int = 0) -> float | None:
    """Hold-out ROC AUC of a gradient-boosted classifier telling recent rows from training
    rows (NaN allowed); None when either side has too few rows.

    One OpenMP thread: in predict, xgboost has already loaded its own OpenMP runtime, and
    the two runtimes' spinning threads on a small instance made this 15x slower (0.7 s ->
    10.9 s at 10,000 locations, measured); the fit is a few thousand rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    columns = [c for c in training.columns if c in recent.columns]
    if len(training) < 50 or len(recent) < 50 or not columns:
        return None
    x = pd.concat([training[columns], recent[columns]], ignore_index=True).astype(float)
    y = np.r_[np.zeros(len(training)), np.ones(len(recent))]
    x_fit, x_test, y_fit, y_test = train_test_split(
        x.to_numpy(), y, test_size=0.3, random_state=seed, stratify=y
    )
    clf = HistGradientBoostingClassifier(max_iter=60, max_depth=3, random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        clf.fit(x_fit, y_fit)
        scores = clf.predict_proba(x_test)[:, 1]
    return round(float(roc_auc_score(y_test, scores)), 4)
