"""Deterministic SaaS demo data, with a manifest of the incidents injected into it.

Dataset
-------
One point per series per day, at 00:00 UTC, for the nine *simple* KPIs of the built-in
SaaS pack (ratio and derived KPIs — arr, arpa, customer_churn_rate, conversion_rate — are
computed by the engine, never generated)::

    revenue, mrr, active_customers,          region × plan × channel   48 series each
    new_customers, churned_customers, signups
    leads, conversions                       region × channel          16 series each, plan null
    active_users                             region × plan             12 series, channel null

That is 332 series; the default 730-day window holds 332 × 730 − 60 = 242,300 rows (the
injected gap removes 5 days × 12 active_users series). Columns: ``timestamp``
(timestamp[us, UTC]), ``kpi``, ``value`` (float64; counts are whole numbers, money is in
dollars rounded to cents), ``region``, ``plan``, ``channel`` (null where the KPI has no such
dimension). Rows are ordered by day, then KPI (in :data:`KPIS` order), then series.

Formulas
--------
``t`` is days since 2024-01-01 (so levels depend on the absolute date, not on the window),
``w`` a weekly factor (Monday–Sunday, mean 1, weekends lower), ``y`` a mild yearly factor
(a dip around 27 December and a smaller one in August), ``z ~ N(0, 1)`` drawn afresh for
every (day, series)::

    L(t)              = B · exp(g·t + a·sin(2πt/182.6 + φ))
                        smooth customer stock per series; g from 1.5–4.5 %/month and
                        a < g·182.6/2π, so L always grows
    active_customers  = round(L(t))       pro ≈ 18,000 and enterprise ≈ 1,100 on 2024-01-01;
                                          0 on the free plan (free accounts do not pay)
    churned_customers ~ Poisson(active · c)
                                          c ≈ 0.18–0.30 %/day (pro), 0.09–0.15 %/day (enterprise)
    new_customers     = active(t) − active(t−1) + churned, so the stock identity
                        active(t) = active(t−1) + new − churned holds outside incidents
    mrr               = active · price · exp(0.004 z)
                                          price: free $0, pro $49, enterprise $990
    revenue           = mrr / 30.4375 · w · y · exp(0.06 z)      ≈ one day of MRR
    leads             ~ Poisson(E[new customers of the region × channel] / p · w · y · exp(0.1 z))
    conversions       ~ Binomial(leads, p)     p ≈ 6–13 % per series, so conversions ≤ leads
    signups           ~ Poisson(λ · w · y · exp(0.1 z))
                                          λ = expected new customers on paid plans; on the
                                          free plan ≈ 900/day overall, growing 2–4 %/month
    active_users      = round(U · w · y · exp(0.03 z))
                                          U = customers × users per account (pro 3.2,
                                          enterprise 28); ≈ 42,000 free users, growing

Each exp(σz) factor is divided by exp(σ²/2) so that it has mean 1.

Determinism
-----------
Per-series constants (B, g, φ, c, p …) come from ``default_rng([seed, 0])``; every random
draw for a day comes from ``default_rng([seed, day.toordinal()])``, drawn for all series at
once in a fixed order. A value therefore depends only on the seed, the day, the series and
the incidents — never on the window or the wall clock — so :func:`generate_days` (no
incidents) reproduces :func:`generate` on every day and series an incident does not touch.

Incidents
---------
Placed relative to the window's end ``E`` and listed in ``manifest["incidents"]``; an
incident is left out (and not listed) unless at least 14 days of the window precede it, so
that every listed incident has a baseline to be detected against:

1. ``churn-spike``: churned_customers × 4 in all series, E−20 … E−18.
2. ``revenue-drop-eu``: revenue × 0.55 for region EU only, E−45 … E−36.
3. ``signups-level-shift``: signups × 1.35 in all series from E−120 to E.
4. ``revenue-outlier-1..3``: revenue × 8 on one day in one series each (E−62 NA/enterprise/paid,
   E−97 APAC/pro/organic, E−233 LATAM/enterprise/referral).
5. ``active-users-gap``: no active_users rows at all for E−200 … E−196.

Multiplied counts are rounded back to whole numbers, multiplied money to cents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from kpidash.errors import ConfigError

__all__ = [
    "CHANNELS",
    "DEMO_SEED",
    "KPIS",
    "KPI_DIMENSIONS",
    "PLANS",
    "REGIONS",
    "SCHEMA",
    "DemoData",
    "generate",
    "generate_days",
    "manifest_json",
]

REGIONS = ("NA", "EU", "APAC", "LATAM")
PLANS = ("free", "pro", "enterprise")
CHANNELS = ("organic", "paid", "referral", "partner")
DEMO_SEED = 20240101

_FULL = ("region", "plan", "channel")
KPI_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "revenue": _FULL,
    "mrr": _FULL,
    "active_customers": _FULL,
    "new_customers": _FULL,
    "churned_customers": _FULL,
    "leads": ("region", "channel"),
    "conversions": ("region", "channel"),
    "signups": _FULL,
    "active_users": ("region", "plan"),
}
KPIS: tuple[str, ...] = tuple(KPI_DIMENSIONS)
_DIM_VALUES: dict[str, tuple[str, ...]] = {"region": REGIONS, "plan": PLANS, "channel": CHANNELS}
_MONEY = frozenset({"revenue", "mrr"})

SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("kpi", pa.string()),
        ("value", pa.float64()),
        ("region", pa.string()),
        ("plan", pa.string()),
        ("channel", pa.string()),
    ]
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_EPOCH = date(2024, 1, 1).toordinal()
_UNIX_EPOCH = date(1970, 1, 1).toordinal()
_US_PER_DAY = 86_400_000_000
_MONTH = 30.4375  # mean days per month
_WIGGLE_PERIOD = 182.625  # days; half a year
_BASELINE_DAYS = 14  # days of the window an incident needs before it
_PRICE = np.array([0.0, 49.0, 990.0])  # $/month per customer, in PLANS order
_USERS_PER_ACCOUNT = np.array([0.0, 3.2, 28.0])  # in PLANS order; free users are modelled apart
_REGION_SHARE = np.array([0.42, 0.30, 0.18, 0.10])
_CHANNEL_SHARE = np.array(  # plan × channel; enterprise sells more through partners
    [[0.45, 0.30, 0.15, 0.10], [0.38, 0.30, 0.18, 0.14], [0.20, 0.20, 0.25, 0.35]]
)
_CUSTOMERS_2024 = np.array([0.0, 18_000.0, 1_100.0])
_CHURN_RANGE = np.array([[0.0, 0.0], [0.0018, 0.0030], [0.0009, 0.0015]])  # per day, per plan
_FREE_SIGNUPS_2024 = 900.0  # per day, all free series together
_FREE_USERS_2024 = 42_000.0
# Monday … Sunday; normalised to mean 1 below.
_WEEK_REVENUE = np.array([1.06, 1.08, 1.08, 1.06, 1.02, 0.86, 0.84])
_WEEK_FUNNEL = np.array([1.14, 1.16, 1.14, 1.10, 1.00, 0.74, 0.72])
_WEEK_USAGE = np.array([1.12, 1.14, 1.14, 1.12, 1.04, 0.72, 0.72])
# Standard normal draws per day, in this order: mrr, revenue, leads, signups, active_users.
_Z_SLICES = {"mrr": (0, 48), "revenue": (48, 96), "leads": (96, 112), "signups": (112, 160),
             "active_users": (160, 172)}
_N_NORMAL = 172


@dataclass(frozen=True)
class DemoData:
    """Generated points (columns as :data:`SCHEMA`) and the JSON-serialisable manifest."""

    points: pa.Table
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Incident:
    id: str
    kind: str  # spike | drop | level_shift | outlier | gap
    kpi: str
    start: date
    end: date
    dims: dict[str, str] = field(default_factory=dict)
    magnitude: float | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "kpi": self.kpi, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "dims": dict(self.dims), "magnitude": self.magnitude,
            "description": self.description,
        }


@dataclass(frozen=True)
class _Params:
    """Per-series constants; full-layout arrays have 48 entries in region × plan × channel order."""

    base: F64  # customers on 2024-01-01
    growth: F64  # log growth per day
    wiggle: F64  # amplitude of the slow growth wiggle, in log units
    phase: F64
    churn: F64  # churn probability per customer per day
    conv_p: F64  # (16,) conversion probability per region × channel
    free_signups: F64  # (48,) free-plan signups per day on 2024-01-01, 0 on paid plans
    free_signup_growth: F64  # (48,)
    free_users: F64  # (4,) free active users per region on 2024-01-01
    free_user_growth: F64  # (4,)
    users_per_account: F64  # (4, 3)


def _params(seed: int) -> _Params:
    # Day ordinals start at 1, so [seed, 0] never collides with a day's stream.
    rng = np.random.default_rng([seed, 0])
    jitter = np.exp(0.15 * rng.standard_normal((4, 3, 4)))
    base = (_REGION_SHARE[:, None, None] * _CUSTOMERS_2024[None, :, None]
            * _CHANNEL_SHARE[None, :, :] * jitter).reshape(48)
    growth = np.log1p(rng.uniform(0.015, 0.045, 48)) / _MONTH
    wiggle = 0.5 * growth * _WIGGLE_PERIOD / (2 * np.pi)  # keeps dL/dt ≥ g/2 > 0
    phase = rng.uniform(0.0, 2 * np.pi, 48)
    lo, hi = _CHURN_RANGE[:, 0], _CHURN_RANGE[:, 1]
    u = rng.uniform(0.0, 1.0, (4, 3, 4))
    churn = (lo[None, :, None] + (hi - lo)[None, :, None] * u).reshape(48)
    conv_p = rng.uniform(0.06, 0.13, 16)
    free = np.zeros((4, 3, 4))
    free[:, 0, :] = (_FREE_SIGNUPS_2024 * _REGION_SHARE[:, None] * _CHANNEL_SHARE[0][None, :]
                     * np.exp(0.15 * rng.standard_normal((4, 4))))
    free_signup_growth = np.log1p(rng.uniform(0.02, 0.04, 48)) / _MONTH
    free_users = _FREE_USERS_2024 * _REGION_SHARE * np.exp(0.1 * rng.standard_normal(4))
    free_user_growth = np.log1p(rng.uniform(0.02, 0.035, 4)) / _MONTH
    users_per_account = _USERS_PER_ACCOUNT[None, :] * np.exp(0.1 * rng.standard_normal((4, 3)))
    return _Params(base, growth, wiggle, phase, churn, conv_p, free.reshape(48),
                   free_signup_growth, free_users, free_user_growth, users_per_account)


def _weekly(pattern: F64, dow: I64) -> F64:
    return np.asarray((pattern / pattern.mean())[dow], dtype=np.float64)


def _yearly(doy: I64, december: float, august: float) -> F64:
    """1 − december·bump(27 Dec, σ 7 d) − august·bump(10 Aug, σ 18 d), circular over the year."""

    def bump(center: float, width: float) -> F64:
        d = np.abs(doy - center)
        d = np.minimum(d, 365.25 - d)
        return np.asarray(np.exp(-0.5 * (d / width) ** 2), dtype=np.float64)

    return 1.0 - december * bump(360.0, 7.0) - august * bump(221.0, 18.0)


def _stock(t: F64, prm: _Params) -> F64:
    """Smooth customer stock L(t), shape (days, 48)."""
    tt = t[:, None]
    x = prm.growth * tt + prm.wiggle * np.sin(2 * np.pi * tt / _WIGGLE_PERIOD + prm.phase)
    return np.asarray(prm.base * np.exp(x), dtype=np.float64)


def _simulate(first: date, n: int, seed: int) -> dict[str, F64]:
    """Clean values of every KPI, each (n days, series) in the KPI's series order."""
    prm = _params(seed)
    ords = np.arange(first.toordinal(), first.toordinal() + n, dtype=np.int64)
    t = (ords - _EPOCH).astype(np.float64)
    dow = (ords + 6) % 7  # Monday = 0, as date.weekday()
    days = np.datetime64(first, "D") + np.arange(n)
    doy = (days - days.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    w_rev, w_fun, w_use = (_weekly(p, dow)[:, None] for p in (_WEEK_REVENUE, _WEEK_FUNNEL,
                                                             _WEEK_USAGE))
    y_rev = _yearly(doy, 0.06, 0.02)[:, None]
    y_fun = _yearly(doy, 0.25, 0.08)[:, None]
    y_use = _yearly(doy, 0.20, 0.05)[:, None]

    # One generator per day: all of a day's draws, for all series, in a fixed order.
    gens = [np.random.default_rng([seed, int(o)]) for o in ords]
    z = np.stack([g.standard_normal(_N_NORMAL) for g in gens])

    def zs(kpi: str, sigma: float) -> F64:
        a, b = _Z_SLICES[kpi]
        return np.asarray(np.exp(sigma * z[:, a:b] - sigma**2 / 2), dtype=np.float64)

    level = _stock(t, prm)
    active = np.rint(level)
    active_prev = np.rint(_stock(t - 1.0, prm))
    expected_new = level * (prm.growth + prm.churn)
    leads_lam = (expected_new.reshape(n, 4, 3, 4).sum(axis=2).reshape(n, 16) / prm.conv_p
                 * w_fun * y_fun * zs("leads", 0.1))
    signup_base = expected_new + prm.free_signups * np.exp(prm.free_signup_growth * t[:, None])
    signups_lam = signup_base * w_fun * y_fun * zs("signups", 0.1)
    lam = np.hstack([active * prm.churn, leads_lam, signups_lam])
    counts = np.stack([g.poisson(row) for g, row in zip(gens, lam, strict=True)])
    churned = np.minimum(counts[:, :48], active)
    leads = counts[:, 48:64]
    signups = counts[:, 64:112]
    conversions = np.stack([g.binomial(k, prm.conv_p) for g, k in zip(gens, leads, strict=True)])

    new = np.maximum(active - active_prev + churned, 0.0)
    price = np.tile(np.repeat(_PRICE, 4), 4)
    mrr = np.round(active * price * zs("mrr", 0.004), 2)
    revenue = np.round(mrr / _MONTH * w_rev * y_rev * zs("revenue", 0.06), 2)

    paid_users = active.reshape(n, 4, 3, 4).sum(axis=3) * prm.users_per_account
    paid_users[:, :, 0] = prm.free_users * np.exp(prm.free_user_growth * t[:, None])
    active_users = np.rint(paid_users.reshape(n, 12) * w_use * y_use * zs("active_users", 0.03))

    out = {
        "revenue": revenue, "mrr": mrr, "active_customers": active, "new_customers": new,
        "churned_customers": churned, "leads": leads, "conversions": conversions,
        "signups": signups, "active_users": active_users,
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


@cache
def _series_dims(kpi: str) -> tuple[dict[str, str], ...]:
    dims = KPI_DIMENSIONS[kpi]
    combos = product(*(_DIM_VALUES[d] for d in dims))
    return tuple(dict(zip(dims, c, strict=True)) for c in combos)


@cache
def _layout() -> tuple[I64, I64, I64, I64]:
    """Per column of the day block (all KPIs' series side by side): kpi, region, plan and
    channel label indices; a dimension's null is index len(values)."""
    cols: list[list[int]] = [[], [], [], []]
    for k, kpi in enumerate(KPIS):
        for s in _series_dims(kpi):
            cols[0].append(k)
            for j, dim in enumerate(_FULL, start=1):
                values = _DIM_VALUES[dim]
                cols[j].append(values.index(s[dim]) if dim in s else len(values))
    kpi_idx, region, plan, channel = (np.asarray(x, dtype=np.int64) for x in cols)
    return kpi_idx, region, plan, channel


def _table(first: date, values: dict[str, F64], present: dict[str, Mask] | None) -> pa.Table:
    n = values[KPIS[0]].shape[0]
    block = np.hstack([values[k] for k in KPIS])
    width = block.shape[1]
    day_us = (np.arange(n, dtype=np.int64) + first.toordinal() - _UNIX_EPOCH) * _US_PER_DAY
    ts = np.repeat(day_us, width)
    value = block.ravel()
    idx = [np.tile(col, n) for col in _layout()]
    if present is not None:
        keep = np.hstack([present[k] for k in KPIS]).ravel()
        ts, value, idx = ts[keep], value[keep], [i[keep] for i in idx]
    labels = [pa.array(list(KPIS), pa.string())] + [
        pa.array([*_DIM_VALUES[d], None], pa.string()) for d in _FULL
    ]
    strings = [lab.take(pa.array(i)) for lab, i in zip(labels, idx, strict=True)]
    arrays = [pa.array(ts, pa.timestamp("us", tz="UTC")), strings[0], pa.array(value, pa.float64()),
              *strings[1:]]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _incidents(first: date, end: date) -> list[_Incident]:
    def day(offset: int) -> date:
        return end - timedelta(days=offset)

    def span(a: date, b: date) -> str:
        return f"{a.isoformat()} to {b.isoformat()}"

    candidates: list[_Incident] = [
        _Incident("churn-spike", "spike", "churned_customers", day(20), day(18), {}, 4.0,
                  f"Churned customers quadrupled in every series for 3 days, "
                  f"{span(day(20), day(18))}."),
        _Incident("revenue-drop-eu", "drop", "revenue", day(45), day(36), {"region": "EU"}, 0.55,
                  f"Revenue in region EU fell to 55% of normal for 10 days, "
                  f"{span(day(45), day(36))}, while other regions were unaffected."),
        _Incident("signups-level-shift", "level_shift", "signups", day(120), end, {}, 1.35,
                  f"Signups stepped up by 35% in every series from {day(120).isoformat()} "
                  f"to the end of the data."),
    ]
    outliers = [(62, "NA", "enterprise", "paid"), (97, "APAC", "pro", "organic"),
                (233, "LATAM", "enterprise", "referral")]
    for i, (off, region, plan, channel) in enumerate(outliers, start=1):
        candidates.append(_Incident(
            f"revenue-outlier-{i}", "outlier", "revenue", day(off), day(off),
            {"region": region, "plan": plan, "channel": channel}, 8.0,
            f"Revenue for {region}/{plan}/{channel} was 8 times its usual level on "
            f"{day(off).isoformat()} only."))
    candidates.append(_Incident(
        "active-users-gap", "gap", "active_users", day(200), day(196), {}, None,
        f"Active users have no data at all for 5 days, {span(day(200), day(196))}."))
    earliest = first + timedelta(days=_BASELINE_DAYS)
    return [inc for inc in candidates if inc.start >= earliest]


def _inject(first: date, values: dict[str, F64], incidents: list[_Incident]) -> dict[str, Mask]:
    """Apply incidents in place to ``values``; return which cells have a row."""
    present = {k: np.ones(v.shape, dtype=np.bool_) for k, v in values.items()}
    for inc in incidents:
        rows = slice((inc.start - first).days, (inc.end - first).days + 1)
        cols = np.array([all(s.get(d) == v for d, v in inc.dims.items())
                         for s in _series_dims(inc.kpi)])
        if inc.magnitude is None:
            present[inc.kpi][rows, cols] = False
            continue
        changed = values[inc.kpi][rows, cols] * inc.magnitude
        values[inc.kpi][rows, cols] = (np.round(changed, 2) if inc.kpi in _MONEY
                                       else np.rint(changed))
    return present


def _check_date(name: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ConfigError(f"demo: {name} must be a datetime.date, got {value!r}; "
                          f"pass e.g. datetime.date(2025, 6, 30)")
    return value


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"demo: seed must be a non-negative integer, got {seed!r}")


def generate(end: date, days: int = 730, seed: int = DEMO_SEED) -> DemoData:
    """Daily points for days end-days+1 .. end inclusive (timestamps at 00:00 UTC of each day).

    Incidents that fit in the window (see the module docstring) are injected and listed in
    the manifest. Same arguments give byte-identical output.
    """
    end = _check_date("end", end)
    _check_seed(seed)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(
            f"demo: days must be a positive integer, got {days!r}; the default is 730"
        )
    first = end - timedelta(days=days - 1)
    values = _simulate(first, days, seed)
    incidents = _incidents(first, end)
    present = _inject(first, values, incidents)
    points = _table(first, values, present)
    manifest: dict[str, Any] = {
        "seed": seed,
        "start": first.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "kpis": list(KPIS),
        "dimensions": {d: list(_DIM_VALUES[d]) for d in _FULL},
        "kpi_dimensions": {k: list(v) for k, v in KPI_DIMENSIONS.items()},
        "rows": points.num_rows,
        "incidents": [inc.to_dict() for inc in incidents],
    }
    return DemoData(points=points, manifest=manifest)


def generate_days(first: date, last: date, seed: int = DEMO_SEED) -> pa.Table:
    """Points for a date range with NO incidents injected (used by `kpidash demo --watch` to
    append new days). Same columns, and the same values :func:`generate` gives those days
    wherever no incident applies."""
    first = _check_date("first", first)
    last = _check_date("last", last)
    _check_seed(seed)
    if last < first:
        raise ConfigError(f"demo: last ({last.isoformat()}) is before first "
                          f"({first.isoformat()}); pass first <= last")
    n = (last - first).days + 1
    return _table(first, _simulate(first, n, seed), None)


def manifest_json(data: DemoData) -> str:
    """The manifest as stable JSON: sorted keys, two-space indent, ASCII only."""
    return json.dumps(data.manifest, sort_keys=True, indent=2)
