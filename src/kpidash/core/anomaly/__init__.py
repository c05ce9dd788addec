"""Online, causal, seasonal and robust anomaly detection for KPI series.

Public API::

    score(values, *, season_length=None, threshold=4.0, higher_is_better=True) -> AnomalyScores
    score_many(list_of_arrays, ..., n_jobs=1) -> list[AnomalyScores]
    OnlineDetector(...).update(value) -> PointScore       # the same numbers, one at a time
    anomalies(scores, timestamps=None) -> list[Anomaly]   # the flagged points as records
    detect_season(prefix) -> int                          # 1 = no season

Method in one paragraph: each point is compared with a one-step forecast from a robust
additive Holt–Winters state (level, trend, seasonal profile) — on log y when every warm-up
value is positive, so weekly factors and steps of business KPIs are additive — fitted on a
warm-up with medians
and updated with Huber-clipped residuals; the residual divided by a robust, exponentially
weighted error scale σ is the robust z, and a point is anomalous when |z| ≥ T (the KPI's
``anomaly_threshold``). Anomalous points do not update the state, so a spike cannot drag the
baseline; three one-sided deviations in a row are a level shift (or a trend change when they
grow) and the state jumps to the new level, so only the first few points of a new level are
flagged; deviations on both sides are a variance change and σ is re-estimated. Changes
too gentle for any single point — a slow ramp, a step smaller than T·σ — are caught by a
two-sided CUSUM on z (allowance 1σ, bar 1.5·T), which re-fits level and trend when it fires;
a short-run dispersion of z (from successive differences, so drifts do not inflate it) keeps
noise bursts out of that sum and confirms them as variance changes. Such points are flagged
with a score from their own statistic (≥ 0.5 exactly when they fire). Missing
values are skipped (the interval widens with the gap; after a long gap the level re-anchors).
Everything is in units of σ, so results do not depend on the series' scale. Details:
:mod:`kpidash.core.anomaly.state` (model, rules, warm-up), :mod:`~.drift` (CUSUM, re-fit,
dispersion), :mod:`~.season` (season detection), :mod:`~.result` (score, severity).
"""

from kpidash.core.anomaly.detector import (
    DEFAULT_THRESHOLD,
    OnlineDetector,
    PointScore,
    resolve,
    score,
    score_many,
)
from kpidash.core.anomaly.result import (
    SEVERITY_BANDS,
    Anomaly,
    AnomalyScores,
    Kind,
    Severity,
    anomalies,
    score_from_z,
    severity_from_z,
)
from kpidash.core.anomaly.season import DETECT_POINTS, detect_season
from kpidash.core.anomaly.state import Params, default_warmup

__all__ = [
    "DEFAULT_THRESHOLD",
    "DETECT_POINTS",
    "SEVERITY_BANDS",
    "Anomaly",
    "AnomalyScores",
    "Kind",
    "OnlineDetector",
    "Params",
    "PointScore",
    "Severity",
    "anomalies",
    "default_warmup",
    "detect_season",
    "resolve",
    "score",
    "score_from_z",
    "score_many",
    "severity_from_z",
]
