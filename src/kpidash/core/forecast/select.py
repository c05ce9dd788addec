"""Candidates, model choice, interval calibration and backtest metrics for one panel.

Model choice (``model="auto"``): every applicable candidate is backtested at the same rolling
origins; the one with the lowest mean scaled error (backtest MASE, over all windows) is chosen.
Series too short for any backtest window fall back to the lowest AICc among the smoothing
families. ``model="ets"`` chooses among the smoothing families by AICc only (the classical ETS
rule). A named model is used as asked; a seasonal model asked for a series without a usable
season (fewer than two full seasons, or none detected) falls back to its non-seasonal
counterpart and the result names the model actually used.

Reported backtest figures are leave-one-window-out: for window w the model is chosen, and the
interval calibrated, from the other windows, then scored on w (with one window only, the
choice is made on that window itself).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from statistics import NormalDist

import numpy as np

from kpidash.core.forecast.backtest import conformal_q, mase_scale, smape
from kpidash.core.forecast.baselines import naive, seasonal_naive, theta
from kpidash.core.forecast.ets import SPECS, fit_family
from kpidash.core.forecast.panel import Candidate, Panel
from kpidash.core.forecast.types import Backtest, FloatArray, Forecast, Selection
from kpidash.model import FORECAST_MODELS

_Z = NormalDist()  # stdlib: scipy.stats alone costs ~0.7 s of import time

Inverse = Callable[[FloatArray], FloatArray]

BUILDERS: dict[str, Callable[[Panel], Candidate]] = {
    "naive": naive, "seasonal_naive": seasonal_naive, "theta": theta,
    **{name: partial(fit_family, spec) for name, spec in SPECS.items()},
}
SEASONAL = ("seasonal_naive", "holt_winters_additive", "holt_winters_multiplicative")
FALLBACK = {"seasonal_naive": "naive", "holt_winters_additive": "damped",
            "holt_winters_multiplicative": "damped"}
AUTO = ("naive", "ses", "damped", "theta", *SEASONAL)
ETS = ("ses", "holt", "damped", "holt_winters_additive", "holt_winters_multiplicative")
ENSEMBLE_MEMBERS = {False: ("ses", "damped", "theta"),
                    True: ("theta", "holt_winters_additive", "holt_winters_multiplicative",
                           "seasonal_naive")}
MODELS = FORECAST_MODELS


def candidate_names(model: str, m: int) -> tuple[str, ...]:
    seasonal = m > 1
    if model == "auto":
        names: tuple[str, ...] = AUTO
    elif model == "ets":
        names = ETS
    elif model == "ensemble":
        names = ENSEMBLE_MEMBERS[seasonal]
    else:
        names = (model if seasonal or model not in FALLBACK else FALLBACK[model],)
    return tuple(n for n in names if seasonal or n not in SEASONAL)


def ensemble(members: list[Candidate]) -> Candidate:
    """Equal-weight mean (on the modelling scale) of the members applicable to each series."""
    wgt = np.stack([c.ok for c in members]).astype(np.float64)          # (M, k)
    tot = np.maximum(wgt.sum(axis=0), 1.0)

    def avg(get: Callable[[Candidate], FloatArray]) -> FloatArray:
        acc = np.zeros_like(get(members[0]))
        for w, c in zip(wgt, members, strict=True):
            v = get(c)
            acc = acc + np.where(w.reshape((-1,) + (1,) * (v.ndim - 1)) > 0, v, 0.0) * w.reshape(
                (-1,) + (1,) * (v.ndim - 1))
        return np.asarray(acc / tot.reshape((-1,) + (1,) * (acc.ndim - 1)), dtype=np.float64)

    return Candidate(
        name="ensemble", ok=wgt.sum(axis=0) > 0, fc=avg(lambda c: c.fc), shape=avg(lambda c: c.shape),
        sigma=avg(lambda c: c.sigma), bt=avg(lambda c: c.bt), shape_bt=avg(lambda c: c.shape_bt),
        sigma_bt=avg(lambda c: c.sigma_bt), fitted=avg(lambda c: c.fitted),
        aicc=np.full(members[0].ok.shape[0], np.nan),
        params={"members": wgt.sum(axis=0)})


def solve(p: Panel, y_orig: FloatArray, inv: Inverse, levels: tuple[int, ...],
          model: str) -> list[Forecast]:
    """Forecast every series of panel ``p``; ``y_orig`` (k, T) is the panel on the series' scale."""
    names = candidate_names(model, p.m)
    built = {n: BUILDERS[n](p) for n in names}
    cands = list(built.values())
    if model == "auto" or model == "ensemble":
        members = [built[n] for n in ENSEMBLE_MEMBERS[p.m > 1] if n in built]
        ens = ensemble(members)
        cands = [ens] if model == "ensemble" else [*cands, ens]
    C, k, W, H = len(cands), p.k, p.origins.shape[0], p.h_bt
    A = p.actuals()
    cols = p.origins[:, None] + np.arange(H)[None, :]
    A0 = np.where(p.valid[:, :, None], y_orig[:, cols], np.nan) if W else A
    upto = p.origins[np.maximum(p.first, 0)] if W else np.full(k, p.T)
    scale = mase_scale(y_orig, p.start, upto, p.m)
    M = np.full((C, k, W), np.nan)
    S = np.full((C, k, W), np.nan)
    R = np.full((C, k, W, H), np.nan)
    with np.errstate(all="ignore"):
        for c, cand in enumerate(cands):
            if W == 0:
                break
            f0 = inv(cand.bt)
            M[c] = np.mean(np.abs(A0 - f0), axis=2) / scale[:, None]
            S[c] = np.mean(smape(A0, f0), axis=2)
            R[c] = np.abs(A - cand.bt) / cand.shape_bt[:, None, :]
    ok = np.stack([c.ok for c in cands])
    cnt = np.isfinite(M).sum(axis=2)
    tot = np.nansum(M, axis=2)
    score = np.where(ok & (cnt > 0), tot / np.maximum(cnt, 1), np.inf)
    aicc = np.stack([np.where(c.ok & np.isfinite(c.aicc), c.aicc, np.inf) for c in cands])
    has_bt = np.isfinite(score).any(axis=0)
    by_aicc = np.where(np.isfinite(aicc).any(axis=0), aicc.argmin(axis=0), ok.argmax(axis=0))
    if model == "ets":
        choice, criterion = by_aicc, np.full(k, "aicc")
    else:
        choice = np.where(has_bt, score.argmin(axis=0), by_aicc)
        criterion = np.where(has_bt, "backtest_mase", "aicc")
    rows = np.arange(k)

    # leave-one-window-out choice, metrics and coverage
    pick = np.repeat(choice[:, None], W, axis=1)                            # (k, W)
    if model != "ets" and C > 1:
        for w in range(W):
            rest_cnt = cnt - np.isfinite(M[:, :, w])
            rest = np.where(ok & (rest_cnt > 0),
                            (tot - np.nan_to_num(M[:, :, w])) / np.maximum(rest_cnt, 1), np.inf)
            pick[:, w] = np.where(np.isfinite(rest).any(axis=0), rest.argmin(axis=0), choice)
    sig_bt = np.stack([c.sigma_bt for c in cands])
    mase_w = M[pick, rows[:, None], np.arange(W)[None, :]] if W else np.empty((k, 0))
    smape_w = S[pick, rows[:, None], np.arange(W)[None, :]] if W else np.empty((k, 0))
    # R_pick[i, w]: errors on window w of the model picked without w (out-of-selection errors)
    R_pick = R[pick, rows[:, None], np.arange(W)[None, :]] if W else np.empty((k, 0, H))
    covered = np.zeros((k, len(levels)))
    n_cells = np.zeros(k)
    for w in range(W):
        others = np.delete(R_pick, w, axis=1).reshape(k, -1)
        q = conformal_q(others, levels, sig_bt[pick[:, w], rows]) if W > 1 else (
            np.outer(sig_bt[pick[:, w], rows], [_Z.inv_cdf(0.5 + lv / 200.0) for lv in levels]))
        here = R_pick[:, w]                                                   # (k, H)
        valid = np.isfinite(here)
        for li in range(len(levels)):
            covered[:, li] += np.sum(valid & (here <= q[:, li, None]), axis=1)
        n_cells += valid.sum(axis=1)

    # final intervals: calibrate on every window's errors of the model picked *without* that
    # window — out-of-selection errors, so a lucky choice does not make the intervals too narrow
    Rc = R_pick.reshape(k, -1)
    sigma = np.stack([c.sigma for c in cands])[choice, rows]
    q_fin = conformal_q(Rc, levels, sigma)
    out: list[Forecast] = []
    with np.errstate(all="ignore"):
        for i in range(k):
            cand = cands[choice[i]]
            fc = cand.fc[i]
            half = q_fin[i][:, None] * cand.shape[i][None, :]
            nw = int(p.valid[i].sum())
            bt = Backtest(
                mase=float(np.nanmean(mase_w[i])) if nw else float("nan"),
                smape=float(np.nanmean(smape_w[i])) if nw else float("nan"),
                coverage={lv: float(covered[i, li] / n_cells[i]) if n_cells[i] else float("nan")
                          for li, lv in enumerate(levels)},
                n_windows=nw, horizon=H if nw else 0)
            crit = str(criterion[i])
            table = score if crit == "backtest_mase" else aicc
            sel = Selection(
                criterion=crit,
                scores={c.name: _num(table[j, i]) for j, c in enumerate(cands)},
                aicc={c.name: _num(aicc[j, i]) for j, c in enumerate(cands) if np.isfinite(c.aicc[i])})
            a = [inv(fc - half[li]) for li in range(len(levels))]
            b = [inv(fc + half[li]) for li in range(len(levels))]   # swapped if inv decreases
            out.append(Forecast(
                mean=inv(fc), lower={lv: np.minimum(a[li], b[li]) for li, lv in enumerate(levels)},
                upper={lv: np.maximum(a[li], b[li]) for li, lv in enumerate(levels)},
                model=cand.name, season_length=p.m, selection=sel, backtest=bt,
                params=_params(cand, i), fitted=inv(cand.fitted[i, p.start[i]:])))
    return out


def _num(v: float) -> float:
    return float(v) if np.isfinite(v) else float("nan")


def _params(c: Candidate, i: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, arr in c.params.items():
        if arr.ndim == 2:
            out |= {f"{key}{j}": float(v) for j, v in enumerate(arr[i])}
        else:
            out[key] = float(arr[i])
    return out
