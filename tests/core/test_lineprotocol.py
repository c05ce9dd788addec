"""Tests of kpidash.core.lineprotocol: InfluxDB line protocol → points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from kpidash.core import lineprotocol as lp
from kpidash.core.batch import TS_TYPE, validate
from kpidash.core.registry import build_registry
from kpidash.errors import ValidationFailed

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000
T0_NS = 1465839830100400200  # the docs' example timestamp


def us(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with timestamps as integer microseconds (easy to compare)."""
    out = table.to_pylist()
    for r in out:
        r["timestamp"] = us(r["timestamp"])
    return out


def ok(text: str, **kw: Any) -> pa.Table:
    kw.setdefault("now", NOW)
    table, report = lp.parse(text, **kw)
    assert report.ok, report.summary()
    assert table is not None
    return table


# --- valid lines --------------------------------------------------------------------------

VALID: list[Any] = [
    pytest.param("weather,location=us-midwest temperature=82 1465839830100400200",
                 [{"timestamp": 1465839830100400, "kpi": "weather_temperature", "value": 82.0,
                   "location": "us-midwest"}], id="docs-weather"),
    pytest.param("cpu,host=server\\ 01,region=uswest value=1.0 1434055562000000000",
                 [{"timestamp": 1434055562000000, "kpi": "cpu", "value": 1.0,
                   "host": "server 01", "region": "uswest"}], id="escaped-space-in-tag-value"),
    pytest.param("cpu,region=us\\,west,host=a\\=b value=2",
                 [{"timestamp": NOW_US, "kpi": "cpu", "value": 2.0, "host": "a=b",
                   "region": "us,west"}], id="escaped-comma-and-equals"),
    pytest.param("my\\ Measurement value=1",
                 [{"timestamp": NOW_US, "kpi": "my Measurement", "value": 1.0}],
                 id="escaped-space-in-measurement"),
    pytest.param("my\\,m,x=1 value=1",
                 [{"timestamp": NOW_US, "kpi": "my,m", "value": 1.0, "x": "1"}],
                 id="escaped-comma-in-measurement"),
    pytest.param("m,path=C:\\temp value=1",
                 [{"timestamp": NOW_US, "kpi": "m", "value": 1.0, "path": "C:\\temp"}],
                 id="literal-backslash"),
    pytest.param("m,path=a\\\\b value=1",
                 [{"timestamp": NOW_US, "kpi": "m", "value": 1.0, "path": "a\\b"}],
                 id="escaped-backslash"),
    pytest.param("m free\\ space=1,used\\,pct=2",
                 [{"timestamp": NOW_US, "kpi": "m_free space", "value": 1.0},
                  {"timestamp": NOW_US, "kpi": "m_used,pct", "value": 2.0}],
                 id="escaped-field-keys"),
    pytest.param("m,tag=🍭 value=3 1556813561098000000",
                 [{"timestamp": 1556813561098000, "kpi": "m", "value": 3.0, "tag": "🍭"}],
                 id="docs-emoji"),
    pytest.param("m value=1i,b=-9223372036854775808i,c=9223372036854775807i",
                 [{"timestamp": NOW_US, "kpi": "m", "value": 1.0},
                  {"timestamp": NOW_US, "kpi": "m_b", "value": -9223372036854775808.0},
                  {"timestamp": NOW_US, "kpi": "m_c", "value": 9223372036854775807.0}],
                 id="integers"),
    pytest.param("m value=0u,max=18446744073709551615u",
                 [{"timestamp": NOW_US, "kpi": "m", "value": 0.0},
                  {"timestamp": NOW_US, "kpi": "m_max", "value": 18446744073709551615.0}],
                 id="unsigned"),
    pytest.param("m a=1,b=-1.5,c=1e3,d=-1.5E-2,e=.5,f=+2,g=5.",
                 [{"timestamp": NOW_US, "kpi": f"m_{k}", "value": v} for k, v in
                  [("a", 1.0), ("b", -1.5), ("c", 1000.0), ("d", -0.015), ("e", 0.5),
                   ("f", 2.0), ("g", 5.0)]], id="floats"),
    pytest.param("m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE",
                 [{"timestamp": NOW_US, "kpi": f"m_{k}", "value": v} for k, v in
                  zip("abcdefghij", [1.0] * 5 + [0.0] * 5, strict=True)], id="booleans"),
    pytest.param("m value=1", [{"timestamp": NOW_US, "kpi": "m", "value": 1.0}],
                 id="no-timestamp-uses-now"),
    pytest.param("m value=1 -1000", [{"timestamp": -1, "kpi": "m", "value": 1.0}],
                 id="negative-timestamp"),
    pytest.param("m value=1 1999", [{"timestamp": 1, "kpi": "m", "value": 1.0}],
                 id="nanoseconds-floored-to-us"),
    pytest.param("# a comment\n\n  # indented comment\r\nm value=1 1000\r\n   \n",
                 [{"timestamp": 1, "kpi": "m", "value": 1.0}], id="comments-blank-crlf"),
    pytest.param("  m value=1 1000   ", [{"timestamp": 1, "kpi": "m", "value": 1.0}],
                 id="surrounding-whitespace"),
    pytest.param("m  value=1  1000", [{"timestamp": 1, "kpi": "m", "value": 1.0}],
                 id="several-spaces-between-sections"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_lines(text: str, expected: list[dict[str, Any]]) -> None:
    table = ok(text)
    got = rows(table)
    keys = set().union(*(r.keys() for r in expected))
    assert set(table.column_names) == keys
    assert got == [{k: e.get(k) for k in table.column_names} for e in expected]


def test_output_schema() -> None:
    table = ok("cpu,region=eu value=1 1000\ncpu,host=h1 value=2 2000\ncpu value=3 3000")
    assert table.column_names == ["timestamp", "kpi", "value", "host", "region"]
    assert table.schema.field("timestamp").type == TS_TYPE
    assert table.schema.field("kpi").type == pa.string()
    assert table.schema.field("value").type == pa.float64()
    assert table.schema.field("host").type == pa.string()
    assert table.column("region").to_pylist() == ["eu", None, None]
    assert table.column("host").to_pylist() == [None, "h1", None]


def test_string_field_value_is_unescaped_in_the_error() -> None:
    # the docs' quoting examples: strings are parsed correctly, then refused as KPI values
    _, report = lp.parse('myMeasurement fieldKey="\\"string\\" within a string"', now=NOW)
    (issue,) = report.errors
    assert issue.code == "lineprotocol.field_type"
    assert (issue.location.row, issue.location.field) == (1, "fieldKey")
    assert '\'"string" within a string\'' in issue.message
    _, report = lp.parse('m value=1,path="C:\\\\dir \\\\ x, y=z"', now=NOW)
    assert [i.code for i in report.errors] == ["lineprotocol.field_type"]
    assert "C:\\\\dir \\\\ x, y=z" in report.errors[0].message  # repr doubles each backslash


@pytest.mark.parametrize(("precision", "ts", "expected_us"), [
    ("ns", "1714564800123456789", 1714564800123456),
    ("n", "1714564800123456789", 1714564800123456),
    ("us", "1714564800123456", 1714564800123456),
    ("u", "1714564800123456", 1714564800123456),
    ("ms", "1714564800123", 1714564800123000),
    ("s", "1714564800", 1714564800000000),
    ("S", "1714564800", 1714564800000000),
    ("m", "28576080", 1714564800000000),
    ("h", "476268", 1714564800000000),
])
def test_precision(precision: str, ts: str, expected_us: int) -> None:
    table = ok(f"m value=1 {ts}", precision=precision)
    assert rows(table)[0]["timestamp"] == expected_us


def test_precision_of() -> None:
    assert [lp.precision_of(p) for p in ("ns", "n", "us", "u", "ms", "s", "m", "h", " MS ")] == [
        "ns", "ns", "us", "us", "ms", "s", "m", "h", "ms"]
    with pytest.raises(ValidationFailed) as exc:
        lp.precision_of("d")
    (issue,) = exc.value.report.errors
    assert issue.code == "lineprotocol.precision"
    assert issue.location.field == "precision"
    assert "'d'" in issue.message and "ns, us, ms, s" in issue.message
    with pytest.raises(ValidationFailed):
        lp.parse("m value=1", now=NOW, precision="seconds")


def test_now_must_be_aware_and_is_converted_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        lp.parse("m value=1", now=datetime(2024, 5, 1))
    plus2 = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rows(ok("m value=1", now=plus2))[0]["timestamp"] == NOW_US


def test_mapping_field() -> None:
    text = "cpu,host=a value=1,idle=2 1000"
    by_meas = ok(text)
    by_field = ok(text, mapping="field")
    assert by_meas.column("kpi").to_pylist() == ["cpu", "cpu_idle"]
    assert by_field.column("kpi").to_pylist() == ["cpu_value", "cpu_idle"]
    assert by_field.column("host").to_pylist() == ["a", "a"]
    with pytest.raises(ValueError, match="mapping"):
        lp.parse(text, now=NOW, mapping="tag")


def test_empty_input_gives_empty_table() -> None:
    table = ok("# only a comment\n\n")
    assert table.num_rows == 0
    assert table.column_names == ["timestamp", "kpi", "value"]


def test_fast_and_full_paths_agree() -> None:
    # the first line of a tag set goes through the full parser, later ones the fast path;
    # escapes always take the full parser
    text = "\n".join(["m,host=a value=1,x=2i 1000", "m,host=a value=1,x=2i 1000",
                      "m,host=a value=1,x\\ =2i 1000"])
    got = rows(ok(text))
    assert got[0:2] == got[2:4]
    assert [r["kpi"] for r in got[4:]] == ["m", "m_x "]


# --- invalid lines ------------------------------------------------------------------------

INVALID: list[Any] = [
    pytest.param("cpu", "lineprotocol.syntax", "fields", id="no-fields"),
    pytest.param("cpu,host=a", "lineprotocol.syntax", "fields", id="tags-no-fields"),
    pytest.param("cpu ", "lineprotocol.syntax", "fields", id="empty-field-set"),
    pytest.param("cpu value=", "lineprotocol.field", "value", id="empty-value"),
    pytest.param("cpu value=abc", "lineprotocol.field", "value", id="word-value"),
    pytest.param("cpu value=1.5i", "lineprotocol.field", "value", id="float-with-i"),
    pytest.param("cpu value=1i2", "lineprotocol.field", "value", id="garbled-int"),
    pytest.param("cpu value=9223372036854775808i", "lineprotocol.field", "value",
                 id="int64-overflow"),
    pytest.param("cpu value=18446744073709551616u", "lineprotocol.field", "value",
                 id="uint64-overflow"),
    pytest.param("cpu value=-1u", "lineprotocol.field", "value", id="negative-unsigned"),
    pytest.param("cpu value=NaN", "lineprotocol.field", "value", id="nan"),
    pytest.param("cpu value=inf", "lineprotocol.field", "value", id="inf"),
    pytest.param("cpu value=1e999", "lineprotocol.field", "value", id="float-overflow"),
    pytest.param("cpu value=1_000", "lineprotocol.field", "value", id="underscore-digits"),
    pytest.param("cpu value=yes", "lineprotocol.field", "value", id="not-a-boolean"),
    pytest.param('cpu value="up"', "lineprotocol.field_type", "value", id="string-field"),
    pytest.param('cpu,host=a load=1,msg="all systems nominal"', "lineprotocol.field_type",
                 "msg", id="docs-string-next-to-number"),
    pytest.param('cpu value="open', "lineprotocol.syntax", "value", id="unterminated-string"),
    pytest.param("cpu value=1,", "lineprotocol.syntax", "fields", id="trailing-comma"),
    pytest.param("cpu =1", "lineprotocol.field", "fields", id="empty-field-key"),
    pytest.param("cpu value=1,value=2", "lineprotocol.duplicate", "value", id="duplicate-field"),
    pytest.param("cpu,host value=1", "lineprotocol.syntax", "host", id="tag-without-equals"),
    pytest.param("cpu,host= value=1", "lineprotocol.tag", "host", id="empty-tag-value"),
    pytest.param("cpu,host=a=b value=1", "lineprotocol.syntax", "host",
                 id="unescaped-equals-in-tag-value"),
    pytest.param("cpu,a=1,a=2 value=1", "lineprotocol.duplicate", "a", id="duplicate-tag"),
    pytest.param("cpu,Host=a value=1", "lineprotocol.tag_key", "Host", id="tag-key-not-snake"),
    pytest.param("cpu,tag\\ Key1=v value=1", "lineprotocol.tag_key", "tag Key1",
                 id="docs-tag-key-with-space"),
    pytest.param("cpu,value=a value=1", "lineprotocol.tag_key", "value", id="reserved-tag"),
    pytest.param("cpu,time=a value=1", "lineprotocol.tag_key", "time", id="reserved-alias"),
    pytest.param(",host=a value=1", "lineprotocol.measurement", "measurement",
                 id="no-measurement"),
    pytest.param("cpu value=1 abc", "lineprotocol.timestamp", "timestamp", id="word-timestamp"),
    pytest.param("cpu value=1 1.5", "lineprotocol.timestamp", "timestamp",
                 id="float-timestamp"),
    pytest.param("cpu value=1 1 2", "lineprotocol.syntax", "timestamp", id="two-timestamps"),
    pytest.param("cpu value=1 9223372036854775807", "lineprotocol.timestamp", "timestamp",
                 id="timestamp-out-of-range"),
    pytest.param("cpu value=1 -9223372036854775808", "lineprotocol.timestamp", "timestamp",
                 id="timestamp-below-range"),
]


@pytest.mark.parametrize(("line", "code", "field"), INVALID)
def test_invalid_lines(line: str, code: str, field: str) -> None:
    text = f"# header\nok value=1 1000\n\n{line}\nok value=2 2000"
    table, report = lp.parse(text, now=NOW, source="body")
    assert table is None
    assert not report.ok
    issue = report.errors[0]
    assert (issue.code, issue.location.row, issue.location.field) == (code, 4, field), str(issue)
    assert issue.location.source == "body"
    assert "expected" in issue.message and "got" in issue.message


def test_seconds_precision_overflow_is_a_timestamp_error() -> None:
    _, report = lp.parse("m value=1 9999999999999", now=NOW, precision="s")
    assert [(i.code, i.location.row) for i in report.errors] == [("lineprotocol.timestamp", 1)]
    assert "'s'" in report.errors[0].message


def test_every_bad_line_is_reported_and_nothing_is_returned() -> None:
    text = "\n".join(["a value=1", "b value=x", "c", "d value=1", 'e value="s"', "f value=1 t"])
    table, report = lp.parse(text, now=NOW)
    assert table is None
    assert [(i.code, i.location.row) for i in report.errors] == [
        ("lineprotocol.field", 2), ("lineprotocol.syntax", 3),
        ("lineprotocol.field_type", 5), ("lineprotocol.timestamp", 6)]
    assert report.to_dict()["error_count"] == 4


def test_several_problems_on_one_line() -> None:
    _, report = lp.parse("m,Bad=1 value=x,y=\"s\" zz", now=NOW)
    assert sorted(i.code for i in report.errors) == [
        "lineprotocol.field", "lineprotocol.field_type", "lineprotocol.tag_key",
        "lineprotocol.timestamp"]
    assert {i.location.row for i in report.errors} == {1}


def test_line_longer_than_64_kib_is_rejected() -> None:
    long_tag = "x" * (64 * 1024)
    text = f"m value=1\nm,host={long_tag} value=1\nm value=2"
    table, report = lp.parse(text, now=NOW)
    assert table is None
    (issue,) = report.errors
    assert (issue.code, issue.location.row) == ("lineprotocol.line_too_long", 2)
    assert str(64 * 1024) in issue.message
    # exactly at the limit is fine, and the limit is a parameter
    line = "m,host=" + "x" * (64 * 1024 - len("m,host= value=1")) + " value=1"
    assert len(line) == 64 * 1024
    assert ok(line).num_rows == 1
    _, report = lp.parse("m value=1", now=NOW, max_line_length=5)
    assert report.codes() == {"lineprotocol.line_too_long": 1}


def test_many_bad_lines_keep_the_report_small() -> None:
    text = "\n".join("m value=x" for _ in range(5000))
    table, report = lp.parse(text, now=NOW)
    assert table is None
    assert report.error_count == 5000
    assert len(report.issues) <= 1000


def test_pathological_line_is_fast_to_reject() -> None:
    # an unmatched structure on a maximal line must not backtrack exponentially
    line = "m," + ",".join(f"k{i}=v\\ " for i in range(6000))
    table, report = lp.parse(line[: 64 * 1024], now=NOW)
    assert table is None and not report.ok


# --- determinism and integration ------------------------------------------------------------

def test_deterministic() -> None:
    text = "\n".join(f"saas,region=r{i % 5},plan=p{i % 3} value={i / 7},n={i}i {i * 1000}"
                     for i in range(2000))
    t1, r1 = lp.parse(text, now=NOW)
    t2, r2 = lp.parse(text, now=NOW)
    assert t1 is not None and t2 is not None
    assert t1.equals(t2)
    assert r1 == r2
    assert t1.column_names == ["timestamp", "kpi", "value", "plan", "region"]
    assert t1.num_rows == 4000


def test_table_passes_batch_validation() -> None:
    registry = build_registry([
        {"id": "cpu", "name": "CPU", "unit": "%", "dimensions": ["host", "region"]},
        {"id": "cpu_idle", "name": "CPU idle", "unit": "%", "dimensions": ["host", "region"]},
    ])
    table = ok("cpu,host=a,region=eu value=10,idle=90 1714564800000000000\n"
               "cpu,host=b value=20i,idle=80u 1714564860000000000")
    batch, report = validate(table, registry)
    assert report.ok, report.summary()
    assert batch is not None and len(batch) == 4
    assert batch.value.tolist() == [10.0, 90.0, 20.0, 80.0]
