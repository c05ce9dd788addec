"""``kpidash anomalies`` run as a user runs it: the installed command in a subprocess."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from kpidash.cli.anomalies import Grid, infer_season, read_rows, to_grid
from kpidash.errors import InputError, KpidashError

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "cli.duckdb")}
    return subprocess.run([EXE, "anomalies", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)


def write(tmp_path: Path, rows: list[tuple[str, str]], name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows), encoding="utf-8")
    return p


def daily_rows(n: int = 120, spike_at: int = 100) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        v = 100 + 10 * (i % 7 in (5, 6)) * -1 + rng.normal(0, 1)
        if i == spike_at:
            v += 40
        rows.append(((t0 + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), f"{v:.3f}"))
    return rows


def test_scores_every_row_in_input_order(tmp_path: Path) -> None:
    rows = daily_rows()
    rows[50] = (rows[50][0], "")  # missing value
    del rows[60]  # missing period
    shuffled = rows[::-1]  # input order is not time order
    f = write(tmp_path, shuffled)
    out = tmp_path / "out.csv"
    r = run(tmp_path, str(f), "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "timestamp,value,score,is_anomaly"
    got = list(csv.reader(lines[1:]))
    assert [(g[0], g[1]) for g in got] == shuffled
    for g in got:
        assert len(g) == 4 and len(g[2].split(".")[1]) == 4 and 0 <= float(g[2]) <= 1
        assert g[3] in ("0", "1") and (g[3] == "1") == (float(g[2]) >= 0.5)
    by_ts = {g[0]: g for g in got}
    assert by_ts[rows[100 - 1][0]][3] == "1"  # the spike (index 99 after the deletion)
    assert by_ts[rows[50][0]][2:] == ["0.0000", "0"]
    assert "season 7" in r.stderr and "interval 1 day" in r.stderr


def test_writes_to_stdout_and_takes_options(tmp_path: Path) -> None:
    f = write(tmp_path, daily_rows())
    r = run(tmp_path, str(f), "--season-length", "1", "--threshold", "50")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 121 and all(line.endswith(",0") for line in lines[1:])
    assert "season 1" in r.stderr


@pytest.mark.parametrize(("rows", "args", "message"), [
    ([("2024-01-01", "1"), ("2024-01-02", "abc")], (), "in.csv row 2: value 'abc'"),
    ([("2024-01-01", "1"), ("2024-01-02", "2"), ("2024-01-01", "3")], (),
     "in.csv row 3: timestamp 2024-01-01 repeats row 1"),
    ([("2024-01-01", "1")], ("--threshold", "0"), "--threshold must be a number > 0"),
], ids=["bad-value", "duplicate", "bad-threshold"])
def test_bad_input_is_one_clear_line(tmp_path: Path, rows: list[tuple[str, str]],
                                     args: tuple[str, ...], message: str) -> None:
    r = run(tmp_path, str(write(tmp_path, rows)), *args)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([("2024-01-01", "1"), ("yesterday", "2")], None, "in.csv row 2: timestamp 'yesterday'"),
    ([("2024-01-01", "1"), ("2024-01-02", "2"), ("2024-01-03", "2"),
      ("2024-01-03T12:00:00", "3")], None, "row 4: timestamp 2024-01-03T12:00:00 is off"),
    ([("2024-01-01", "inf")], None, "row 1: value 'inf' is not a finite number"),
    ([("2024-01-01", "1")], "time,amount", "expected a header with columns timestamp,value"),
    ([], None, "no data rows"),
], ids=["bad-timestamp", "off-grid", "infinite", "missing-columns", "empty"])
def test_input_errors_name_the_row(tmp_path: Path, rows: list[tuple[str, str]],
                                   header: str | None, message: str) -> None:
    f = write(tmp_path, rows)
    if header:
        f.write_text(f.read_text(encoding="utf-8").replace("timestamp,value", header),
                     encoding="utf-8")
    with pytest.raises(InputError) as exc:
        to_grid(read_rows(f), f.name)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, KpidashError)


@pytest.mark.parametrize(("unit", "step", "n", "expected"), [
    ("second", 3600.0, 100, 24), ("second", 86400.0, 30, 7), ("second", 7 * 86400.0, 300, 52),
    ("second", 7 * 86400.0, 100, 1), ("month", 1.0, 60, 12), ("month", 1.0, 24, 1),
    ("month", 3.0, 20, 4), ("second", 60.0, 1000, 1)],
    ids=["hourly", "daily", "weekly-long", "weekly-short", "monthly-long", "monthly-short",
         "quarterly", "minutely"])
def test_season_is_inferred_from_the_interval(unit: str, step: float, n: int,
                                              expected: int) -> None:
    grid = Grid(np.zeros(n), np.arange(n), "", unit, step)
    assert infer_season(grid) == expected


def test_monthly_timestamps_sit_on_a_calendar_grid(tmp_path: Path) -> None:
    rows = [(f"{2020 + i // 12}-{i % 12 + 1:02d}-01", str(100 + (i % 12))) for i in range(60)]
    r = run(tmp_path, str(write(tmp_path, rows)))
    assert r.returncode == 0, r.stderr
    assert "interval 1 month" in r.stderr and "season 12" in r.stderr
