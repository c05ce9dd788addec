"""A Streamlit client for the kpidash API: log in, pick a dashboard, render its widget JSON.

Run it against a server (``kpidash serve --demo`` prints a user and password)::

    KPIDASH_URL=http://127.0.0.1:8000 KPIDASH_USER=demo KPIDASH_PASSWORD=… \\
        streamlit run examples/streamlit_app.py

The URL, user and password come from ``st.secrets``, then the environment, then the sidebar.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import streamlit as st


class ApiError(Exception):
    """An error the API answered with (its envelope's message), or an unreachable server."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def setting(name: str, default: str = "") -> str:
    try:
        if name in st.secrets:
            return str(st.secrets[name])
    except FileNotFoundError:  # no secrets.toml: fine, use the environment
        pass
    return os.environ.get(name, default)


def call(method: str, url: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach {url}: {exc}") from exc
    if r.is_error:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200] or r.reason_phrase
        raise ApiError(f"{message} (HTTP {r.status_code})", r.status_code)
    return r.json()


def token_for(base: str, user: str, password: str, fresh: bool = False) -> str:
    """Log in once per session (and again when the 15-minute access token has expired)."""
    key = (base, user, password)
    if fresh or st.session_state.get("login") != key:
        form = {"username": user, "password": password}
        st.session_state.token = call("POST", f"{base}/api/v1/auth/token", data=form)["access_token"]
        st.session_state.login = key
    return str(st.session_state.token)


def fmt(value: float | None, unit: str | None) -> str:
    """The card's value with its unit: $64,524.13, 3.2 %, 1,204 users."""
    if value is None:
        return "—"
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if unit == "$":
        return f"${number}"
    return f"{number} {unit}" if unit else number


def down_is_good(d: dict[str, Any]) -> bool:
    """st.metric colours a rise green: invert that for KPIs where down is good (churn)."""
    if d.get("higher_is_better") is not None:
        return not d["higher_is_better"]
    # older cards: read it off the status the server gave this move
    return (d.get("direction"), d.get("status")) in {("down", "good"), ("up", "bad")}


def kpi_cards(cards: list[dict[str, Any]]) -> None:
    for row in range(0, len(cards), 4):
        for col, card in zip(st.columns(4), cards[row:row + 4], strict=False):
            d = card["data"]
            col.metric(d["title"], fmt(d.get("value"), d.get("unit")),
                       delta=None if d.get("trend") is None else f"{d['trend']:+.1f} %",
                       delta_color="inverse" if down_is_good(d) else "normal",
                       help=f"{d['kpi_id']} · {d.get('status')} · period {d.get('period')}")


def render(doc: dict[str, Any]) -> None:
    widgets = doc.get("widgets", [])
    cards = [w for w in widgets if w["type"] == "kpi"]
    if cards:
        kpi_cards(cards)
    for w in widgets:
        if w["type"] == "line":
            st.subheader(w["data"]["title"])
            st.plotly_chart(w["data"]["figure"])
    st.subheader("Alerts")
    if doc.get("alerts"):
        st.dataframe([{"severity": a["severity"], "state": a["state"], "kpi": a["kpi_id"],
                       "slice": ", ".join(f"{k}={v}" for k, v in a["slice"].items()) or "all",
                       "value": a["value"], "threshold": a["threshold"], "since": a["since"]}
                      for a in doc["alerts"]], hide_index=True)
    else:
        st.caption("No active alerts.")
    for w in widgets:
        if w["type"] == "recommendations":
            st.subheader(w["data"].get("title") or "Insights")
            for item in w["data"]["items"] or [{"text": "Nothing to report."}]:
                score = f" *(score {item['score']:.2f})*" if item.get("score") is not None else ""
                text = item["text"].replace("$", "\\$")  # a $ pair would render as LaTeX
                st.markdown(f"- {text}{score}")


def main() -> None:
    st.set_page_config(page_title="kpidash", layout="wide")
    with st.sidebar.form("sign_in"):
        base = st.text_input("API URL", setting("KPIDASH_URL", "http://127.0.0.1:8000"))
        user = st.text_input("Username", setting("KPIDASH_USER"))
        password = st.text_input("Password", setting("KPIDASH_PASSWORD"), type="password")
        st.form_submit_button("Log in")
    base = base.rstrip("/")
    if not (user and password):
        st.info("Enter the API URL, your username and password in the sidebar.")
        return

    def get(path: str) -> Any:
        token = token_for(base, user, password)  # a failed login is not retried
        try:
            return call("GET", base + path, token)
        except ApiError as exc:  # the access token expired: log in again, once
            if exc.status != 401:
                raise
            return call("GET", base + path, token_for(base, user, password, fresh=True))

    try:
        dashboards = get("/api/v1/dashboards")
        if not dashboards:
            st.info("You have no dashboards yet: showing every KPI.")
            doc = get("/api/v1/render")
        else:
            names = {d["id"]: d["name"] for d in dashboards}
            chosen = st.sidebar.selectbox("Dashboard", list(names), format_func=names.get)
            doc = get(f"/api/v1/dashboards/{chosen}/render")
    except ApiError as exc:
        st.error(str(exc))
        return
    st.title(doc.get("title") or "kpidash")
    st.caption(f"{doc.get('grain')} grain · {doc.get('tz')} · generated {doc.get('generated_at')}")
    render(doc)


main()
