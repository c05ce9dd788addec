"""The render cache (kpidash.api.render): one render per (dashboard, spec, theme), bounded.

Found by benchmarks/soak.py: renders were cached under their data version, so every ingest
batch that touched a dashboard's KPIs left the previous render (~170 KiB of Python objects)
and its response body (~46 KB) behind until 512 of each had piled up — the server's RSS grew
steadily for the first ten minutes of load.
"""

from __future__ import annotations

from typing import Any

from kpidash.api.render import (
    BODY_CACHE_SIZE,
    RENDER_CACHE_SIZE,
    _cache_get,
    _cache_put,
    board_json,
    render,
)

from .conftest import Api, point

ROUNDS = 6  # ingest + render rounds: each one makes the previous render stale


def _dashboard(api: Api) -> str:
    r = api.client.post("/api/v1/dashboards", headers=api.auth("analyst"), json={
        "name": "Signups", "spec": {"kpis": ["signups", "revenue"], "grain": "day",
                                    "range": {"last": "30d"}}})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def test_stale_renders_are_replaced_not_kept(api: Api) -> None:
    dashboard = _dashboard(api)
    h = api.auth("analyst")
    seen: list[Any] = []
    for i in range(ROUNDS):
        r = api.client.post("/api/v1/ingest", headers=h,
                            json={"points": [point(1000.0 + i, ts="2024-06-30T12:00:00Z")]})
        assert r.status_code in (200, 204), r.text
        r = api.client.get(f"/api/v1/dashboards/{dashboard}/render", headers=h)
        assert r.status_code == 200, r.text
        seen.append(r.json()["etag"])
        # the same data again: served from the cache (same etag, nothing added)
        again = api.client.get(f"/api/v1/dashboards/{dashboard}/render", headers=h)
        assert again.json()["etag"] == seen[-1]
    assert len(set(seen)) == ROUNDS  # every round's data made a new render …
    scope = api.st.default
    assert len(scope.renders) == 1  # … which replaced the previous one
    assert len(api.st.render_json) <= BODY_CACHE_SIZE
    assert seen[-1] in api.st.render_json


def test_render_cache_keeps_at_most_its_size_least_recently_stored_dropped(api: Api) -> None:
    scope = api.st.default
    spec = {"kpis": ["signups"], "grain": "day", "range": {"last": "7d"}}
    with api.st.lock:
        board = render(scope, spec, theme=None, user="ana", key="d-first")
        assert [name[0] for name in scope.renders] == ["d-first"]
        # as render stores them: (dashboard, spec, theme, period, versions, alerts, bucket)
        for i in range(RENDER_CACHE_SIZE + 5):
            _cache_put(scope, (f"d-{i}", "{}", None, "p", (), 0, 0), board)
        _cache_put(scope, ("d-1", "{}", None, "p", (("signups", 1),), 0, 0), board)  # stale → new
    assert len(scope.renders) == RENDER_CACHE_SIZE
    keys = [name[0] for name in scope.renders]
    assert "d-first" not in keys and "d-0" not in keys and "d-5" not in keys and "d-6" in keys
    assert keys[-1] == "d-1" and keys.count("d-1") == 1
    assert _cache_get(scope, ("d-1", "{}", None, "p", (), 0, 0)) is None  # the stale version
    assert _cache_get(scope, ("d-1", "{}", None, "p", (("signups", 1),), 0, 0)) is board


def test_response_bodies_are_bounded_and_the_recent_ones_kept(api: Api) -> None:
    scope = api.st.default
    boards = [{"etag": f"etag-{i:04d}", "widgets": [], "n": i} for i in range(BODY_CACHE_SIZE * 2)]
    for b in boards:
        assert board_json(scope, b).startswith(b"{")
        board_json(scope, boards[0])  # used on every request: never the one dropped
    cached = api.st.render_json
    assert len(cached) == BODY_CACHE_SIZE
    assert "etag-0000" in cached and boards[-1]["etag"] in cached
    assert boards[1]["etag"] not in cached
    assert board_json(scope, {"widgets": []}) == b'{"widgets":[]}'  # no etag: not cached
    assert len(cached) == BODY_CACHE_SIZE
