"""Colour themes for widgets and dashboards (pure: plain data in, new plain data out).

Five themes, as in the original design: ``corporate``, ``dark``, ``light``, ``vibrant`` and
``pastel``. Each is a full palette — page ``background``, card ``surface``, ``text``,
``muted`` text, ``grid``/border lines, ``accent``, the status colours ``good``, ``bad`` and
``neutral`` and a categorical ``series`` palette of at least eight colours — chosen to meet
WCAG 2 AA: text and muted text reach 4.5:1 against both background and surface; accent,
status colours and series colours reach 3:1 against the surface they are drawn on (WCAG
1.4.11, non-text contrast). :func:`contrast` is the WCAG contrast ratio; the tests check
every pair.

:func:`apply` themes a widget or a dashboard and returns a new dict (the input is never
changed). Without it, :mod:`kpidash.core.widgets` output is unchanged: its default status
colours (#00b894 / #d63031 / #636e72) are the colours of no theme in particular; ``corporate``
keeps the bad and neutral ones and darkens good to #00866b, since #00b894 on a white card is
only 2.5:1.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Final

from kpidash.core.widgets import STATUS_COLORS
from kpidash.errors import NotFound

_HEX_RE: Final = re.compile(r"^#[0-9a-f]{6}$")

MIN_SERIES: Final = 8
TEXT_CONTRAST: Final = 4.5
"""WCAG AA minimum for normal text."""
GRAPHIC_CONTRAST: Final = 3.0
"""WCAG AA minimum for graphical objects and large text (status colours, lines)."""

PALETTE_KEYS: Final = ("background", "surface", "text", "muted", "grid", "accent",
                       "good", "bad", "neutral", "series")


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of an ``#rrggbb`` colour (0 = black, 1 = white)."""
    if not isinstance(color, str) or not _HEX_RE.match(color.lower()):
        raise ValueError(f"expected a colour as '#rrggbb', got {color!r}")
    channels = []
    for i in (1, 3, 5):
        c = int(color[i:i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours: (L1 + 0.05) / (L2 + 0.05) with L1 the
    lighter; from 1.0 (same) to 21.0 (black on white). Symmetric in its arguments."""
    a, b = relative_luminance(fg), relative_luminance(bg)
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


@dataclass(frozen=True, slots=True)
class Theme:
    """One palette. Colours are lower-case ``#rrggbb``."""

    name: str
    background: str
    surface: str
    text: str
    muted: str
    grid: str
    accent: str
    good: str
    bad: str
    neutral: str
    series: tuple[str, ...]

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("name", "series"):
                continue
            value = getattr(self, f.name)
            if not _HEX_RE.match(value):
                raise ValueError(f"theme {self.name!r}: {f.name} must be a lower-case "
                                 f"'#rrggbb' colour, got {value!r}")
        bad = [c for c in self.series if not _HEX_RE.match(c)]
        if bad or len(self.series) < MIN_SERIES:
            raise ValueError(f"theme {self.name!r}: series must hold at least {MIN_SERIES} "
                             f"lower-case '#rrggbb' colours, got {list(self.series)}")

    def status_color(self, status: str) -> str:
        """The colour of a card status (``good``, ``bad``; anything else is ``neutral``)."""
        return self.good if status == "good" else self.bad if status == "bad" else self.neutral

    def series_color(self, index: int) -> str:
        """The colour of the ``index``-th series (the palette repeats)."""
        return self.series[index % len(self.series)]

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "background", …, "series": [...]}`` — plain JSON."""
        out: dict[str, Any] = {"name": self.name}
        for key in PALETTE_KEYS:
            value = getattr(self, key)
            out[key] = list(value) if key == "series" else value
        return out


_ALL = (
    Theme("corporate", background="#f4f6f8", surface="#ffffff", text="#1e272e",
          muted="#57606f", grid="#dfe4ea", accent="#0a5ca8",
          good="#00866b", bad="#d63031", neutral="#636e72",
          series=("#0a5ca8", "#d35400", "#00866b", "#8e44ad", "#c0392b", "#2c3e50",
                  "#9a7d0a", "#16817a")),
    Theme("dark", background="#121417", surface="#1e2227", text="#eceff1",
          muted="#a4adb5", grid="#343a40", accent="#4dabf7",
          good="#00b894", bad="#ff6b6b", neutral="#a4b0be",
          series=("#4dabf7", "#ffa94d", "#69db7c", "#da77f2", "#ff8787", "#3bc9db",
                  "#ffd43b", "#a9e34b")),
    Theme("light", background="#ffffff", surface="#f8f9fa", text="#212529",
          muted="#5c636a", grid="#dee2e6", accent="#1864ab",
          good="#2b8a3e", bad="#c92a2a", neutral="#5c636a",
          series=("#1864ab", "#e8590c", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285",
                  "#5f3dc4", "#a61e4d")),
    Theme("vibrant", background="#10002b", surface="#240046", text="#ffffff",
          muted="#c8b6ff", grid="#3c096c", accent="#ff9e00",
          good="#2ee59d", bad="#ff4d6d", neutral="#bdb2ff",
          series=("#ff9e00", "#00f5d4", "#f15bb5", "#fee440", "#00bbf9", "#b388ff",
                  "#ff6d00", "#7bff6b")),
    Theme("pastel", background="#fdf6f0", surface="#ffffff", text="#3d3d4e",
          muted="#66667a", grid="#ece4f0", accent="#6a4c9c",
          good="#2f855a", bad="#c0392b", neutral="#6b7280",
          series=("#5b7db8", "#c2665a", "#4f8a6b", "#8e6bb8", "#b07a2e", "#3f8a93",
                  "#b85c8a", "#6f7f3a")),
)

THEMES: Final[Mapping[str, Theme]] = MappingProxyType({t.name: t for t in _ALL})
"""Every theme by name, in the design's order."""

DEFAULT_THEME: Final = "corporate"


def get_theme(name: str) -> Theme:
    """The theme called ``name`` (case and surrounding spaces ignored).

    Raises :class:`~kpidash.errors.NotFound` naming the known themes.
    """
    theme = THEMES.get(name.strip().lower()) if isinstance(name, str) else None
    if theme is None:
        raise NotFound(f"unknown theme {name!r}; known themes: {', '.join(THEMES)}")
    return theme


def _theme_card(card: dict[str, Any], theme: Theme) -> dict[str, Any]:
    out = copy.deepcopy(card)
    data = out.get("data")
    if not isinstance(data, dict):
        return out
    status = data.get("status")
    if status not in ("good", "bad", "neutral"):
        # a card without status: recover it from the default colour it was built with
        color = data.get("color")
        by_color = {c: s for s, c in STATUS_COLORS.items()}
        status = by_color.get(color, "neutral") if isinstance(color, str) else "neutral"
    data["color"] = theme.status_color(status)
    data["theme"] = theme.name
    return out


def _theme_line(chart: dict[str, Any], theme: Theme) -> dict[str, Any]:
    out = copy.deepcopy(chart)
    data = out.get("data")
    if not isinstance(data, dict):
        return out
    data["theme"] = theme.name
    figure = data.get("figure")
    if not isinstance(figure, dict):
        return out
    layout = figure.get("layout")
    if not isinstance(layout, dict):
        layout = figure["layout"] = {}
    layout["paper_bgcolor"] = theme.surface
    layout["plot_bgcolor"] = theme.surface
    layout["font"] = {**(layout.get("font") or {}), "color": theme.text}
    layout["colorway"] = list(theme.series)
    for axis in ("xaxis", "yaxis"):
        ax = layout.get(axis)
        ax = layout[axis] = dict(ax) if isinstance(ax, dict) else {}
        ax.update(gridcolor=theme.grid, linecolor=theme.grid, zerolinecolor=theme.grid)
    legend = layout.get("legend")
    layout["legend"] = {**(legend if isinstance(legend, dict) else {}),
                        "font": {"color": theme.text}}
    i = 0
    for trace in figure.get("data") or []:
        if not isinstance(trace, dict):
            continue
        role = (trace.get("meta") or {}).get("kpidash") if isinstance(trace.get("meta"),
                                                                     dict) else None
        if role == "anomalies":  # markers in the theme's "bad" colour
            trace["marker"] = {**(trace.get("marker") or {}), "color": theme.bad}
            continue
        if role in ("forecast", "band_low", "band_high"):  # the forecast follows series 0
            color = theme.series_color(0)
            trace["line"] = {**(trace.get("line") or {}), "color": color}
            if role == "band_high":
                trace["fillcolor"] = _with_alpha(color, 0.18)
            continue
        color = theme.series_color(i)
        i += 1
        trace["line"] = {**(trace.get("line") or {}), "color": color}
        trace["marker"] = {**(trace.get("marker") or {}), "color": color}
    return out


def _with_alpha(color: str, alpha: float) -> str:
    r, g, b = (int(color[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def apply(widget_or_dashboard: dict[str, Any], theme: Theme) -> dict[str, Any]:
    """A themed copy of a widget or dashboard; the input is not changed.

    * ``kpi`` cards: ``data.color`` (the seed field, kept) becomes the theme's colour for
      ``data.status`` (good/bad/neutral), and ``data.theme`` names the theme.
    * ``line`` charts: the Plotly layout gets ``paper_bgcolor`` and ``plot_bgcolor`` (the
      surface), ``font.color`` (text), axis ``gridcolor``/``linecolor``/``zerolinecolor``
      (grid) and ``colorway``; trace *i* gets line and marker colour ``series[i]``;
      ``data.theme`` names the theme.
    * ``dashboard``: a top-level ``theme`` object (:meth:`Theme.to_dict`, the palette) and
      every widget themed as above.
    * Other widgets (``recommendations``, types a front end added) are copied unchanged: they
      carry no colours.

    Raises TypeError when given something other than a dict.
    """
    if not isinstance(widget_or_dashboard, dict):
        raise TypeError(f"expected a widget or dashboard dict, got "
                        f"{type(widget_or_dashboard).__name__}")
    kind = widget_or_dashboard.get("type")
    if kind == "kpi":
        return _theme_card(widget_or_dashboard, theme)
    if kind == "line":
        return _theme_line(widget_or_dashboard, theme)
    if kind == "dashboard":
        out = {k: copy.deepcopy(v) for k, v in widget_or_dashboard.items() if k != "widgets"}
        out["theme"] = theme.to_dict()
        widgets = widget_or_dashboard.get("widgets")
        out["widgets"] = ([apply(w, theme) if isinstance(w, dict) else copy.deepcopy(w)
                           for w in widgets] if isinstance(widgets, list)
                          else copy.deepcopy(widgets))
        return out
    return copy.deepcopy(widget_or_dashboard)


__all__ = [
    "DEFAULT_THEME",
    "GRAPHIC_CONTRAST",
    "PALETTE_KEYS",
    "TEXT_CONTRAST",
    "THEMES",
    "Theme",
    "apply",
    "contrast",
    "get_theme",
    "relative_luminance",
]
