"""The promotion gate: a pure decision on holdout numbers, testable without a model.

A candidate is promoted when, on the holdout,

- its MAE beats seasonal naive by `margin`,
- its MAE is not worse than persistence ("the last value") in any horizon group of
  `HORIZON_GROUPS` (1-3, 4-12, 13-24 hours) by more than `tolerance`: a reason names the
  group that fails. The MAE is that of the forecast as served, the model combined online
  with persistence and seasonal naive (`common.forecasting.combination`, replayed on the
  holdout from the version's starting weights). Where the replay from its calibration
  weights lost to persistence in a group, the version starts served as persistence
  there (`common.train.candidate.served_holdout`; the groups and their scores before in
  the metrics' and the record's `served_as_persistence`, named in the reasons), so it
  ties persistence there and the model comes back online as it wins. The rule holds for
  every version, the first one included (no waiver): a version is served only where
  what it serves is not worse than the last value, and
- it is better than the production model beyond the noise. The noise is estimated from
  the paired per-row errors of both models on the same rows by a block bootstrap over
  issue days (`paired_interval`: seeded, so the same rows give the same interval). The
  interval of MAE(candidate) - MAE(production) decides: entirely below 0, the candidate
  is better and is promoted; its lower end above `tolerance` x production's MAE, the
  candidate is worse and is rejected; otherwise there is "no evidence of a difference"
  (or, with the interval above 0, a candidate worse by less than the tolerance, and the
  reason says so) and production is kept (neither a promotion nor a rejection: a retrain
  of unchanged data is never decided by the chance of its fit) - unless production
  itself loses to persistence in a horizon group on these rows (a version gated before
  the combination existed, or an old model the data moved away from): then a candidate
  that meets every rule replaces it, since keeping production would keep a model the gate
  would not promote today; or unless production was trained on data more than
  `max_age_days` older than the candidate's (the age at which the monitor's `model_age`
  warns): with nothing to choose between them the fresher model replaces it, so keeping
  an equal model never ages production into an alert. A candidate worse beyond the noise
  (within the tolerance) is never promoted for
  its freshness. Without
  paired errors (a caller that has only the two MAEs) the old point rule applies:
  rejected when worse by more than `tolerance`, promoted otherwise.

When there is no production model to compare with (none yet, or one that forecasts
another target or was scored on other rows) the baselines alone decide, and the reasons
say why. Loading and scoring the production model is the train job's work; a production
model that cannot be read is an error there, never a reason to skip the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.forecasting.combination import HORIZON_GROUPS
from common.forecasting.versions import GateRecord, GroupScores, NoiseRecord, Verdict

__all__ = [
    "HORIZON_GROUPS",
    "GateDecision",
    "NoiseInterval",
    "ProductionScore",
    "decide",
    "group_horizons",
    "group_scores",
    "losing_to_persistence",
    "paired_interval",
]

# The horizon groups (first, last hour) the candidate must beat persistence in, defined
# once with the combination, whose per-place weights are kept by the same groups.
NO_EVIDENCE = "no evidence of a difference"


@dataclass(frozen=True)
class NoiseInterval:
    """Bootstrap interval of MAE(candidate) - MAE(production) on the same rows."""

    low: float
    high: float
    difference: float  # the observed difference
    confidence: float
    samples: int
    blocks: int  # issue days resampled

    def record(self) -> NoiseRecord:
        return NoiseRecord(
            difference=self.difference,
            low=self.low,
            high=self.high,
            confidence=self.confidence,
            samples=self.samples,
            blocks=self.blocks,
        )


def paired_interval(
    candidate_abs_err: np.ndarray,
    production_abs_err: np.ndarray,
    days: Sequence[Any] | np.ndarray,
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> NoiseInterval:
    """Block bootstrap (blocks = issue days, kept whole because errors within a day are
    correlated) of the MAE difference between two models scored on the same rows."""
    d = np.asarray(candidate_abs_err, float) - np.asarray(production_abs_err, float)
    _, block = np.unique(np.asarray(days), return_inverse=True)
    sums = np.bincount(block, weights=d)
    counts = np.bincount(block).astype(float)
    idx = np.random.default_rng(seed).integers(0, len(sums), size=(samples, len(sums)))
    boot = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return NoiseInterval(float(low), float(high), float(d.mean()), confidence, samples, len(sums))


def group_horizons(group: str) -> range:
    """The horizons of a group named as `group_scores` names it ("4-12")."""
    return {f"{a}-{b}": range(a, b + 1) for a, b in HORIZON_GROUPS}[group]


def group_scores(by_horizon: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Model and persistence MAE per horizon group, from `evaluate`'s by_horizon rows; and
    the CAMS baseline's (with the model's on the same rows) where rows have a CAMS forecast."""
    out = []
    for first, last in HORIZON_GROUPS:
        rows = [r for r in by_horizon if first <= int(r["horizon_h"]) <= last]
        n = sum(int(r["n"]) for r in rows)
        if n == 0:
            continue
        mae = sum(r["mae"] * r["n"] for r in rows) / n
        pers = sum(r["persistence_mae"] * r["n"] for r in rows) / n
        group = {"group": f"{first}-{last}", "n": n, "mae": mae, "persistence_mae": pers}
        cams_n = sum(int(r.get("cams_n") or 0) for r in rows)
        if cams_n:
            group["cams_n"] = cams_n
            group["cams_mae"] = (
                sum(r["cams_mae"] * r["cams_n"] for r in rows if r.get("cams_n")) / cams_n
            )
            group["cams_model_mae"] = (
                sum(r["cams_model_mae"] * r["cams_n"] for r in rows if r.get("cams_n")) / cams_n
            )
        out.append(group)
    return out


def losing_to_persistence(
    groups: Sequence[Mapping[str, Any]], tolerance: float = 0.0
) -> list[Mapping[str, Any]]:
    """The groups whose MAE is worse than persistence's by more than `tolerance` (a share).
    A tie passes: a group served as persistence ties with it, and a combination that has
    learned to serve the baselines there is within the tolerance of it."""
    return [g for g in groups if g["mae"] > g["persistence_mae"] * (1 + tolerance)]


@dataclass(frozen=True)
class ProductionScore:
    """The model in production, as the gate sees it.

    `mae` is its MAE on the candidate's holdout rows, or None when it is not comparable
    (then `note` says why); None too when the candidate already is that version.
    `noise` is the bootstrap interval of the paired difference, when the caller had the
    per-row errors.
    """

    version: str
    mae: float | None = None
    note: str = ""
    noise: NoiseInterval | None = None
    # The horizon groups where production loses to persistence on these rows, if any.
    losing_groups: tuple[str, ...] = ()
    # Days between production's training cut-off and the candidate's (None: unknown).
    age_days: float | None = None


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and the numbers the decision was made on."""

    promote: bool
    reasons: tuple[str, ...]
    candidate_mae: float
    seasonal_naive_mae: float
    production_before: str | None
    production_mae: float | None
    # "promote", "reject", or "keep production" (no evidence of a difference, or worse
    # beyond the noise but within the tolerance).
    verdict: Verdict
    groups: tuple[dict[str, Any], ...] = ()
    noise: NoiseInterval | None = None
    production_age_days: float | None = None
    served_as_persistence: tuple[GroupScores, ...] = ()

    @property
    def rejected(self) -> bool:
        """A rejection (the run's status says so); keeping production by noise is not one."""
        return self.verdict == "reject"

    def record(self) -> GateRecord:
        """The decision as recorded in the version's metadata and the run's answer."""
        return GateRecord(
            promote=self.promote,
            verdict=self.verdict,
            reasons=list(self.reasons),
            production_before=self.production_before,
            production_mae=self.production_mae,
            persistence_by_group=[GroupScores.model_validate(g) for g in self.groups],
            noise=self.noise.record() if self.noise is not None else None,
            production_age_days=self.production_age_days,
            served_as_persistence=list(self.served_as_persistence),
        )


def decide(
    metrics: Mapping[str, Any],
    production: ProductionScore | None,
    *,
    version: str,
    margin: float,
    tolerance: float,
    max_age_days: float | None = None,
) -> GateDecision:
    """Decide on the candidate `version` from its holdout `metrics` (`evaluate`'s shape)."""
    mae, naive = metrics["model"]["mae"], metrics["seasonal_naive"]["mae"]
    beats_baseline = mae <= naive * (1 - margin)
    verdict = "beats" if beats_baseline else "does not beat"
    reasons = [f"MAE {mae:.3f} {verdict} seasonal naive {naive:.3f} by the {margin:.0%} margin"]
    groups = group_scores(metrics.get("by_horizon", []))
    losing = losing_to_persistence(groups, tolerance)
    held_back = [GroupScores.model_validate(g) for g in metrics.get("served_as_persistence") or []]
    reasons += _baseline_reasons(groups, losing, held_back, tolerance)
    rival = production is not None and production.version != version
    production_mae = production.mae if production is not None and rival else None
    noise = production.noise if production is not None and rival else None
    age = production.age_days if production is not None and rival else None
    worse = keep = False
    if production is not None and not rival:
        reasons.append("this version is already in production")
    elif production is not None and production_mae is None:
        reasons.append(production.note)
    elif production is not None and production_mae is not None and noise is not None:
        reason, worse, keep = _versus_production(
            mae, production, production_mae, noise, bool(losing), tolerance, age, max_age_days
        )
        reasons.append(reason)
    elif production is not None and production_mae is not None:
        worse = mae > production_mae * (1 + tolerance)
        reasons.append(
            f"MAE {mae:.3f} is worse than production {production.version} "
            f"({production_mae:.3f}) by more than {tolerance:.0%} on the same holdout"
            if worse
            else f"MAE {mae:.3f} vs production {production_mae:.3f}: within "
            f"{tolerance:.0%} tolerance or better"
        )
    fails = not beats_baseline or bool(losing) or worse
    return GateDecision(
        promote=not fails and not keep,
        reasons=tuple(reasons),
        candidate_mae=mae,
        seasonal_naive_mae=naive,
        production_before=production.version if production is not None else None,
        production_mae=production_mae,
        verdict="reject" if fails else "keep production" if keep else "promote",
        groups=tuple(groups),
        noise=noise,
        production_age_days=None if age is None else round(age, 3),
        served_as_persistence=tuple(held_back),
    )


def _baseline_reasons(
    groups: Sequence[Mapping[str, Any]],
    losing: Sequence[Mapping[str, Any]],
    held_back: Sequence[GroupScores],
    tolerance: float,
) -> list[str]:
    """What the decision says of the candidate against the baselines by horizon group: where
    it starts served as persistence, where it loses to persistence (or that it loses
    nowhere), and how it compares with CAMS (which informs; persistence decides)."""
    reasons = [
        f"horizons {held.group} h: replayed from its calibration weights the forecast lost "
        f"to persistence (MAE {held.mae:.3f} vs {held.persistence_mae:.3f}): served as "
        "persistence there from the first hour, the model's weight growing back online "
        "as verified hours show it winning"
        for held in held_back
    ]
    reasons += [
        f"horizons {g['group']} h: MAE {g['mae']:.3f} does not beat persistence "
        f"{g['persistence_mae']:.3f} (tolerance {tolerance:.0%})"
        for g in losing
    ]
    if groups and not losing:
        reasons.append(
            "not worse than persistence in any horizon group ("
            + ", ".join(f"{g['group']} h" for g in groups)
            + ")"
        )
    cams = [g for g in groups if "cams_n" in g]
    if cams:  # the third baseline informs; persistence and production decide
        reasons.append(
            "vs CAMS on the rows with a CAMS forecast: "
            + ", ".join(
                f"{g['group']} h MAE {g['cams_model_mae']:.3f} vs {g['cams_mae']:.3f}" for g in cams
            )
        )
    return reasons


def _versus_production(
    mae: float,
    production: ProductionScore,
    production_mae: float,
    noise: NoiseInterval,
    losing: bool,
    tolerance: float,
    age: float | None,
    max_age_days: float | None,
) -> tuple[str, bool, bool]:
    """(the reason, worse, keep) of the candidate against a rival production version, by
    the bootstrap interval of their paired difference on the same rows."""
    stale = age is not None and max_age_days is not None and age > max_age_days
    span = (
        f"MAE {mae:.3f} vs production {production.version} {production_mae:.3f}: "
        f"difference {noise.difference:+.3f}, {noise.confidence:.0%} interval "
        f"[{noise.low:+.3f}, {noise.high:+.3f}] over {noise.blocks} issue days"
    )
    # Between "better" and "worse beyond the tolerance": no evidence of a difference, or
    # worse beyond the noise but by less than the tolerance (the interval above 0).
    within = (
        NO_EVIDENCE
        if noise.low <= 0
        else f"worse than production beyond the noise but within the {tolerance:.0%} tolerance"
    )
    if noise.low > tolerance * production_mae:
        return f"{span}: worse than production beyond the noise", True, False
    if noise.high < 0:
        return f"{span}: better than production beyond the noise", False, False
    if production.losing_groups and not losing:
        groups_text = ", ".join(f"{g} h" for g in production.losing_groups)
        return (
            f"{span}: {within}, but production loses to persistence at "
            f"{groups_text} on these rows and the candidate does not: it replaces production",
            False,
            False,
        )
    if noise.low <= 0 and stale and not losing:
        return (
            f"{span}: {NO_EVIDENCE}, but production was trained on data {age:.1f} days "
            f"older, past the {max_age_days:g}-day limit: the fresher model replaces it",
            False,
            False,
        )
    return f"{span}: {within}; production is kept", False, True
