"""Real servers on loopback for the notifier tests: an HTTP receiver and an aiosmtpd SMTP server."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from kpidash.notify import Notification, Severity, Status

HOST = "127.0.0.1"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers ``statuses`` in order (then 200) and records every request."""

    url: str
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.requests.append(Received(self.path, headers, body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            reply = b"ok" if status < 400 else b"nope"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpReceiver]]:
    """Factory: ``http_server(statuses=[503, 503])`` starts a receiver; all are stopped at teardown."""
    started: list[tuple[HTTPServer, threading.Thread]] = []

    def start(statuses: list[int] | None = None) -> HttpReceiver:
        receiver = HttpReceiver(url="", statuses=list(statuses or []))
        server = HTTPServer((HOST, 0), _handler(receiver))
        server.timeout = 2
        receiver.url = f"http://{HOST}:{server.server_address[1]}/hook"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        return receiver

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never answers: reads time out."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen(8)
        yield s.getsockname()[1]


# -- SMTP -------------------------------------------------------------------------------------


@dataclass
class SmtpReceiver:
    port: int
    reply: str = "250 OK"
    envelopes: list[Envelope] = field(default_factory=list)

    def messages(self) -> list[EmailMessage]:
        out = []
        for env in self.envelopes:
            content = env.original_content or b""
            msg = message_from_bytes(content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.receiver.reply.startswith("250"):
            self.receiver.envelopes.append(envelope)
        return self.receiver.reply


USER, PASSWORD = "alerts", "s3cret"


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535 itself


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpReceiver]]:
    """Factory: ``smtp_server(reply="451 later", auth=True, starttls=ctx)``; stopped at teardown."""
    controllers: list[Controller] = []

    def start(reply: str = "250 OK", auth: bool = False, starttls: ssl.SSLContext | None = None,
              implicit_tls: ssl.SSLContext | None = None) -> SmtpReceiver:
        receiver = SmtpReceiver(port=free_port(), reply=reply)
        kwargs: dict[str, Any] = {"ready_timeout": 5.0}
        if auth:
            kwargs |= {"authenticator": _authenticator, "auth_require_tls": starttls is not None}
        if starttls is not None:
            kwargs |= {"tls_context": starttls, "require_starttls": True}
        if implicit_tls is not None:
            kwargs |= {"ssl_context": implicit_tls}
        controller = Controller(_Handler(receiver), hostname=HOST, port=receiver.port, **kwargs)
        controller.start()
        controllers.append(controller)
        return receiver

    yield start
    for controller in controllers:
        controller.stop()


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
