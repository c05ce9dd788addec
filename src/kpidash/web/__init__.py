"""The built-in web dashboard: static assets (``static/index.html``, ``app.js``, ``app.css``)
served by :func:`kpidash.api.create_app` at ``/`` and ``/static/``, with Plotly's own bundle
from the plotly package at ``/static/vendor/plotly.min.js``. No build step and no CDN: the
browser loads nothing the server does not serve."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

STATIC = Path(str(files("kpidash.web") / "static"))
"""The folder of the dashboard's assets."""


def plotly_bundle() -> Path:
    """The minified plotly.js shipped inside the plotly Python package."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


__all__ = ["STATIC", "plotly_bundle"]
