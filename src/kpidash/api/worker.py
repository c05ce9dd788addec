"""The app of one ``kpidash serve --workers N`` process.

``kpidash serve`` prepares everything once (settings from its options and environment, the
signing key, demo data), then uvicorn starts N worker processes that each import
:func:`app` (``kpidash.api.worker:app``, a factory) and build their own app, engine and store
connections from the settings the parent handed down in :data:`SETTINGS_ENV` (JSON; the
options of the command line are not in the workers' environment otherwise). What the
workers share lives in the PostgreSQL store; what they tell each other goes through it (see
:mod:`kpidash.api.peers`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

from kpidash.settings import Settings

SETTINGS_ENV = "_KPIDASH_WORKER_SETTINGS"
"""Environment variable holding the parent's settings as JSON (internal to ``serve``)."""


def settings_json(settings: Settings) -> str:
    """``settings`` as the JSON :func:`app` reads (the signing key included, in clear: it
    goes to the worker processes' environment only)."""
    doc: dict[str, Any] = settings.model_dump(mode="json")
    doc["secret"] = settings.secret.get_secret_value() if settings.secret else None
    return json.dumps(doc)


def app() -> FastAPI:
    """Build this worker's app from the settings ``serve`` handed down (or, run by hand
    under another process manager, from the KPIDASH_* environment)."""
    from kpidash.api import create_app

    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings(**json.loads(raw)) if raw else Settings()
    return create_app(settings)


__all__ = ["SETTINGS_ENV", "app", "settings_json"]
