"""A per-user digest of followed KPIs: JSON, plain text and an HTML email body."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kpidash.core.insights.model import Ranked


@dataclass(frozen=True)
class Digest:
    user: str
    generated_at: datetime
    followed: tuple[str, ...]
    items: tuple[Ranked, ...]
    title: str = "Your KPI digest"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "digest", "user": self.user, "title": self.title,
                "generated_at": self.generated_at.isoformat(), "followed": list(self.followed),
                "insights": [r.to_dict() for r in self.items]}

    def text(self) -> str:
        lines = [f"{self.title} — {self.generated_at:%A %d %B %Y}", ""]
        if not self.items:
            lines.append("Nothing notable on the KPIs you follow.")
        for r in self.items:
            lines.append(f"{r.rank}. {r.insight.text}")
        lines += ["", "Why these: each insight is ranked by significance × KPI weight × size × "
                  "recency × novelty × your interest; the facts behind each are in the app."]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        items = "".join(
            f"<li><p>{esc(r.insight.text)}</p><p style=\"color:#636e72;font-size:12px\">"
            f"{esc(str(r.insight.type))} · score {r.score:.3g}</p></li>" for r in self.items)
        body = (f"<ol>{items}</ol>" if self.items
                else "<p>Nothing notable on the KPIs you follow.</p>")
        return ("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">"
                f"<h2>{esc(self.title)}</h2>"
                f"<p>{esc(f'{self.generated_at:%A %d %B %Y}')}</p>{body}</body></html>")


def build_digest(ranked: Sequence[Ranked], *, user: str, followed: Sequence[str],
                 now: datetime, limit: int = 10) -> Digest:
    """The top ``limit`` insights about ``followed`` KPIs (all KPIs when none are followed),
    renumbered from 1."""
    keep = [r for r in ranked if not followed or r.insight.kpi_id in followed][:limit]
    items = tuple(Ranked(r.insight, r.factors, n) for n, r in enumerate(keep, start=1))
    return Digest(user, now, tuple(followed), items)
