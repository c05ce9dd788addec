"""``kpidash forecast``: forecast one or many series from a CSV file.

Input: ``timestamp,value`` (one series, named ``series`` in the output) or
``unique_id,timestamp,value`` (many). Timestamps are ISO 8601; an empty value is a missing
observation. Each series must be regularly sampled: its step is the median difference of its
timestamps, read as calendar months, quarters or years when the data is monthly, quarterly or
yearly, and periods absent from the file count as missing. Output (stdout or ``--out``):
``unique_id,timestamp,forecast,lo_<L>,hi_<L>…`` with one row per series and future period.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from kpidash.errors import KpidashError

SINGLE_ID = "series"
_BATCH = 2000          # series per forecast() call when a progress bar is shown


def register(app: typer.Typer) -> None:
    app.command(name="forecast", context_settings={"allow_extra_args": True,
                                                   "ignore_unknown_options": False})(forecast)


def forecast(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: timestamp,value or unique_id,timestamp,value.")],
    horizon: Annotated[int, typer.Option("--horizon", "-h", min=1, help="Periods to forecast.")],
    season_length: Annotated[int | None, typer.Option(
        "--season-length", min=1, help="Season in periods (default: detected per series).")] = None,
    level: Annotated[list[str] | None, typer.Option(
        "--level", help="Interval level in % (repeat, or --level 80 95). Default 80 95.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the CSV here.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker processes (-1 = all cores).")] = 1,
    model: Annotated[str, typer.Option(help="auto, ets, ensemble, theta, damped, … ")] = "auto",
    lower: Annotated[float | None, typer.Option(help="Values never go below this (e.g. 0).")] = None,
    upper: Annotated[float | None, typer.Option(help="Values never go above this (e.g. 100).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", envvar="KPIDASH_DASK_SCHEDULER",
        help="Dask scheduler (tcp://host:8786) to forecast on; same results as without.")] = None,
) -> None:
    """Forecast every series in FILE with prediction intervals (model chosen by backtest)."""
    from kpidash.core.forecast import forecast as run_forecast

    levels = _levels(level, ctx.args)
    ids, stamps, values, offsets = read_series(file)
    candidates = [_season_candidates(o) for o in offsets]
    results = []
    show = len(ids) > _BATCH
    step = _BATCH if show else max(len(ids), 1)
    # one season-candidate set per batch: the cycles its series' steps share, if they agree
    batch_c = []
    for a in range(0, len(ids), step):
        cands = set(candidates[a:a + step])
        batch_c.append(cands.pop() if len(cands) == 1 else None)
    from kpidash.cli._shared import progress

    if scheduler:
        from kpidash.engine.distributed import Cluster, forecast_many, quiet_logs

        quiet_logs()
        # the same batches as below, all submitted at once (one call when they share candidates)
        runs = [(0, len(ids), batch_c[0])] if len(set(batch_c)) <= 1 else \
            [(a, a + step, c) for a, c in zip(range(0, len(ids), step), batch_c, strict=True)]
        with Cluster.connect(scheduler) as cluster:
            for a, b, season_c in runs:
                results += forecast_many(cluster, values[a:b], horizon,
                                         season_length=season_length, levels=levels,
                                         bounds=(lower, upper), model=model,
                                         season_candidates=season_c, batch=step)
    else:
        with progress(f"forecasting {len(ids):,} series") as update:
            for a, season_c in zip(range(0, len(ids), step), batch_c, strict=True):
                results += run_forecast(values[a:a + step], horizon, season_length=season_length,
                                        levels=levels, bounds=(lower, upper), n_jobs=jobs,
                                        model=model, season_candidates=season_c)
                update(min(a + _BATCH, len(ids)), len(ids))
    frames = []
    for sid, ts, off, res in zip(ids, stamps, offsets, results, strict=True):
        future = _format_ts(pd.Series(_future(ts, off, horizon)))
        cols: dict[str, Any] = {"unique_id": sid, "timestamp": future.to_numpy(), "forecast": res.mean}
        for lv in levels:
            cols[f"lo_{lv}"] = res.lower[lv]
            cols[f"hi_{lv}"] = res.upper[lv]
        frames.append(pd.DataFrame(cols))
    table = pd.concat(frames, ignore_index=True)
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.10g")
    if out_file is None:
        sys.stdout.write(buf.getvalue())
    else:
        out_file.write_text(buf.getvalue(), encoding="utf-8")


def _levels(level: list[str] | None, extra: list[str]) -> tuple[int, ...]:
    raw = [*(level or []), *extra] if level else list(extra)
    if extra and not level:
        raise KpidashError(f"unexpected argument(s) {' '.join(extra)}; levels go after --level, "
                           "e.g. --level 80 95")
    out: list[int] = []
    for item in raw:
        for part in item.split(","):
            try:
                out.append(int(part))
            except ValueError:
                raise KpidashError(f"--level expects whole percentages such as 80 or 95, got "
                                   f"{part!r}") from None
    return tuple(sorted(set(out))) if out else (80, 95)


def read_series(path: Path) -> tuple[list[str], list[pd.DatetimeIndex], list[np.ndarray[Any, Any]],
                                     list[pd.DateOffset | pd.Timedelta]]:
    """Read and validate the CSV; return ids, regular timestamps, values (NaN = missing) and
    the step of each series, in order of first appearance."""
    if not path.exists():
        raise KpidashError(f"file {str(path)!r} not found; expected a CSV with columns "
                           "timestamp,value (or unique_id,timestamp,value)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise KpidashError(f"{path.name}: cannot read as CSV ({str(exc).splitlines()[0]}); "
                           "expected a header line timestamp,value") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("timestamp", "value") if c not in df.columns]
    if missing:
        raise KpidashError(f"{path.name}: expected columns timestamp,value (optionally unique_id), "
                           f"got {','.join(df.columns) or 'none'}; missing {','.join(missing)}")
    if df.empty:
        raise KpidashError(f"{path.name}: no data rows; expected at least 3 rows per series")
    ts_text = df["timestamp"].str.strip()
    aware = ts_text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).any()
    ts = pd.to_datetime(ts_text, format="ISO8601", errors="coerce", utc=bool(aware))
    bad = ts.isna()
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise KpidashError(f"{path.name}: row {r + 1}, field 'timestamp': cannot parse "
                           f"{ts_text.iloc[r]!r}; expected an ISO 8601 date or timestamp")
    val_text = df["value"].str.strip()
    vals = pd.to_numeric(val_text.where(val_text != "", None), errors="coerce")
    bad = vals.isna() & (val_text != "")
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise KpidashError(f"{path.name}: row {r + 1}, field 'value': cannot parse "
                           f"{val_text.iloc[r]!r}; expected a number (empty = missing)")
    uid = df["unique_id"].str.strip() if "unique_id" in df.columns else pd.Series(
        SINGLE_ID, index=df.index)
    frame = pd.DataFrame({"uid": uid, "ts": ts, "v": vals.astype(np.float64)})
    ids, stamps, values, offsets = [], [], [], []
    for sid, g in frame.groupby("uid", sort=False):
        g = g.sort_values("ts", kind="stable")
        dup = g["ts"].duplicated()
        if dup.any():
            raise KpidashError(f"{path.name}: series {sid!r} has timestamp {g['ts'][dup].iloc[0]} "
                               "twice; expected one value per period")
        if g["v"].notna().sum() < 3:
            raise KpidashError(f"{path.name}: series {sid!r} has {int(g['v'].notna().sum())} "
                               "value(s); expected at least 3 to forecast")
        idx, y, off = _regular(str(sid), pd.DatetimeIndex(g["ts"]), g["v"].to_numpy(), path.name)
        ids.append(str(sid))
        stamps.append(idx)
        values.append(y)
        offsets.append(off)
    return ids, stamps, values, offsets


def _regular(sid: str, ts: pd.DatetimeIndex, v: np.ndarray[Any, Any], name: str,
             ) -> tuple[pd.DatetimeIndex, np.ndarray[Any, Any], pd.DateOffset | pd.Timedelta]:
    """Place the values on the regular grid of the series' sampling step."""
    step = pd.Series(ts).diff().dropna().median()
    days = step / pd.Timedelta(days=1)
    months = next((mo for lo, hi, mo in ((28, 31, 1), (89, 92, 3), (365, 366, 12)) if lo <= days <= hi),
                  None)
    off: pd.DateOffset | pd.Timedelta
    if months is not None:
        pos_f = ((ts.year - ts[0].year) * 12 + (ts.month - ts[0].month)) / months
        off = pd.DateOffset(months=months)
    else:
        pos_f = (ts - ts[0]) / step
        off = step
    pos = np.rint(np.asarray(pos_f, dtype=np.float64)).astype(np.int64)
    if np.any(np.abs(np.asarray(pos_f, dtype=np.float64) - pos) > 0.01) or np.any(np.diff(pos) <= 0):
        raise KpidashError(f"{name}: series {sid!r} is not regularly sampled (step {step}); expected "
                           "timestamps on a fixed interval (gaps are fine)")
    y = np.full(int(pos[-1]) + 1, np.nan)
    y[pos] = v
    grid = pd.DatetimeIndex([ts[0] + off * int(i) for i in range(y.shape[0])]) if months else \
        pd.DatetimeIndex(ts[0] + step * np.arange(y.shape[0]))
    return grid, y, off


def _season_candidates(off: pd.DateOffset | pd.Timedelta) -> tuple[int, ...] | None:
    if isinstance(off, pd.DateOffset):
        return {1: (12,), 3: (4,), 12: None}.get(int(off.months))
    table = {pd.Timedelta(hours=1): (24, 168), pd.Timedelta(days=1): (7,),
             pd.Timedelta(weeks=1): (52,), pd.Timedelta(minutes=1): (60, 1440)}
    return table.get(off)


def _future(ts: pd.DatetimeIndex, off: pd.DateOffset | pd.Timedelta, h: int) -> pd.DatetimeIndex:
    last = ts[-1]
    if isinstance(off, pd.DateOffset):
        if ts.is_month_end.all():      # month-end data stays on month ends (Feb 29, Mar 31 …)
            return pd.DatetimeIndex([last + pd.offsets.MonthEnd(int(off.months) * j)
                                     for j in range(1, h + 1)])
        return pd.DatetimeIndex([ts[0] + pd.DateOffset(months=int(off.months) * (len(ts) - 1 + j))
                                 for j in range(1, h + 1)])
    return pd.DatetimeIndex(last + off * np.arange(1, h + 1))


def _format_ts(dt: pd.Series) -> pd.Series:
    """Dates when every timestamp of the series is a naive midnight, else ISO 8601 timestamps."""
    if dt.dt.tz is None and (dt == dt.dt.normalize()).all():
        return dt.dt.strftime("%Y-%m-%d")
    return dt.map(lambda t: t.isoformat())
