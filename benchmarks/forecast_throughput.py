"""Forecast throughput: 10,000 synthetic daily series of two years, weekly season, 28-day horizon.

Usage::

    .venv/bin/python benchmarks/forecast_throughput.py [--series 10000] [--jobs 1,2]

Series (numpy, seed 20240501, so every run forecasts the same data): level 50–5,000, a linear
trend of ±30 % over the two years, a weekly profile of ±20 % (multiplicative), lognormal
noise of 3–15 %, lengths 730 days. ``forecast(series, 28, season_length=7)`` with the default
``model="auto"`` (every candidate, backtest of 6 windows, calibrated 80/95 % intervals) runs
once per ``n_jobs`` value; series/s = series ÷ wall time of that call (data generation and
imports excluded). The holdout MASE of the last 28 days is printed beside it as a sanity check.
Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt

SEED = 20240501
DAYS = 730
H = 28


def make(n: int) -> list[npt.NDArray[np.float64]]:
    rng = np.random.default_rng(SEED)
    t = np.arange(DAYS + H)
    level = rng.uniform(np.log(50), np.log(5000), n)
    trend = rng.uniform(-0.3, 0.3, n)
    week = rng.uniform(0.0, 0.2, n)
    phase = rng.integers(0, 7, n)
    noise = rng.uniform(0.03, 0.15, n)
    profile = np.sin(2 * np.pi * (t[None, :] + phase[:, None]) / 7)
    y = (np.exp(level)[:, None] * (1 + trend[:, None] * t[None, :] / DAYS)
         * (1 + week[:, None] * profile) * np.exp(noise[:, None] * rng.standard_normal((n, t.size))))
    return list(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--jobs", default="1,2")
    a = ap.parse_args()
    from kpidash.core.forecast import forecast

    full = make(a.series)
    train = [y[:DAYS] for y in full]
    test = np.array([y[DAYS:] for y in full])
    scale = np.array([np.mean(np.abs(y[7:] - y[:-7])) for y in train])
    print(f"{a.series:,} series × {DAYS} days, horizon {H}, season 7")
    print(f"{'n_jobs':>6} {'seconds':>8} {'series/s':>9} {'MASE':>6} {'cov95':>6}  models")
    for jobs in (int(x) for x in a.jobs.split(",")):
        t0 = time.perf_counter()
        fcs = forecast(train, H, season_length=7, n_jobs=jobs)
        dt = time.perf_counter() - t0
        mean = np.array([f.mean for f in fcs])
        mase = float(np.mean(np.mean(np.abs(test - mean), axis=1) / scale))
        cov = float(np.mean((test >= np.array([f.lower[95] for f in fcs]))
                            & (test <= np.array([f.upper[95] for f in fcs]))))
        models: dict[str, int] = {}
        for f in fcs:
            models[f.model] = models.get(f.model, 0) + 1
        top = ", ".join(f"{k} {v}" for k, v in sorted(models.items(), key=lambda kv: -kv[1])[:4])
        print(f"{jobs:>6} {dt:>8.2f} {a.series / dt:>9.0f} {mase:>6.3f} {100 * cov:>5.1f}%  {top}")


if __name__ == "__main__":
    main()
