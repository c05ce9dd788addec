"""Real servers on loopback shared by the test suites: an HTTP receiver that can fail on
demand and an aiosmtpd SMTP server (optionally with AUTH, STARTTLS or implicit TLS).

Test packages import the fixtures into their conftest: ``from loopback import http_server``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


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


# -- the kpidash API on a real server ---------------------------------------------------------


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0,
               pause: float = 0.05) -> Any:
    """``check()``'s first truthy result, polled every ``pause`` s; fails the test naming
    ``what`` after ``timeout`` s (for what another process or thread does in its own time)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        time.sleep(pause)


def wait_for_health(url: str, alive: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``url``/api/v1/health until it answers 200; fail when ``alive()`` turns false or
    ``timeout`` seconds pass."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"the server at {url} did not answer /api/v1/health within "
                               f"{timeout:g} s")
        time.sleep(0.05)


@dataclass
class ThreadedServer:
    url: str
    loop: Any  # the server's asyncio loop (run coroutines in it with run_coroutine_threadsafe)


@contextlib.contextmanager
def serve_in_thread(app: Any, name: str = "kpidash-test-server") -> Iterator[ThreadedServer]:
    """A real uvicorn server for ``app`` on a free loopback port, in a background thread."""
    import asyncio

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=free_port(),
                                           log_level="warning", lifespan="on"))
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    url = f"http://{HOST}:{server.config.port}"
    try:
        wait_for_health(url, thread.is_alive)
        yield ThreadedServer(url, loop)
    finally:
        server.should_exit = True
        thread.join(15)
        loop.close()
