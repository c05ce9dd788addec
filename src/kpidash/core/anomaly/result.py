"""What the anomaly detector returns: per-point arrays, and anomalies as records.

Score and severity are functions of the evidence e, a robust z (``z = (actual − expected) /
σ``, in units of the robust one-step forecast-error scale σ, so they are scale-free): the
point's own z, or where a drift or noise-burst alarm fires with larger evidence, that alarm's
effective z (``±T·S/H`` of the CUSUM, ``±T·v/v_bar`` of the dispersion, :mod:`~.drift`)::

    score    = e⁴ / (e⁴ + T⁴)          in [0, 1); 0.5 exactly at |e| = T, 1 for |e| = ∞
    anomaly  ⟺ |e| ≥ T                ⟺ score ≥ 0.5    (|z| ≥ T, or an alarm fired)
    severity by a = |z| / T:  none a < 1 · low 1 ≤ a < 1.5 · medium 1.5 ≤ a < 2 ·
                              high 2 ≤ a < 3 · critical a ≥ 3

``T`` is the KPI's ``anomaly_threshold`` (default 4). With T = 3: score 0.012 at |z| = 1,
0.16 at 2, 0.5 at 3, 0.83 at 4.5, 0.94 at 6, 0.99 at 9. The mapping uses only + − × ÷ so it
is bit-for-bit identical however many points are scored at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
Mask = npt.NDArray[np.bool_]

SEVERITY_BANDS = (1.0, 1.5, 2.0, 3.0)
"""Lower edges of low, medium, high, critical in units of the threshold (|z| / T)."""


class Kind(IntEnum):
    """What kind of deviation a flagged point is, as known when the point arrived.

    The first point of any episode is a SPIKE (above expected) or a DIP (below); a point that
    confirms a persistent change is LEVEL_SHIFT, TREND_CHANGE or VARIANCE and carries the
    episode's ``onset``. Earlier points keep the kind they had (scores are causal).
    """

    NONE = 0
    SPIKE = 1
    DIP = 2
    LEVEL_SHIFT = 3
    TREND_CHANGE = 4
    VARIANCE = 5

    @property
    def label(self) -> str:
        return self.name.lower()


class Severity(IntEnum):
    """Severity bands of |z| / T: see :data:`SEVERITY_BANDS`."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def score_from_z(z: F64, threshold: float) -> F64:
    """``z⁴ / (z⁴ + T⁴)``, 1 where |z| is infinite, 0 where z is NaN; shape of ``z``."""
    a = np.abs(z) / threshold
    a2 = a * a
    a4 = a2 * a2
    with np.errstate(invalid="ignore"):
        s = a4 / (a4 + 1.0)
    s = np.where(np.isinf(a), 1.0, s)
    return np.asarray(np.where(np.isnan(a), 0.0, s), dtype=np.float64)


def severity_from_z(z: F64, threshold: float) -> I8:
    """Severity codes (:class:`Severity` values) of ``|z| / T`` by :data:`SEVERITY_BANDS`."""
    a = np.nan_to_num(np.abs(z) / threshold, nan=0.0)
    return np.asarray(np.searchsorted(np.asarray(SEVERITY_BANDS), a, side="right"), dtype=np.int8)


@dataclass(frozen=True, slots=True)
class AnomalyScores:
    """Scores of one series; every array has the series' length ``n``.

    ``expected`` is the causal one-step forecast (NaN during warm-up), ``lo``/``hi`` the band
    ``expected ∓ T·σ`` (same unit as the values; for a ``log_scale`` series — every warm-up
    value > 0 — the model runs on log y, so ``expected = exp(f)`` and the band is
    ``exp(f ∓ T·σ)``, asymmetric): a point outside it is an anomaly (so is a drift or
    noise-burst alarm, which can lie inside it). ``z`` is the robust z of the point (0 on
    missing, warm-up and re-anchoring points); ``score`` and ``severity`` follow from the
    evidence (module docstring), which is z except at such an alarm. ``kind`` holds
    :class:`Kind` codes, ``onset`` the index where the point's episode started (−1 when not
    anomalous; for a drift, where its sum began), ``favourable`` whether an anomalous
    deviation goes the good way (up when ``higher_is_better``). ``season_length`` is
    the season used (1 = none, None = not decided yet: fewer points than detection needs) and
    ``warmup`` the number of valid observations scored 0 before the detector is ready.
    """

    values: F64
    expected: F64
    lo: F64
    hi: F64
    z: F64
    score: F64
    is_anomaly: Mask
    severity: I8
    kind: I8
    onset: I64
    favourable: Mask
    season_length: int | None
    threshold: float
    higher_is_better: bool
    warmup: int
    log_scale: bool = False

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomalous point. ``timestamp`` is whatever the caller passed for that index (the
    index itself when no timestamps were given); ``onset_timestamp`` likewise for ``onset``.
    ``actual``, ``expected``, ``lo`` and ``hi`` are in the series' unit; ``z`` in robust σ."""

    index: int
    timestamp: Any
    actual: float
    expected: float
    lo: float
    hi: float
    z: float
    score: float
    severity: Severity
    kind: Kind
    favourable: bool
    onset: int
    onset_timestamp: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "timestamp": _plain(self.timestamp), "actual": self.actual,
            "expected": self.expected, "interval": [self.lo, self.hi], "z": self.z,
            "score": self.score, "severity": self.severity.label, "kind": self.kind.label,
            "favourable": self.favourable, "onset": _plain(self.onset_timestamp),
        }


def anomalies(scores: AnomalyScores, timestamps: Sequence[Any] | npt.NDArray[Any] | None = None,
              ) -> list[Anomaly]:
    """The anomalous points of ``scores`` in time order, one :class:`Anomaly` each.

    ``timestamps`` (any sequence of the series' length: datetimes, ``datetime64``, labels)
    label the points; without it the index is the timestamp.
    """
    n = len(scores)
    if timestamps is not None and len(timestamps) != n:
        raise ValueError(f"anomalies: {len(timestamps)} timestamps for {n} scores; pass one "
                         "timestamp per scored point")

    def at(i: int) -> Any:
        return i if timestamps is None else timestamps[i]

    out = []
    for i in np.flatnonzero(scores.is_anomaly).tolist():
        onset = int(scores.onset[i])
        out.append(Anomaly(
            index=i, timestamp=at(i), actual=float(scores.values[i]),
            expected=float(scores.expected[i]), lo=float(scores.lo[i]), hi=float(scores.hi[i]),
            z=float(scores.z[i]), score=float(scores.score[i]),
            severity=Severity(int(scores.severity[i])), kind=Kind(int(scores.kind[i])),
            favourable=bool(scores.favourable[i]), onset=onset, onset_timestamp=at(onset)))
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item() if not isinstance(x, np.datetime64) else str(x)
    if hasattr(x, "isoformat"):
        return x.isoformat()
    return x
