"""Real servers on loopback for the notifier tests: an HTTP receiver and an aiosmtpd SMTP server."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kpidash.notify import Notification, Severity, Status
from loopback import (  # noqa: F401  (fixtures re-exported for this package)
    HOST,
    PASSWORD,
    USER,
    HttpReceiver,
    Received,
    SmtpReceiver,
    closed_port,
    free_port,
    http_server,
    silent_port,
    smtp_server,
)


def make_notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": "ntf-0001",
        "title": "Revenue below threshold",
        "severity": Severity.CRITICAL,
        "status": Status.FIRING,
        "kpi_id": "revenue",
        "kpi_name": "Revenue",
        "value": 41250.5,
        "since": datetime(2024, 3, 1, 6, 30, tzinfo=UTC),
        "rule_id": "revenue-floor",
        "group_key": "revenue/region=EU",
        "slice": {"region": "EU", "plan": "pro"},
        "threshold": 50000.0,
        "recent": (52000.0, 51500.0, 50100.0, 47000.0, 41250.5),
        "dashboard_url": "http://dash.example/kpi/revenue?region=EU",
        "unit": "$",
    }
    fields.update(overrides)
    return Notification(**fields)


@pytest.fixture
def notification() -> Notification:
    return make_notification()


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A throwaway self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=IP:{HOST}"],
        check=True, capture_output=True, timeout=30,
    )
    return Certificate(cert, key)


# -- notifier plugins -------------------------------------------------------------------------

PLUGIN_MODULE = "kpidash_test_pager"

PLUGIN_SOURCE = '''
"""A third-party channel type, as a plugin author would write it."""

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from kpidash.errors import ConfigError
from kpidash.notify import DeliveryResult
from kpidash.notify.base import http_status_result


class PagerNotifier:
    def __init__(self, name, url, routing_key):
        self.name, self.url, self.routing_key = name, url, routing_key

    def send(self, n):
        try:
            r = httpx.post(self.url, json={"routing_key": self.routing_key, "summary": n.headline,
                                           "dedup_key": n.id}, timeout=2)
        except httpx.TransportError as exc:
            return DeliveryResult.failure(str(exc), retryable=True)
        return http_status_result(r.status_code, r.text)


def from_config(config):
    problems = []
    if not str(config.get("url", "")).startswith("http"):
        problems.append("url: expected an http(s) URL")
    if len(str(config.get("routing_key", ""))) < 8:
        problems.append("routing_key: expected the 32-character integration key")
    unknown = sorted(set(config) - {"name", "url", "routing_key"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    if problems:
        raise ConfigError("pager channel: " + "; ".join(problems))
    return PagerNotifier(config.get("name", "pager"), config["url"], config["routing_key"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: SecretStr
    retries: int


def strict(config):
    _Strict.model_validate(dict(config))  # lets pydantic's ValidationError out
    raise AssertionError("not reached in the tests")


def not_a_notifier(config):
    return object()


NOT_CALLABLE = 42
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """``plugin({"pager": "kpidash_test_pager:from_config"})`` registers ``kpidash.notifiers`` entry
    points the way an installed package would: a ``*.dist-info`` folder on ``sys.path``."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def register(entries: dict[str, str]) -> None:
        dist = tmp_path / "kpidash_test_pager-1.0.dist-info"
        dist.mkdir(exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kpidash-test-pager\nVersion: 1.0\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
        (dist / "entry_points.txt").write_text(f"[kpidash.notifiers]\n{lines}")

    yield register
    sys.modules.pop(PLUGIN_MODULE, None)
