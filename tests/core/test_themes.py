"""Tests of kpidash.core.themes: palettes, WCAG contrast and apply()."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from kpidash import schemas
from kpidash.core import themes as th
from kpidash.core import widgets as w
from kpidash.errors import NotFound, ValidationFailed
from kpidash.model import KPI, Grain, Series

NAMES = ["corporate", "dark", "light", "vibrant", "pastel"]
GENERATED_AT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def make_series(values: list[float], *, kpi_id: str, group: str | None = None) -> Series:
    periods = np.datetime64("2024-01-01", "us") + np.arange(len(values)) * np.timedelta64(1, "D")
    labels = tuple(f"{d}T00:00:00+00:00" for d in periods.astype("datetime64[D]").astype(str))
    return Series(kpi_id=kpi_id, grain=Grain.DAY, tz="UTC",
                  periods=periods.astype("datetime64[us]"),
                  values=np.asarray(values, dtype=np.float64), group=group, labels=labels)


def build_dashboard() -> dict[str, Any]:
    """A real dashboard: one good, one bad and one neutral card, two charts."""
    revenue = KPI(id="revenue", name="Revenue", unit="$", target=50.0)
    churn = KPI(id="churn", name="Churn", unit="%", higher_is_better=False)
    visits = KPI(id="visits", name="Visits", unit="")
    cards = [
        w.kpi_card(revenue, make_series([40.0, 60.0], kpi_id="revenue")),  # meets target
        w.kpi_card(churn, make_series([2.0, 3.0], kpi_id="churn")),  # churn up: bad
        w.kpi_card(visits, make_series([100.0, 100.0], kpi_id="visits")),  # flat
    ]
    charts = [
        w.line_chart(revenue, [make_series([1.0, 2.0], kpi_id="revenue", group="eu"),
                               make_series([3.0, 4.0], kpi_id="revenue", group="us")]),
        w.line_chart(churn, [make_series([2.0, 3.0], kpi_id="churn")]),
    ]
    return w.dashboard(cards, charts, title="Overview", generated_at=GENERATED_AT,
                       grain=Grain.DAY, tz="UTC",
                       extra=[w.recommendations([], title="Next steps")])


# --- contrast -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fg", "bg", "expected"), [
    ("#000000", "#ffffff", 21.0),
    ("#ffffff", "#ffffff", 1.0),
    ("#777777", "#ffffff", 4.48),  # the classic just-below-AA grey
    ("#767676", "#ffffff", 4.54),
    ("#00b894", "#ffffff", 2.54),  # the default good colour on white: why corporate darkens it
])
def test_contrast_known_values(fg: str, bg: str, expected: float) -> None:
    assert th.contrast(fg, bg) == pytest.approx(expected, abs=0.01)
    assert th.contrast(bg, fg) == pytest.approx(th.contrast(fg, bg))


def test_luminance_bounds_and_bad_colours() -> None:
    assert th.relative_luminance("#000000") == 0.0
    assert th.relative_luminance("#ffffff") == pytest.approx(1.0)
    assert th.relative_luminance("#FFFFFF") == pytest.approx(1.0)
    for bad in ("red", "#fff", "#12345g", "123456"):
        with pytest.raises(ValueError, match="#rrggbb"):
            th.contrast(bad, "#ffffff")


# --- the themes -----------------------------------------------------------------------------


def test_the_five_themes() -> None:
    assert list(th.THEMES) == NAMES
    assert th.DEFAULT_THEME in th.THEMES
    with pytest.raises(TypeError):
        th.THEMES["x"] = th.THEMES["dark"]  # type: ignore[index]


@pytest.mark.parametrize("name", NAMES)
def test_theme_is_complete(name: str) -> None:
    theme = th.get_theme(name)
    d = theme.to_dict()
    assert list(d) == ["name", *th.PALETTE_KEYS]
    assert d["name"] == name
    for key in th.PALETTE_KEYS:
        values = d[key] if key == "series" else [d[key]]
        for c in values:
            assert isinstance(c, str) and len(c) == 7 and c == c.lower() and c[0] == "#", (key, c)
    assert len(d["series"]) >= 8
    assert len(set(d["series"])) == len(d["series"])
    assert len({theme.good, theme.bad, theme.neutral}) == 3
    json.dumps(d)


@pytest.mark.parametrize("name", NAMES)
def test_theme_contrast(name: str) -> None:
    t = th.get_theme(name)
    for fg in (t.text, t.muted):
        for bg in (t.background, t.surface):
            assert th.contrast(fg, bg) >= th.TEXT_CONTRAST, (fg, bg)
    for fg in (t.good, t.bad, t.neutral, t.accent, *t.series):
        assert th.contrast(fg, t.surface) >= th.GRAPHIC_CONTRAST, fg


def test_theme_rejects_incomplete_palettes() -> None:
    base = th.get_theme("dark").to_dict()
    base["series"] = tuple(base["series"])
    with pytest.raises(ValueError, match="series"):
        th.Theme(**{**base, "series": base["series"][:7]})
    with pytest.raises(ValueError, match="surface"):
        th.Theme(**{**base, "surface": "#FFF"})


def test_get_theme_is_lenient_on_case_and_unknown_names_list_the_choices() -> None:
    assert th.get_theme(" Dark ") is th.THEMES["dark"]
    with pytest.raises(NotFound) as exc:
        th.get_theme("solarized")
    msg = str(exc.value)
    assert "'solarized'" in msg
    for name in NAMES:
        assert name in msg


def test_corporate_keeps_the_default_bad_and_neutral_colours() -> None:
    corporate = th.get_theme("corporate")
    assert (corporate.bad, corporate.neutral) == (w.COLOR_BAD, w.COLOR_NEUTRAL)


# --- apply ------------------------------------------------------------------------------------


def test_default_widgets_are_unchanged() -> None:
    board = build_dashboard()
    cards = [x for x in board["widgets"] if x["type"] == "kpi"]
    assert [c["data"]["color"] for c in cards] == [w.COLOR_GOOD, w.COLOR_BAD, w.COLOR_NEUTRAL]
    assert all("theme" not in c["data"] for c in cards)
    assert "theme" not in board
    schemas.validate_widget(board)


@pytest.mark.parametrize("name", NAMES)
def test_apply_dashboard(name: str) -> None:
    theme = th.get_theme(name)
    board = build_dashboard()
    before = copy.deepcopy(board)
    themed = th.apply(board, theme)
    assert board == before  # input not mutated
    schemas.validate_widget(themed)
    json.dumps(themed, allow_nan=False)

    assert themed["theme"] == theme.to_dict()
    assert {k: v for k, v in themed.items() if k not in ("theme", "widgets")} == {
        k: v for k, v in board.items() if k != "widgets"}
    assert [x["type"] for x in themed["widgets"]] == [x["type"] for x in board["widgets"]]

    cards = [x for x in themed["widgets"] if x["type"] == "kpi"]
    assert [c["data"]["status"] for c in cards] == ["good", "bad", "neutral"]
    assert [c["data"]["color"] for c in cards] == [theme.good, theme.bad, theme.neutral]
    assert all(c["data"]["theme"] == name for c in cards)
    # everything else on the card is as built
    for old, new in zip(board["widgets"][:3], cards, strict=True):
        assert {k: v for k, v in new["data"].items() if k not in ("color", "theme")} == {
            k: v for k, v in old["data"].items() if k != "color"}

    charts = [x for x in themed["widgets"] if x["type"] == "line"]
    for old, chart in zip(board["widgets"][3:5], charts, strict=True):
        assert chart["data"]["theme"] == name
        fig = chart["data"]["figure"]
        layout = fig["layout"]
        assert layout["paper_bgcolor"] == theme.surface
        assert layout["plot_bgcolor"] == theme.surface
        assert layout["font"]["color"] == theme.text
        assert layout["xaxis"]["gridcolor"] == layout["yaxis"]["gridcolor"] == theme.grid
        assert layout["colorway"] == list(theme.series)
        assert layout["title"] == old["data"]["figure"]["layout"]["title"]
        for i, trace in enumerate(fig["data"]):
            assert trace["line"]["color"] == trace["marker"]["color"] == theme.series[i]
            assert trace["y"] == old["data"]["figure"]["data"][i]["y"]
    assert charts[0]["data"]["figure"]["layout"]["yaxis"]["title"]["text"] == "$"

    recs = themed["widgets"][5]
    assert recs == board["widgets"][5]


def test_apply_single_widgets() -> None:
    board = build_dashboard()
    dark = th.get_theme("dark")
    card = th.apply(board["widgets"][1], dark)
    assert card["data"]["color"] == dark.bad
    schemas.validate_widget(card)
    chart = th.apply(board["widgets"][3], dark)
    assert chart["data"]["figure"]["layout"]["plot_bgcolor"] == dark.surface
    schemas.validate_widget(chart)
    # re-theming replaces the colours
    light = th.get_theme("light")
    again = th.apply(th.apply(board, dark), light)
    assert again == th.apply(board, light)


def test_card_without_status_falls_back_to_its_default_colour() -> None:
    card = build_dashboard()["widgets"][1]
    del card["data"]["status"]
    assert th.apply(card, th.get_theme("pastel"))["data"]["color"] == th.get_theme("pastel").bad
    card["data"]["color"] = "#123456"
    assert th.apply(card, th.get_theme("pastel"))["data"]["color"] == th.get_theme("pastel").neutral


def test_schema_rejects_a_broken_theme() -> None:
    themed = th.apply(build_dashboard(), th.get_theme("vibrant"))
    themed["theme"]["good"] = "green"
    del themed["theme"]["series"]
    themed["widgets"][0]["data"]["theme"] = ""
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(themed)
    fields = {i.location.field for i in exc.value.report.errors}
    assert {"$.theme.good", "$.theme", "$.widgets[0].data.theme"} <= fields


def test_apply_rejects_non_dicts_and_copies_unknown_widgets() -> None:
    with pytest.raises(TypeError):
        th.apply([], th.get_theme("dark"))  # type: ignore[arg-type]
    odd = {"type": "gauge", "data": {"x": [1]}}
    out = th.apply(odd, th.get_theme("dark"))
    assert out == odd and out["data"] is not odd["data"]
