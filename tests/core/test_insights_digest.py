from __future__ import annotations

import json
from datetime import UTC, datetime

from kpidash.core.insights import Digest, Insight, InsightType, build_digest, rank
from kpidash.core.insights.wording import news
from kpidash.model import KPI

NOW = datetime(2024, 7, 1, 8, tzinfo=UTC)  # a Monday
KPIS = {"revenue": KPI(id="revenue", name="Revenue <b>net</b>", unit="$"),
        "churn": KPI(id="churn", name="Churn", higher_is_better=False),
        "signups": KPI(id="signups", name="Signups")}


def ins(kpi_id: str | None, sig: float, disc: str = "") -> Insight:
    name = KPIS[kpi_id].name if kpi_id else "Data"
    text = f"{name} rose 10% & more{news(1.0, KPIS[kpi_id]) if kpi_id else ''}"
    return Insight(InsightType.CHANGE, kpi_id, text, NOW, sig, 0.5, {"value": 1.0},
                   discriminator=disc or f"d{sig}")


RANKED = rank([ins("signups", 0.95), ins("revenue", 0.9), ins("churn", 0.8),
               ins("revenue", 0.7), ins(None, 0.6)], kpis=KPIS, now=NOW)


def test_followed_filter_and_renumbering() -> None:
    # diversity puts the insight about no KPI before revenue's second one
    assert [r.insight.kpi_id for r in RANKED] == ["signups", "revenue", "churn", None, "revenue"]
    d = build_digest(RANKED, user="ann", followed=["revenue", "churn"], now=NOW)
    assert [(r.rank, r.insight.kpi_id, r.insight.significance) for r in d.items] == [
        (1, "revenue", 0.9), (2, "churn", 0.8), (3, "revenue", 0.7)]
    # the factors (hence scores) travel unchanged
    assert d.items[0].factors == RANKED[1].factors
    assert d.followed == ("revenue", "churn") and d.user == "ann" and d.generated_at == NOW


def test_no_follows_means_everything_and_limit() -> None:
    d = build_digest(RANKED, user="bob", followed=[], now=NOW)
    assert [r.rank for r in d.items] == [1, 2, 3, 4, 5]
    d = build_digest(RANKED, user="bob", followed=[], now=NOW, limit=2)
    assert [r.insight.kpi_id for r in d.items] == ["signups", "revenue"]
    assert [r.rank for r in d.items] == [1, 2]
    assert build_digest(RANKED, user="bob", followed=["nothing"], now=NOW).items == ()


def test_text() -> None:
    d = build_digest(RANKED, user="ann", followed=["revenue", "churn"], now=NOW, limit=2)
    assert d.text() == (
        "Your KPI digest — Monday 01 July 2024\n"
        "\n"
        "1. Revenue <b>net</b> rose 10% & more — good news\n"
        "2. Churn rose 10% & more — worth a look\n"
        "\n"
        "Why these: each insight is ranked by significance × KPI weight × size × recency × "
        "novelty × your interest; the facts behind each are in the app.\n")


def test_empty_digest() -> None:
    d = build_digest([], user="ann", followed=["revenue"], now=NOW)
    assert "Nothing notable on the KPIs you follow." in d.text()
    assert "<p>Nothing notable on the KPIs you follow.</p>" in d.html()
    assert "<ol>" not in d.html()
    assert d.to_dict()["insights"] == []


def test_html_escapes_text() -> None:
    d = build_digest(RANKED, user="ann", followed=["revenue"], now=NOW)
    h = d.html()
    assert h.startswith("<!DOCTYPE html><html>") and h.endswith("</body></html>")
    assert "<b>" not in h  # the KPI name's markup is shown, not obeyed
    assert "Revenue &lt;b&gt;net&lt;/b&gt; rose 10% &amp; more — good news" in h
    assert h.count("<li>") == 2
    assert "<h2>Your KPI digest</h2>" in h and "<p>Monday 01 July 2024</p>" in h
    assert f"change · score {d.items[0].score:.3g}" in h
    t = Digest("x", NOW, (), (), title="<script>alert(1)</script>").html()
    assert "<script>" not in t and "&lt;script&gt;" in t


def test_to_dict_shape() -> None:
    d = build_digest(RANKED, user="ann", followed=["churn"], now=NOW)
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert set(out) == {"type", "user", "title", "generated_at", "followed", "insights"}
    assert out["type"] == "digest" and out["user"] == "ann"
    assert out["title"] == "Your KPI digest"
    assert out["generated_at"] == "2024-07-01T08:00:00+00:00"
    assert out["followed"] == ["churn"]
    [item] = out["insights"]
    assert item["rank"] == 1 and item["kpi_id"] == "churn" and item["type"] == "change"
    assert item["text"] == "Churn rose 10% & more — worth a look"
    assert set(item["factors"]) == {"significance", "weight", "magnitude", "recency",
                                    "novelty", "affinity"}
    assert item["score"] == d.items[0].score and item["facts"] == {"value": 1.0}
    assert item["key"] == d.items[0].insight.key
