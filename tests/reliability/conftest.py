"""Fixtures of the reliability suite: the API fixtures of tests/api, re-exported here."""

from __future__ import annotations

from api.conftest import api, make_api, shared_api, template  # noqa: F401
