"""Anomaly detection quality on a labelled synthetic suite: kpidash vs two baselines.

Usage::

    .venv/bin/python benchmarks/anomaly.py [--cases 240] [--seed 7]

Suite (generated here, deterministically from ``--seed``): ``--cases`` series, each of a
length from {300, 500, 730, 1000}, a season of none, 7 (daily data, weekly cycle) or 24
(hourly data, daily cycle) with an amplitude of 3–8 σ, a small random trend, Gaussian noise
σ, then shifted so that its minimum is 20–200 σ above zero (KPIs are positive) and multiplied
by a scale 10^U(−3, 9) (1e-3 … 1e9).
Case types cycle through:

* ``spike`` / ``dip`` — 3 single points ±5…10 σ;
* ``level_shift`` — 2 permanent steps of ±4…8 σ;
* ``trend_change`` — the slope changes by ±0.5…1 σ per step, for good;
* ``variance`` — the noise grows 4…6 times, for good;
* ``seasonal`` — a spike and a dip on a series that always has a season;
* ``gaps`` — 2 spikes and 3 gaps of 1–7 missing points plus one of 30;
* ``mixed`` — a spike, a dip and a level shift;
* ``clean`` — no event (false positives only).

About a third of the other cases also get short gaps. Events start after point 120 (past
every method's warm-up), at least 60 points apart, never inside a gap.

Matching: an event is *detected* when the method flags a point within ``k`` points of its
start (``start … start + k``): k = 1 for spikes and dips, 5 for level shifts, 10 for trend
and variance changes. *Delay* = first flagged point in that span − start. Each event also
owns a window where flags are not false positives: spikes/dips ``start … start+1``, level
shifts ``start … start+10`` (only the onset is the event: a method that keeps flagging the new
level pays for it), trend and variance changes ``start … start+20``. *False positives* =
flagged points outside every event window. Precision = TP / (TP + FP) with TP = detected
events; recall = TP / events; F1 their harmonic mean; delays are medians over detected events.

Methods:

* ``kpidash`` — :func:`kpidash.core.anomaly.score_many` with its defaults (threshold
  :data:`~kpidash.core.anomaly.DEFAULT_THRESHOLD` = 4, season detected automatically from the
  first 72 points);
* ``kpidash+m`` — the same with the true season length given (what the CLI infers from the
  sampling interval);
* ``rolling-z`` — z of each point against the mean and std of the 30 points before it,
  anomaly when |z| > 3 (the original prototype's rule, causal);
* ``gaussian`` — windowed Gaussian: mean and std of the 100 points before it, anomaly when
  the two-sided Gaussian tail probability is below 0.001 (|z| > 3.29).

The headline table runs kpidash with its default threshold (the baselines at the same |z|);
a second table at threshold 3 is a secondary figure (there ±3σ noise draws cap precision: see
its noise-floor row). Targets, judged on the headline table: kpidash F1 ≥ 0.9, ahead of both
baselines, median delay ≤ 2 points. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from kpidash.core.anomaly import DEFAULT_THRESHOLD, score_many

KINDS = ("spike", "dip", "level_shift", "trend_change", "variance", "seasonal", "gaps", "mixed",
         "clean")
DETECT_WITHIN = {"spike": 1, "dip": 1, "level_shift": 5, "trend_change": 10, "variance": 10}
EXEMPT = {"spike": 1, "dip": 1, "level_shift": 10, "trend_change": 20, "variance": 20}
TARGET_F1 = 0.9
TARGET_DELAY = 2.0


@dataclass
class Case:
    name: str
    values: np.ndarray
    season: int
    events: list[tuple[str, int]] = field(default_factory=list)
    noise_z: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the N(0, 1) draws


def _profile(rng: np.random.Generator, m: int, amp: float) -> np.ndarray:
    if m == 7:
        p = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.45, 0.4]) + rng.normal(0, 0.05, 7)
    else:
        ph = np.arange(m) / m
        p = np.sin(2 * np.pi * (ph - 0.3)) + 0.4 * np.sin(4 * np.pi * ph + rng.uniform(0, 6))
    p = p - p.mean()
    return np.asarray(amp * p / np.abs(p).max(), dtype=np.float64)


def _starts(rng: np.random.Generator, n: int, count: int, blocked: np.ndarray) -> list[int]:
    """``count`` starts in 120 … n−40, one per equal segment, ≥ 60 apart, clear of gaps."""
    edges = np.linspace(120, n - 40, count + 1).astype(int)
    out: list[int] = []
    for a, b in itertools.pairwise(edges):
        lo = max(a, out[-1] + 60) if out else a
        for _ in range(1000):
            s = int(rng.integers(lo, max(b, lo + 1)))
            if not blocked[max(s - 3, 0): s + 12].any():
                break
        blocked[max(s - 3, 0): s + 12] = False  # never inside a gap
        out.append(s)
    return out


def make_case(i: int, rng: np.random.Generator) -> Case:
    kind = KINDS[i % len(KINDS)]
    n = int(rng.choice([300, 500, 730, 1000]))
    m = 7 if kind == "seasonal" and rng.random() < 0.5 else int(rng.choice([1, 7, 24]))
    if kind == "seasonal" and m == 1:
        m = 24
    t = np.arange(n)
    base = rng.uniform(-0.02, 0.02) * t
    if m > 1:
        base = base + _profile(rng, m, rng.uniform(3, 8))[t % m]
    draws = rng.standard_normal(n)
    noise = draws.copy()
    gaps = np.zeros(n, dtype=bool)
    if kind == "gaps" or (kind not in ("clean", "gaps") and rng.random() < 0.33):
        for _ in range(3):
            g = int(rng.integers(100, n - 10))
            gaps[g: g + int(rng.integers(1, 8))] = True
        if kind == "gaps":
            g = int(rng.integers(100, n - 40))
            gaps[g: g + 30] = True
    events: list[tuple[str, int]] = []
    y = base.copy()

    def add_point(s: int, up: bool) -> None:
        y[s] += (1 if up else -1) * rng.uniform(5, 10)
        events.append(("spike" if up else "dip", s))

    if kind in ("spike", "dip"):
        for s in _starts(rng, n, 3, gaps):
            add_point(s, kind == "spike")
    elif kind == "level_shift":
        for s in _starts(rng, n, 2, gaps):
            y[s:] += rng.choice([-1, 1]) * rng.uniform(4, 8)
            events.append(("level_shift", s))
    elif kind == "trend_change":
        [s] = _starts(rng, n, 1, gaps)
        y[s:] += rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * (t[s:] - s + 1)
        events.append(("trend_change", s))
    elif kind == "variance":
        [s] = _starts(rng, n, 1, gaps)
        noise[s:] *= rng.uniform(4, 6)
        events.append(("variance", s))
    elif kind in ("seasonal", "gaps"):
        a, b = _starts(rng, n, 2, gaps)
        add_point(a, True)
        add_point(b, kind == "gaps")
    elif kind == "mixed":
        a, b, c = _starts(rng, n, 3, gaps)
        add_point(a, True)
        add_point(b, False)
        y[c:] += rng.choice([-1, 1]) * rng.uniform(4, 8)
        events.append(("level_shift", c))
    scale = 10.0 ** rng.uniform(-3, 9)
    clean = y + noise
    values = scale * (clean - clean[~gaps].min() + rng.uniform(20, 200))
    values[gaps] = np.nan
    draws[gaps] = 0.0
    return Case(kind, values, m, sorted(events, key=lambda e: e[1]), draws)


def suite(cases: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [make_case(i, rng) for i in range(cases)]


def rolling_z(x: np.ndarray, window: int = 30, z: float = 3.0) -> np.ndarray:
    s = pd.Series(x)
    mu = s.rolling(window, min_periods=window).mean().shift(1)
    sd = s.rolling(window, min_periods=window).std().shift(1)
    return np.asarray((np.abs(s - mu) > z * sd).to_numpy())


def gaussian(x: np.ndarray, window: int = 100, p: float = 0.001) -> np.ndarray:
    return rolling_z(x, window, float(stats.norm.isf(p / 2)))


@dataclass
class Tally:
    events: int = 0
    tp: int = 0
    fp: int = 0
    delays: list[int] = field(default_factory=list)
    by_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    delay_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    fp_by_case: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, case: Case, flags: np.ndarray) -> None:
        exempt = np.zeros(flags.shape[0], dtype=bool)
        for kind, s in case.events:
            exempt[s: s + EXEMPT[kind] + 1] = True
            self.events += 1
            self.by_kind[kind][1] += 1
            hit = np.flatnonzero(flags[s: s + DETECT_WITHIN[kind] + 1])
            if hit.size:
                self.tp += 1
                self.by_kind[kind][0] += 1
                self.delays.append(int(hit[0]))
                self.delay_kind[kind].append(int(hit[0]))
        fp = int((flags & ~exempt).sum())
        self.fp += fp
        self.fp_by_case[case.name] += fp

    def figures(self) -> tuple[float, float, float, float]:
        prec = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        rec = self.tp / self.events if self.events else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        delay = statistics.median(self.delays) if self.delays else float("nan")
        return prec, rec, f1, delay


def exempt_mask(case: Case) -> np.ndarray:
    out = np.zeros(case.values.shape[0], dtype=bool)
    for kind, s in case.events:
        out[s: s + EXEMPT[kind] + 1] = True
    return out


def run_table(cases: list[Case], z: float | None) -> dict[str, Tally]:
    """One table of figures with every method at the threshold |z| ≥ ``z`` (None: kpidash's
    default threshold, passed to kpidash as no argument at all)."""
    default = z is None
    z = DEFAULT_THRESHOLD if z is None else z
    p = float(2 * stats.norm.sf(z)) if z != 3.0 else 0.001

    def kp(known: bool) -> Callable[[list[Case]], list[np.ndarray]]:
        def run(cs: list[Case]) -> list[np.ndarray]:
            seasons = [c.season if known else None for c in cs]
            values = [c.values for c in cs]
            res = (score_many(values, season_length=seasons) if default else
                   score_many(values, season_length=seasons, threshold=z))
            return [s.is_anomaly for s in res]
        return run

    methods: dict[str, Callable[[list[Case]], list[np.ndarray]]] = {
        "kpidash": kp(False),
        "kpidash+m": kp(True),
        "rolling-z": lambda cs: [rolling_z(c.values, 30, z) for c in cs],
        "gaussian": lambda cs: [gaussian(c.values, 100, p) for c in cs],
    }
    tallies: dict[str, Tally] = {}
    label = f"default threshold={z:g}" if default else f"threshold={z:g}"
    print(f"\nthreshold |z| ≥ {z:g} (kpidash {label}; rolling-z |z| > {z:g}; gaussian "
          f"tail p < {p:.2g})")
    print(f"{'method':<11}{'events':>7}{'TP':>6}{'FP':>6}{'precision':>11}{'recall':>8}"
          f"{'F1':>7}{'median delay':>14}{'seconds':>9}")
    for name, fn in methods.items():
        t0 = time.perf_counter()
        flags = fn(cases)
        secs = time.perf_counter() - t0
        tally = Tally()
        for c, f in zip(cases, flags, strict=True):
            tally.add(c, np.asarray(f, dtype=bool))
        tallies[name] = tally
        prec, rec, f1, delay = tally.figures()
        print(f"{name:<11}{tally.events:>7}{tally.tp:>6}{tally.fp:>6}{prec:>11.3f}{rec:>8.3f}"
              f"{f1:>7.3f}{delay:>14.1f}{secs:>9.2f}")
    events = sum(len(c.events) for c in cases)
    floor = sum(int((np.abs(c.noise_z) >= z)[~exempt_mask(c)].sum()) for c in cases)
    prec = events / (events + floor)
    print(f"{'noise floor':<11}{events:>7}{events:>6}{floor:>6}{prec:>11.3f}{1.0:>8.3f}"
          f"{2 * prec / (prec + 1):>7.3f}   (perfect detector that also flags every "
          f"noise draw beyond ±{z:g}σ)")
    return tallies


def verdicts(tallies: dict[str, Tally], z: float) -> None:
    _prec, _rec, f1, delay = tallies["kpidash"].figures()
    best_base = max(tallies[b].figures()[2] for b in ("rolling-z", "gaussian"))
    rows = [
        (f"kpidash F1 ≥ {TARGET_F1}", f"{f1:.3f}", f1 >= TARGET_F1),
        ("kpidash F1 ahead of both baselines", f"{f1:.3f} vs best {best_base:.3f}",
         f1 > best_base),
        (f"kpidash median delay ≤ {TARGET_DELAY:g} points", f"{delay:.1f}",
         delay <= TARGET_DELAY),
    ]
    print(f"\ntargets at threshold {z:g} (kpidash row: season detected automatically)")
    for label, value, ok in rows:
        print(f"  {label:<40} {value:<22} {'MET' if ok else 'MISSED'}")


def details(tallies: dict[str, Tally]) -> None:
    kinds = sorted({k for t in tallies.values() for k in t.by_kind})
    print("\nrecall (median delay) by event kind")
    print(f"{'method':<11}" + "".join(f"{k:>18}" for k in kinds))
    for name, t in tallies.items():
        cells = []
        for k in kinds:
            hit, tot = t.by_kind[k]
            d = statistics.median(t.delay_kind[k]) if t.delay_kind[k] else float("nan")
            cells.append(f"{hit:>4}/{tot:<4}({d:.1f})")
        print(f"{name:<11}" + "".join(f"{c:>18}" for c in cells))
    print("\nfalse positives by case type")
    print(f"{'method':<11}" + "".join(f"{k:>13}" for k in KINDS))
    for name, t in tallies.items():
        print(f"{name:<11}" + "".join(f"{t.fp_by_case[k]:>13}" for k in KINDS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--details", action="store_true", help="per-kind recall, FPs per case type")
    args = ap.parse_args()
    cases = suite(args.cases, args.seed)
    points = sum(c.values.shape[0] for c in cases)
    events = sum(len(c.events) for c in cases)
    print(f"suite: {len(cases)} series, {points:,} points, {events} labelled events, "
          f"seed {args.seed}; largest |value| per series from "
          f"{min(np.nanmax(np.abs(c.values)) for c in cases):.2g} to "
          f"{max(np.nanmax(np.abs(c.values)) for c in cases):.2g}")
    print("\nheadline: kpidash with its defaults")
    tallies = run_table(cases, None)
    if args.details:
        details(tallies)
    verdicts(tallies, DEFAULT_THRESHOLD)
    print("\nsecondary: threshold 3")
    tallies = run_table(cases, 3.0)
    if args.details:
        details(tallies)
    verdicts(tallies, 3.0)


if __name__ == "__main__":
    main()
