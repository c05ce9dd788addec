"""Forecast accuracy and speed on M4 Hourly and Weekly: kpidash vs AutoETS vs statsmodels.

Usage::

    .venv/bin/python benchmarks/forecast_m4.py /work/shared/data/m4 [--jobs 2] [--sm-every 4]

Every method runs in its own fresh subprocess (``--worker``), so the *cold* time — the whole
subprocess: interpreter start, imports, data loading, JIT compilation, fitting — is measured
the same way for each. Inside the subprocess a 2-series warm-up fit runs first (that is where
statsforecast compiles), then the timed fit of the whole subset: series/s = series ÷ that fit.

* kpidash: ``kpidash.core.forecast.forecast(model="auto", levels=(95,))``; season length
  detected per series (Hourly: mostly 24, a few 23/168 — better than forcing 24, which gives
  MASE ≈ 1.10) and 52 (Weekly, the model's own choice; MASE still scales with m = 1).
* statsforecast AutoETS: ``AutoETS(season_length=24 | 1)``, 95 % intervals from the library.
* statsmodels ExponentialSmoothing: additive damped trend, additive season m = 24 (Hourly) /
  no season (Weekly); 95 % intervals from 200 seeded simulations (``simulate``, bootstrap
  errors). It is slow, so it runs on every ``--sm-every``-th series (a fixed subset) and the
  other methods are scored on the same subset beside it. Note statsmodels 0.15.0's Holt-Winters
  forecasts are wrong at horizons that are multiples of the season (its issue 9538): Hourly
  h = 48 includes steps 24 and 48.
* Naive2 (computed here, as the M4 guide defines it): seasonal adjustment by classical
  multiplicative decomposition when the 90 % autocorrelation test at lag m passes, then naive.

Metrics (README of the data): sMAPE and MASE per series averaged over series; OWA relative to
Naive2; coverage = share of hold-out points inside the 95 % interval. Targets printed beside
the figures: MASE ≤ 0.95 × AutoETS's, coverage in [93 %, 97 %], cold wall time ≤ AutoETS's.
Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SUBSETS: dict[str, dict[str, Any]] = {"Hourly": {"h": 48, "m": 24, "model_m": None, "sf_m": 24},
           "Weekly": {"h": 13, "m": 1, "model_m": 52, "sf_m": 1}}
METHODS = ("kpidash", "autoets", "statsmodels")
Arr = npt.NDArray[np.float64]


def load(root: Path, subset: str) -> tuple[list[str], list[Arr], list[Arr]]:
    import pandas as pd

    tr = pd.read_csv(root / f"{subset}-train.csv", index_col=0)
    te = pd.read_csv(root / f"{subset}-test.csv", index_col=0)
    ids = [str(i) for i in tr.index]
    return (ids, [r.dropna().to_numpy(np.float64) for _, r in tr.iterrows()],
            [te.loc[i].dropna().to_numpy(np.float64) for i in tr.index])


# -- workers (one fresh subprocess each) ------------------------------------------------

def fit_kpidash(train: list[Arr], h: int, m: int | None, jobs: int) -> tuple[Arr, Arr, Arr]:
    from kpidash.core.forecast import forecast

    fcs = forecast(train, h, season_length=m, levels=(95,), n_jobs=jobs)
    return (np.array([f.mean for f in fcs]), np.array([f.lower[95] for f in fcs]),
            np.array([f.upper[95] for f in fcs]))


def fit_autoets(train: list[Arr], h: int, m: int, jobs: int) -> tuple[Arr, Arr, Arr]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    df = pd.DataFrame({"unique_id": np.repeat(np.arange(len(train)), [len(y) for y in train]),
                       "ds": np.concatenate([np.arange(len(y)) for y in train]),
                       "y": np.concatenate(train)})
    sf = StatsForecast(models=[AutoETS(season_length=m)], freq=1, n_jobs=jobs)
    out = sf.forecast(df=df, h=h, level=[95]).sort_values(["unique_id", "ds"])
    k = len(train)
    return (out["AutoETS"].to_numpy().reshape(k, h), out["AutoETS-lo-95"].to_numpy().reshape(k, h),
            out["AutoETS-hi-95"].to_numpy().reshape(k, h))


def _sm_one(args: tuple[Arr, int, int, int]) -> tuple[Arr, Arr, Arr]:
    y, h, m, seed = args
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(y, trend="add", damped_trend=True,
                                     seasonal="add" if m > 1 else None,
                                     seasonal_periods=m if m > 1 else None)
        res = model.fit()
        mean = np.asarray(res.forecast(h), dtype=np.float64)
        sims = np.asarray(res.simulate(h, anchor="end", repetitions=200, error="add",
                                       random_errors="bootstrap", rng=np.random.default_rng(seed)))
    lo, hi = np.quantile(sims, [0.025, 0.975], axis=1)
    return mean, lo, hi


def fit_statsmodels(train: list[Arr], h: int, m: int, jobs: int) -> tuple[Arr, Arr, Arr]:
    from concurrent.futures import ProcessPoolExecutor

    args = [(y, h, m, i) for i, y in enumerate(train)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            res = list(pool.map(_sm_one, args, chunksize=4))
    else:
        res = [_sm_one(a) for a in args]
    return tuple(np.array([r[i] for r in res]) for i in range(3))  # type: ignore[return-value]


def worker(root: Path, subset: str, method: str, jobs: int, every: int, out: Path) -> None:
    cfg = SUBSETS[subset]
    _, train, _ = load(root, subset)
    if method == "statsmodels":
        train = train[::every]
    fit = {"kpidash": fit_kpidash, "autoets": fit_autoets, "statsmodels": fit_statsmodels}[method]
    m = {"autoets": cfg["sf_m"], "kpidash": cfg["model_m"], "statsmodels": cfg["m"]}[method]
    fit(train[:2], cfg["h"], m, 1)                       # warm-up: imports, JIT compilation
    t0 = time.perf_counter()
    mean, lo, hi = fit(train, cfg["h"], m, jobs)
    fit_s = time.perf_counter() - t0
    np.savez(out, mean=mean, lo=lo, hi=hi)
    print(json.dumps({"fit_s": fit_s, "series": len(train)}))


# -- scoring ----------------------------------------------------------------------------

def naive2(train: list[Arr], h: int, m: int) -> Arr:
    from kpidash.core.forecast.seasonality import seasonal_indices, seasonality_test

    out = []
    for y in train:
        if m > 1 and seasonality_test(y, m):
            idx = seasonal_indices(y[None, :], np.array([len(y)]), m, np.array([True]))[0]
            s = idx[np.arange(len(y) + h) % m]
            out.append(y[-1] / s[len(y) - 1] * s[len(y):])
        else:
            out.append(np.full(h, y[-1]))
    return np.array(out)


def score(train: list[Arr], test: list[Arr], mean: Arr, m: int, lo: Arr | None = None,
          hi: Arr | None = None) -> dict[str, float]:
    sm, ms, cov = [], [], []
    for i, (y, t) in enumerate(zip(train, test, strict=True)):
        f = mean[i]
        sm.append(np.mean(200 * np.abs(t - f) / (np.abs(t) + np.abs(f))))
        ms.append(np.mean(np.abs(t - f)) / np.mean(np.abs(y[m:] - y[:-m])))
        if lo is not None and hi is not None:
            cov.append(np.mean((t >= lo[i]) & (t <= hi[i])))
    return {"smape": float(np.mean(sm)), "mase": float(np.mean(ms)),
            "coverage": float(np.mean(cov)) if cov else float("nan")}


def run_child(root: Path, subset: str, method: str, jobs: int, every: int,
              tmp: Path) -> dict[str, Any]:
    out = tmp / f"{subset}-{method}.npz"
    cmd = [sys.executable, __file__, str(root), "--worker", method, "--subset", subset,
           "--jobs", str(jobs), "--sm-every", str(every), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    cold = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{method} on {subset} failed:\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    data = np.load(out)
    return {**info, "cold_s": cold, "mean": data["mean"], "lo": data["lo"], "hi": data["hi"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="folder with {Hourly,Weekly}-{train,test}.csv")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sm-every", type=int, default=4, help="statsmodels on every N-th series")
    ap.add_argument("--subsets", default="Hourly,Weekly")
    ap.add_argument("--skip-statsmodels", action="store_true")
    ap.add_argument("--worker", choices=METHODS)
    ap.add_argument("--subset")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.worker:
        worker(a.root, a.subset, a.worker, a.jobs, a.sm_every, a.out)
        return
    methods = [x for x in METHODS if not (a.skip_statsmodels and x == "statsmodels")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for subset in a.subsets.split(","):
            cfg = SUBSETS[subset]
            _, train, test = load(a.root, subset)
            h, m = cfg["h"], cfg["m"]
            n2 = score(train, test, naive2(train, h, m), m)
            res = {meth: run_child(a.root, subset, meth, a.jobs, a.sm_every, Path(tmpdir))
                   for meth in methods}
            print(f"{subset}: Naive2 sMAPE {n2['smape']:.3f} MASE {n2['mase']:.3f} "
                  f"(published 18.383/2.395 Hourly, 9.161/2.777 Weekly)", flush=True)
            for meth in ("kpidash", "autoets"):
                r = res[meth]
                s = score(train, test, r["mean"], m, r["lo"], r["hi"])
                rows.append({"subset": subset, "method": meth, "n": len(train), **s,
                             "owa": (s["smape"] / n2["smape"] + s["mase"] / n2["mase"]) / 2,
                             "sps": r["series"] / r["fit_s"], "cold_s": r["cold_s"]})
            if "statsmodels" in res:
                sub = slice(None, None, a.sm_every)
                tr_s, te_s = train[sub], test[sub]
                n2s = score(tr_s, te_s, naive2(tr_s, h, m), m)
                for meth in methods:
                    r = res[meth]
                    mean, lo, hi = ((r["mean"], r["lo"], r["hi"]) if meth == "statsmodels"
                                    else (r["mean"][sub], r["lo"][sub], r["hi"][sub]))
                    s = score(tr_s, te_s, mean, m, lo, hi)
                    rows.append({"subset": f"{subset}/{a.sm_every}", "method": meth,
                                 "n": len(tr_s), **s,
                                 "owa": (s["smape"] / n2s["smape"] + s["mase"] / n2s["mase"]) / 2,
                                 "sps": r["series"] / r["fit_s"] if meth == "statsmodels" else
                                 float("nan"),
                                 "cold_s": r["cold_s"] if meth == "statsmodels" else float("nan")})
    report(rows)


def report(rows: list[dict[str, Any]]) -> None:
    print()
    head = (f"{'subset':<10} {'method':<12} {'n':>4} {'sMAPE':>7} {'MASE':>7} {'OWA':>6} "
            f"{'cov95':>6} {'series/s':>9} {'cold s':>7}  vs AutoETS (MASE, series/s, cold)")
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = next((x for x in rows if x["subset"] == r["subset"] and x["method"] == "autoets"), None)
        ratio = ""
        if ref and r["method"] != "autoets":
            ratio = (f"{r['mase'] / ref['mase']:.3f}x, "
                     f"{r['sps'] / ref['sps']:.0f}x, " if np.isfinite(ref["sps"]) and
                     np.isfinite(r["sps"]) else f"{r['mase'] / ref['mase']:.3f}x, -, ")
            ratio += f"{r['cold_s'] / ref['cold_s']:.2f}x" if np.isfinite(ref["cold_s"]) and \
                np.isfinite(r["cold_s"]) else "-"
        print(f"{r['subset']:<10} {r['method']:<12} {r['n']:>4} {r['smape']:>7.3f} {r['mase']:>7.3f} "
              f"{r['owa']:>6.3f} {100 * r['coverage']:>5.1f}% {r['sps']:>9.1f} {r['cold_s']:>7.1f}  "
              f"{ratio}")
    print("\nTargets (kpidash, full subsets):")
    for subset in SUBSETS:
        k = next((x for x in rows if x["subset"] == subset and x["method"] == "kpidash"), None)
        e = next((x for x in rows if x["subset"] == subset and x["method"] == "autoets"), None)
        if not k or not e:
            continue
        checks = [
            (f"MASE {k['mase']:.3f} ≤ 0.95 × AutoETS {e['mase']:.3f} = {0.95 * e['mase']:.3f}",
             k["mase"] <= 0.95 * e["mase"]),
            (f"95% coverage {100 * k['coverage']:.1f}% in [93, 97]", 0.93 <= k["coverage"] <= 0.97),
            (f"cold wall {k['cold_s']:.1f} s ≤ AutoETS {e['cold_s']:.1f} s", k["cold_s"] <= e["cold_s"]),
        ]
        for text, ok in checks:
            print(f"  {subset:<7} {'MET ' if ok else 'MISS'}  {text}")


if __name__ == "__main__":
    main()
