"""The CLI run as a user runs it: the installed ``kpidash`` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "cli.duckdb")}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)


def test_kpis_validate_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text("kpis:\n  - {id: a, name: A, min_value: 5, max_value: 1, weight: -1}\n"
                 "  - {id: a, name: Again}\n  - {id: r, name: R, kind: ratio, numerator: x,"
                 " denominator: a}\n", encoding="utf-8")
    r = run(tmp_path, "kpis", "validate", str(f))
    assert r.returncode == 1
    for code in ("kpi.bounds", "kpi.weight", "kpi.duplicate_id", "kpi.unknown_reference"):
        assert code in r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_option_value_is_a_one_line_usage_error(tmp_path: Path) -> None:
    r = run(tmp_path, "demo", "--days", "5")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("usage error:") and "--days" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_kpis_validate_accepts_the_saas_pack(tmp_path: Path) -> None:
    pack = Path(__file__).parents[1] / "src" / "kpidash" / "packs" / "saas.yaml"
    r = run(tmp_path, "kpis", "validate", str(pack))
    assert r.returncode == 0 and "13 KPI(s) valid" in r.stdout


def test_ingest_query_and_errors_are_one_line(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("timestamp,kpi,value,region\n2024-01-01T00:00:00Z,signups,3,EU\n"
                 "2024-01-02T00:00:00Z,signups,4,EU\n", encoding="utf-8")
    r = run(tmp_path, "ingest", str(f), "--pack", "saas")
    assert r.returncode == 0, r.stderr
    assert "2 points written" in r.stdout
    r = run(tmp_path, "query", "signups", "--grain", "week", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["values"] == [7.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,kpi,value\nnot-a-time,signups,x\n", encoding="utf-8")
    r = run(tmp_path, "ingest", str(bad))
    assert r.returncode == 1
    assert "row 1, field 'timestamp'" in r.stderr and "row 1, field 'value'" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(tmp_path, "query", "nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "unknown KPI 'nope'" in r.stderr
    r = run(tmp_path, "--debug", "query", "nope")
    assert "Traceback" in r.stderr


def test_demo_is_idempotent_and_prints_dashboard(tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    man = tmp_path / "manifest.json"
    args = ("demo", "--days", "300", "--end", "2024-06-30", "--out", str(out),
            "--manifest", str(man))
    r1 = run(tmp_path, *args)
    assert r1.returncode == 0, r1.stderr
    first = out.read_text(encoding="utf-8")
    r2 = run(tmp_path, *args)
    assert r2.returncode == 0, r2.stderr
    assert out.read_text(encoding="utf-8").replace(" ", "") == first.replace(" ", "")
    board = json.loads(first)
    assert board["type"] == "dashboard" and len(board["widgets"]) >= 13
    assert json.loads(man.read_text(encoding="utf-8"))["incidents"]
    r = run(tmp_path, "query", "revenue", "--json")
    assert len(json.loads(r.stdout)[0]["values"]) == 300  # re-run did not duplicate days


@pytest.mark.parametrize("ticks", [2])
def test_demo_watch_appends_days(tmp_path: Path, ticks: int) -> None:
    r = run(tmp_path, "demo", "--days", "60", "--end", "2024-06-30", "--watch", "--interval",
            "0", "--ticks", str(ticks))
    assert r.returncode == 0, r.stderr
    docs = [json.loads(d) for d in r.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert len(docs) == ticks + 1
    periods = [next(w for w in d["widgets"] if w["type"] == "kpi")["data"]["period"]
               for d in docs]
    assert periods == ["2024-06-30T00:00:00+00:00", "2024-07-01T00:00:00+00:00",
                       "2024-07-02T00:00:00+00:00"]


def test_annotations_add_list_delete(tmp_path: Path) -> None:
    assert run(tmp_path, "kpis", "load", "--pack", "saas").returncode == 0
    r = run(tmp_path, "annotations", "add", "Launch", "--from", "2024-05-01", "--to",
            "2024-05-03", "--kpi", "signups", "--kind", "launch")
    assert r.returncode == 0, r.stderr
    listed = json.loads(run(tmp_path, "annotations", "list", "--json").stdout)
    assert listed == [{"id": 1, "label": "Launch", "kind": "launch", "kpi_id": "signups",
                       "start": "2024-05-01T00:00:00+00:00", "end": "2024-05-03T00:00:00+00:00"}]
    r = run(tmp_path, "annotations", "add", "x", "--from", "2024-05-03", "--to", "2024-05-01")
    assert r.returncode == 1 and "must be after start" in r.stderr
    assert run(tmp_path, "annotations", "delete", "1").returncode == 0
    r = run(tmp_path, "annotations", "delete", "1")
    assert r.returncode == 1 and "no annotation with id 1" in r.stderr


def test_quality_apply_and_revert(tmp_path: Path) -> None:
    r = run(tmp_path, "demo", "--days", "400", "--end", "2024-06-30", "--out",
            str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    r = run(tmp_path, "quality", "revenue", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["corrections"]["proposed"] >= 2 and report["corrections"]["stored"] == 0
    r = run(tmp_path, "quality", "revenue", "--apply")
    assert r.returncode == 0 and "correction(s) stored" in r.stdout
    rows = json.loads(run(tmp_path, "corrections", "revenue", "--json").stdout)
    assert rows and all(r["correction"] == "hampel_seasonal" for r in rows)
    r = run(tmp_path, "corrections", "revenue", "--revert")
    assert r.returncode == 0 and "reverted" in r.stdout
    r = run(tmp_path, "quality", "arr")
    assert r.returncode == 1 and "derived KPI" in r.stderr


def test_trend_command(tmp_path: Path) -> None:
    assert run(tmp_path, "demo", "--days", "400", "--end", "2024-06-30", "--out",
               str(tmp_path / "b.json")).returncode == 0
    r = run(tmp_path, "trend", "signups", "--grain", "week", "--json")
    assert r.returncode == 0, r.stderr
    [rep] = json.loads(r.stdout)
    assert rep["trend"]["label"] in ("rising", "falling", "no significant trend")
    assert rep["change"]["current_period"] == "2024-06-24T00:00:00Z"
    r = run(tmp_path, "trend", "revenue", "--grain", "month", "--by", "region")
    assert r.returncode == 0 and r.stdout.count("trend over") == 4


def test_detect_command_stores_anomalies_once(tmp_path: Path) -> None:
    assert run(tmp_path, "demo", "--days", "400", "--end", "2024-06-30", "--out",
               str(tmp_path / "b.json")).returncode == 0
    r = run(tmp_path, "detect", "churned_customers", "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["new"] == len(first["anomalies"]) > 0
    assert json.loads(run(tmp_path, "detect", "churned_customers", "--json").stdout)["new"] == 0


ALERT_RULES = """
rules:
  - id: churn_spike
    kpi: customer_churn_rate
    condition: {kind: threshold, direction: above, bands: {high: 0.5, critical: 0.8},
                recovery: 0.35}
  - id: revenue_anomaly
    kpi: revenue
    per: region
    condition: {kind: anomaly, min_severity: high}
"""


def test_alerts_rules_tick_ack_silence_and_backtest(tmp_path: Path) -> None:
    man = tmp_path / "manifest.json"
    r = run(tmp_path, "demo", "--days", "120", "--end", "2024-06-30", "--out",
            str(tmp_path / "b.json"), "--manifest", str(man))
    assert r.returncode == 0, r.stderr
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALERT_RULES, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: x, kpi: nope, condition: {kind: stale, max_age: soon}}\n",
                   encoding="utf-8")
    r = run(tmp_path, "alerts", "rules", "load", str(bad))
    assert r.returncode == 1 and "alert.field" in r.stderr and "Traceback" not in r.stderr
    r = run(tmp_path, "alerts", "rules", "load", str(rules))
    assert r.returncode == 0 and "2 rule(s) stored" in r.stdout, r.stderr
    # the churn spike of the demo starts 2024-06-10: its first day is complete on the 11th
    r = run(tmp_path, "alerts", "tick", "--at", "2024-06-11T00:05:00Z", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["firing"] == 1 and report["delivered"] == 1  # to the log channel
    (alert,) = json.loads(run(tmp_path, "alerts", "list", "--json").stdout)
    assert (alert["rule_id"], alert["state"], alert["severity"]) == (
        "churn_spike", "firing", "critical")
    r = run(tmp_path, "alerts", "ack", alert["fingerprint"], "--by", "ana", "--comment", "on it")
    assert r.returncode == 0, r.stderr
    shown = json.loads(run(tmp_path, "alerts", "show", alert["fingerprint"], "--json").stdout)
    assert shown["acknowledgement"]["by"] == "ana"
    assert [h["to_state"] for h in shown["history"]] == ["pending", "firing"]
    r = run(tmp_path, "alerts", "silences", "add", "--match", "kpi=revenue", "--for", "2h",
            "--by", "ana")
    assert r.returncode == 0, r.stderr
    (sil,) = json.loads(run(tmp_path, "alerts", "silences", "list", "--json").stdout)
    assert sil["matchers"] == ["kpi=revenue"] and sil["state"] == "active"
    assert run(tmp_path, "alerts", "silences", "expire", sil["id"]).returncode == 0
    r = run(tmp_path, "alerts", "silences", "add", "--match", "kpi", "--for", "2h", "--by", "a")
    assert r.returncode == 1 and "name=value" in r.stderr
    r = run(tmp_path, "alerts", "backtest", str(rules), "--from", "2024-04-01", "--to",
            "2024-06-30", "--incidents", str(man), "--json")
    assert r.returncode == 0, r.stderr
    runs = {d["rule"]: d for d in json.loads(r.stdout)}
    churn = runs["churn_spike"]
    assert len(churn["episodes"]) == 1 and churn["episodes"][0]["peak"] == "critical"
    assert churn["score"]["recall"] == 1.0 and churn["score"]["precision"] == 1.0
    assert churn["score"]["mean_time_to_detect_hours"] == 24.0
    assert sum(churn["notifications_per_week"].values()) == churn["notifications"]
    assert runs["revenue_anomaly"]["score"]["detected"] >= 1
    r = run(tmp_path, "alerts", "backtest", str(rules), "--from", "2024-04-01", "--to",
            "2024-06-30")
    assert r.returncode == 0 and "rule churn_spike" in r.stdout, r.stderr


def test_insights_and_digest_commands(tmp_path: Path) -> None:
    r = run(tmp_path, "demo", "--days", "120", "--end", "2024-06-30", "--out",
            str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    board = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert board["widgets"][-1]["type"] == "recommendations"
    r = run(tmp_path, "insights", "--at", "2024-06-11T06:00:00Z", "--limit", "5", "--json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert [i["rank"] for i in items] == [1, 2, 3, 4, 5]
    assert any(i["kpi_id"] == "customer_churn_rate" for i in items)
    r = run(tmp_path, "insights", "--type", "anomaly", "--at", "2024-06-11T06:00:00Z")
    assert r.returncode == 0 and "unusually" in r.stdout, r.stderr
    html = tmp_path / "digest.html"
    r = run(tmp_path, "digest", "--user", "ana", "--follow", "revenue", "--format", "html",
            "--out", str(html), "--at", "2024-05-17T06:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "<ol>" in html.read_text(encoding="utf-8")
    r = run(tmp_path, "digest", "--user", "ana", "--follow", "nope")
    assert r.returncode == 1 and "unknown KPI 'nope'" in r.stderr


def test_users_and_serve_demo(tmp_path: Path) -> None:
    import re
    import socket

    import httpx

    from loopback import wait_for_health

    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "srv.duckdb")}
    env.pop("KPIDASH_SECRET", None)
    env.pop("KPIDASH_MODE", None)
    r = subprocess.run([EXE, "serve"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "KPIDASH_SECRET is not set" in r.stderr
    r = subprocess.run([EXE, "users", "create", "alice", "--role", "admin", "--password-stdin"],
                       input="a long enough password\n", capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0 and "user alice (admin) created" in r.stdout, r.stderr
    r = subprocess.run([EXE, "users", "create", "alice", "--password-stdin"],
                       input="a long enough password\n", capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1 and "already exists" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([EXE, "serve", "--demo", "--days", "60", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert f"http://127.0.0.1:{port}" in lines[0]
        m = re.search(r"user 'demo', password '([^']+)'", lines[1])
        assert m, lines
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, lambda: proc.poll() is None, timeout=60)
        tok = httpx.post(f"{base}/api/v1/auth/token",
                         data={"username": "demo", "password": m.group(1)}).json()
        auth = {"Authorization": f"Bearer {tok['access_token']}"}
        (board,) = httpx.get(f"{base}/api/v1/dashboards", headers=auth).json()
        rendered = httpx.get(f"{base}/api/v1/dashboards/{board['id']}/render",
                             headers=auth, timeout=60).json()
        assert [w["type"] for w in rendered["widgets"]][:4] == ["kpi"] * 4
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
