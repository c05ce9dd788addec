"""``kpidash forecast`` end to end: the installed command in a subprocess on small CSV files."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpidash.cli.forecast import read_series
from kpidash.errors import KpidashError

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "forecast", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def daily(n: int = 70) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                         "value": 100 + 0.3 * t + 10 * np.sin(2 * np.pi * t / 7)})


def test_single_series_to_stdout(tmp_path: Path) -> None:
    daily().to_csv(tmp_path / "one.csv", index=False)
    r = run(tmp_path, "one.csv", "--horizon", "5", "--level", "80", "95")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(io.StringIO(r.stdout))
    assert list(out.columns) == ["unique_id", "timestamp", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert (out["unique_id"] == "series").all() and len(out) == 5
    assert list(out["timestamp"]) == ["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14", "2024-03-15"]
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["lo_80"] <= out["forecast"]).all()
    assert (out["forecast"] <= out["hi_80"]).all() and (out["hi_80"] <= out["hi_95"]).all()


def test_many_series_calendar_months_and_out_file(tmp_path: Path) -> None:
    months = pd.date_range("2021-01-31", periods=30, freq="ME").strftime("%Y-%m-%d")
    hours = pd.date_range("2024-05-01T00:00:00", periods=60, freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    df = pd.concat([
        pd.DataFrame({"unique_id": "mrr", "timestamp": months, "value": 1000 + 20 * np.arange(30)}),
        pd.DataFrame({"unique_id": "rate", "timestamp": hours, "value": 50 + 5 * np.sin(np.arange(60))}),
    ])
    df.to_csv(tmp_path / "many.csv", index=False)
    r = run(tmp_path, "many.csv", "--horizon", "2", "--level", "90", "--out", "f.csv", "--jobs", "2",
            "--lower", "0")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "f.csv")
    assert list(out.columns) == ["unique_id", "timestamp", "forecast", "lo_90", "hi_90"]
    assert list(out["unique_id"]) == ["mrr", "mrr", "rate", "rate"]
    assert list(out["timestamp"]) == ["2023-07-31", "2023-08-31", "2024-05-03T12:00:00",
                                      "2024-05-03T13:00:00"]
    assert (out["lo_90"] >= 0).all()


@pytest.mark.parametrize(("content", "message"), [
    ("ts,value\n2024-01-01,1\n",
     "expected columns timestamp,value (optionally unique_id), got ts,value"),
    ("timestamp,value\n2024-01-01,1\nsoon,2\n2024-01-03,3\n",
     "row 2, field 'timestamp': cannot parse 'soon'"),
    ("timestamp,value\n2024-01-01,1\n2024-01-02,x\n2024-01-03,3\n",
     "row 2, field 'value': cannot parse 'x'"),
    ("unique_id,timestamp,value\na,2024-01-01,1\na,2024-01-02,2\n",
     "series 'a' has 2 value(s); expected at least 3"),
    ("timestamp,value\n2024-01-01,1\n2024-01-01,2\n2024-01-02,3\n",
     "has timestamp 2024-01-01 00:00:00 twice"),
    ("timestamp,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n2024-01-04T07:00,3\n",
     "is not regularly sampled"),
], ids=["missing_column", "bad_timestamp", "bad_value", "too_short", "duplicate", "irregular"])
def test_bad_input_names_the_row_or_series(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(content, encoding="utf-8")
    with pytest.raises(KpidashError, match=re.escape(message)):
        read_series(tmp_path / "bad.csv")


def test_bad_input_is_one_line_from_the_command(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("timestamp,value\n2024-01-01,1\nsoon,2\n", encoding="utf-8")
    r = run(tmp_path, "bad.csv", "--horizon", "3")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "bad.csv: row 2, field 'timestamp': cannot parse 'soon'" in r.stderr
    assert "Traceback" not in r.stderr


def test_gaps_become_missing_periods(tmp_path: Path) -> None:
    df = daily(40).drop(index=[10, 11, 25])
    df.to_csv(tmp_path / "gaps.csv", index=False)
    _, stamps, values, _ = read_series(tmp_path / "gaps.csv")
    assert len(stamps[0]) == 40 and np.isnan(values[0][[10, 11, 25]]).all()


def test_bad_level_is_one_line(tmp_path: Path) -> None:
    daily().to_csv(tmp_path / "one.csv", index=False)
    r = run(tmp_path, "one.csv", "--horizon", "3", "--level", "80", "100")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "levels must be whole percentages between 1 and 99" in r.stderr
