"""Anomaly scoring throughput: series per second with ``score_many``.

Usage::

    .venv/bin/python benchmarks/anomaly_throughput.py [--series 10000] [--days 730] [--reps 3]

Data (numpy, seed 1): ``--series`` daily series of ``--days`` points, each a random level
(10 … 1e6) with a weekly profile, slow growth, 5 % Gaussian noise, about 1 % missing values
and a few spikes. Scored with ``score_many(series, season_length=7, n_jobs=J)`` for J = 1, 2
and with the season detected (``season_length=None``, J = 1); best of ``--reps`` timed runs.
A single-series ``score`` loop over the first 200 series is timed for comparison. Prints
figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kpidash.core.anomaly import score, score_many


def make(series: int, days: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(days)
    week = np.array([1.05, 1.08, 1.07, 1.05, 1.0, 0.9, 0.85])
    level = 10 ** rng.uniform(1, 6, series)[:, None]
    growth = np.exp(rng.uniform(0, 0.001, series)[:, None] * t)
    x = level * growth * week[t % 7] * (1 + 0.05 * rng.standard_normal((series, days)))
    x[rng.random((series, days)) < 0.01] = np.nan
    spikes = rng.random((series, days)) < 0.002
    x[spikes] *= 1.6
    return list(x)


def best(fn: object, reps: int) -> float:
    assert callable(fn)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    data = make(args.series, args.days)
    print(f"{args.series:,} daily series × {args.days} points "
          f"({args.series * args.days:,} points)")
    print(f"{'run':<38}{'seconds':>9}{'series/s':>12}{'points/s':>14}")
    ref = None
    for label, kw in (("score_many season=7 n_jobs=1", {"season_length": 7, "n_jobs": 1}),
                      ("score_many season=7 n_jobs=2", {"season_length": 7, "n_jobs": 2}),
                      ("score_many season=auto n_jobs=1", {"season_length": None, "n_jobs": 1})):
        out: list[object] = []
        secs = best(lambda kw=kw, out=out: out.append(score_many(data, **kw)), args.reps)
        res = out[-1]
        assert isinstance(res, list)
        if ref is None:
            ref = res
        elif kw["season_length"] == 7:
            assert all(np.array_equal(a.z, b.z) for a, b in zip(ref, res, strict=True))
        print(f"{label:<38}{secs:>9.2f}{args.series / secs:>12,.0f}"
              f"{args.series * args.days / secs:>14,.0f}")
    k = min(200, args.series)
    secs = best(lambda: [score(x, season_length=7) for x in data[:k]], 1)
    print(f"{f'score() one at a time ({k} series)':<38}{secs:>9.2f}{k / secs:>12,.0f}"
          f"{k * args.days / secs:>14,.0f}")
    flagged = np.mean([s.is_anomaly.mean() for s in ref or []])
    print(f"flagged share of points (season=7): {flagged:.4f}")


if __name__ == "__main__":
    main()
