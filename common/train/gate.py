"""The promotion gate: a pure decision on holdout numbers, testable without a model.

A candidate is promoted when

- its MAE beats seasonal naive by `margin` on the holdout, and
- it is not worse than the production model's MAE on the same holdout rows by more than
  `tolerance`.

When there is no production model to compare with (none yet, or one that forecasts
another target or was scored on other rows) the baselines alone decide, and the reasons
say why. Loading and scoring the production model is the train job's work; a production
model that cannot be read is an error there, never a reason to skip the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GateDecision", "ProductionScore", "decide"]


@dataclass(frozen=True)
class ProductionScore:
    """The model in production, as the gate sees it.

    `mae` is its MAE on the candidate's holdout rows, or None when it is not comparable
    (then `note` says why); None too when the candidate already is that version.
    """

    version: str
    mae: float | None = None
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and the numbers the decision was made on."""

    promote: bool
    reasons: tuple[str, ...]
    candidate_mae: float
    seasonal_naive_mae: float
    production_before: str | None
    production_mae: float | None

    def to_dict(self) -> dict[str, Any]:
        """The decision as recorded in the version's metadata and the run's answer."""
        return {
            "promote": self.promote,
            "reasons": list(self.reasons),
            "production_before": self.production_before,
            "production_mae": self.production_mae,
        }


def decide(
    metrics: Mapping[str, Any],
    production: ProductionScore | None,
    *,
    version: str,
    margin: float,
    tolerance: float,
) -> GateDecision:
    """Decide on the candidate `version` from its holdout `metrics` (`evaluate`'s shape)."""
    mae, naive = metrics["model"]["mae"], metrics["seasonal_naive"]["mae"]
    beats_baseline = mae <= naive * (1 - margin)
    verdict = "beats" if beats_baseline else "does not beat"
    reasons = [f"MAE {mae:.3f} {verdict} seasonal naive {naive:.3f} by the {margin:.0%} margin"]
    rival = production is not None and production.version != version
    production_mae = production.mae if production is not None and rival else None
    worse = False
    if production is not None and not rival:
        reasons.append("this version is already in production")
    elif production is not None and production_mae is None:
        reasons.append(production.note)
    elif production is not None and production_mae is not None:
        worse = mae > production_mae * (1 + tolerance)
        reasons.append(
            f"MAE {mae:.3f} is worse than production {production.version} "
            f"({production_mae:.3f}) by more than {tolerance:.0%} on the same holdout"
            if worse
            else f"MAE {mae:.3f} vs production {production_mae:.3f}: within "
            f"{tolerance:.0%} tolerance or better"
        )
    return GateDecision(
        promote=beats_baseline and not worse,
        reasons=tuple(reasons),
        candidate_mae=mae,
        seasonal_naive_mae=naive,
        production_before=production.version if production is not None else None,
        production_mae=production_mae,
    )
