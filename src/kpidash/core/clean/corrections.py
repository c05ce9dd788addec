"""Auditable auto-correction: a pure function from raw values to a list of proposed
corrections — only the flagged points, each with its raw value, corrected value, method and
a reason with the numbers. Applying them is a separate, checked step.

Methods: ``hampel_seasonal`` / ``hampel`` (value replaced by the robust seasonal / local
baseline), ``rescale_div100``, ``rescale_div1000``, ``rescale_x100``, ``rescale_x1000``
(value divided or multiplied by the factor of a likely unit error). Points inside a
known-event window are never corrected; non-finite values are never filled in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kpidash.core.clean.outliers import MAD_TO_SIGMA, Scan, Window, factor_name, scan
from kpidash.core.clean.rules import TimeLike, Times, iso, times


@dataclass(frozen=True, slots=True)
class Correction:
    """One corrected point: ``index`` is its 0-based position in the input arrays."""

    index: int
    ts: np.datetime64 | None
    raw: float
    corrected: float
    method: str
    reason: str
    robust_z: float
    baseline: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = None if self.ts is None else iso(self.ts)
        return d


@dataclass(frozen=True, slots=True)
class Corrections:
    """The proposed corrections, in index order, and the settings that produced them."""

    items: tuple[Correction, ...] = ()
    threshold: float = 5.0
    season_length: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Correction]:
        return iter(self.items)

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        return np.array([c.index for c in self.items], dtype=np.int64)

    def apply(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """A corrected copy of ``values``; raises if a raw value does not match (the
        corrections were computed for another series)."""
        out = np.array(values, dtype=np.float64, copy=True)
        for c in self.items:
            if c.index >= out.shape[0] or out[c.index] != c.raw:
                got = out[c.index] if c.index < out.shape[0] else "nothing"
                raise ValueError(f"correction for position {c.index} expects raw value "
                                 f"{c.raw!r} but the series has {got!r}; recompute the "
                                 "corrections for this series")
            out[c.index] = c.corrected
        return out

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Column arrays (index, ts, raw_value, value, method, reason) for a store table."""
        return {"index": self.indices,
                "ts": np.array([c.ts for c in self.items], dtype="datetime64[us]"),
                "raw_value": np.array([c.raw for c in self.items], dtype=np.float64),
                "value": np.array([c.corrected for c in self.items], dtype=np.float64),
                "method": np.array([c.method for c in self.items], dtype=object),
                "reason": np.array([c.reason for c in self.items], dtype=object)}

    def to_dict(self) -> dict[str, Any]:
        return {"count": len(self.items), "threshold": self.threshold,
                "season_length": self.season_length,
                "items": [c.to_dict() for c in self.items]}


def corrections_from_scan(values: npt.ArrayLike, ts: Times | None, result: Scan,
                          season_length: int | None = None) -> Corrections:
    """Corrections for the flagged points of a :func:`scan` outside event windows."""
    x = np.asarray(values, dtype=np.float64)
    rz = result.rescaled_z(x)
    kind = "seasonal baseline" if result.seasonal else "local baseline"
    items = []
    for i in np.flatnonzero(result.flagged & ~result.in_event):
        v, b, z, s = float(x[i]), float(result.baseline[i]), float(result.z[i]), \
            float(result.sigma[i])
        t = None if ts is None else ts[i]
        f = float(result.factor[i])
        if f:
            new = v / f
            times_txt = f"{f:g}" if f >= 1 else f"1/{round(1 / f)}"
            reason = (f"value {v:.6g} is about {times_txt} × the {kind} {b:.6g} "
                      f"(robust-z {z:.1f}); rescaled to {new:.6g} (robust-z {rz[i]:.1f}), "
                      "a likely unit error")
            items.append(Correction(int(i), t, v, new, factor_name(f), reason, z, b))
        else:
            side = "above" if z > 0 else "below"
            reason = (f"value {v:.6g} is {abs(z):.1f} robust-z {side} the {kind} {b:.6g} "
                      f"(MAD {s / MAD_TO_SIGMA:.3g}); replaced by the baseline")
            method = "hampel_seasonal" if result.seasonal else "hampel"
            items.append(Correction(int(i), t, v, b, method, reason, z, b))
    return Corrections(tuple(items), result.threshold, season_length)


def propose_corrections(values: npt.ArrayLike,
                        timestamps: Sequence[TimeLike] | npt.ArrayLike | None = None, *,
                        season_length: int | None = None, events: Sequence[Window] = (),
                        interval: np.timedelta64 | None = None, threshold: float = 5.0,
                        window_cycles: int = 3) -> Corrections:
    """Corrections for ``values`` (shape (n,)) at ``timestamps`` (shape (n,), any order).

    See :mod:`kpidash.core.clean.outliers` for the baseline, the robust z and the scale
    test; ``events`` are ``(start, end)`` windows, end excluded, whose points are never
    corrected. Deterministic: the same input gives the same corrections.
    """
    ts = None if timestamps is None else times(timestamps)
    result = scan(values, ts, season_length=season_length, events=events, interval=interval,
                  threshold=threshold, window_cycles=window_cycles)
    return corrections_from_scan(values, ts, result, season_length)
