"""``kpidash serve`` (the API server, with ``--demo`` the demo data and ``--clients N`` demo
client workspaces) and ``kpidash users`` (accounts)."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import typer

from kpidash.cli._shared import err, out, progress, settings
from kpidash.errors import ConfigError, Conflict, InputError

users_app = typer.Typer(help="User accounts (the first admin is created here).",
                        no_args_is_help=True)

DEMO_USER = "demo"
DEMO_LAYOUT = [
    {"id": "card:revenue", "x": 0, "y": 0, "w": 3, "h": 2},
    {"id": "card:mrr", "x": 3, "y": 0, "w": 3, "h": 2},
    {"id": "card:customer_churn_rate", "x": 6, "y": 0, "w": 3, "h": 2},
    {"id": "card:signups", "x": 9, "y": 0, "w": 3, "h": 2},
    {"id": "chart:revenue:region", "x": 0, "y": 2, "w": 8, "h": 5},
    {"id": "insights", "x": 8, "y": 2, "w": 4, "h": 5},
    {"id": "chart:customer_churn_rate", "x": 0, "y": 7, "w": 6, "h": 4},
    {"id": "chart:signups", "x": 6, "y": 7, "w": 6, "h": 4},
]


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(users_app, name="users")


def signing_secret_check(cfg: Any) -> None:
    """Refuse to start (one-line error) without a usable signing key outside dev/demo."""
    from kpidash.api import signing_secret

    signing_secret(cfg)


def _accounts(engine: Any, cfg: Any) -> Any:
    from kpidash.auth import Accounts, AuthSettings

    # user management issues no tokens: without a configured key any random one will do
    secret = cfg.secret.get_secret_value() if cfg.secret else secrets.token_urlsafe(48)
    return Accounts(engine.store, engine.clock, AuthSettings(secret=secret),
                    workspace=engine.workspace)


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [KPIDASH_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [KPIDASH_PORT].")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Load the demo data, create a demo login (printed once), dev mode.")
                    ] = False,
    days: Annotated[int, typer.Option(help="Days of demo data.")] = 730,
    clients: Annotated[int, typer.Option(
        help="With --demo: also N (0-20) demo client workspaces client-1 … client-N (own "
        "time zone, currency and data).")] = 0,
    workers: Annotated[int | None, typer.Option(
        help="Server processes [KPIDASH_WORKERS]; more than 1 needs a PostgreSQL store.")
                       ] = None,
) -> None:
    """Run the API server (OpenAPI docs at /docs)."""
    import uvicorn

    from kpidash.api import create_app
    from kpidash.engine import Engine

    _check_clients(clients, demo)
    cfg = settings(host=host, port=port, workers=workers,
                   **({"mode": "demo"} if demo else {}))
    _check_workers(cfg)
    if cfg.secret is None and cfg.mode in ("dev", "demo"):
        from pydantic import SecretStr

        # one random signing key for this run (tokens end with the process)
        cfg = cfg.model_copy(update={"secret": SecretStr(secrets.token_urlsafe(48))})
        err.print(f"{cfg.mode} mode without KPIDASH_SECRET: a random token key for this run",
                  markup=False)
    else:
        signing_secret_check(cfg)
    engine = Engine.from_settings(cfg)
    login, lines = None, []
    if demo:
        login = _load_demo(engine, cfg, days)
        lines = _load_clients(engine, cfg, days, clients)
    url = f"http://{cfg.host}:{cfg.port}"
    store_url = engine.store_label
    if cfg.workers > 1:
        engine.close()  # each worker opens its own connections
    else:
        app = create_app(cfg, engine=engine)
    processes = f", {cfg.workers} worker processes" if cfg.workers > 1 else ""
    out.print(f"kpidash serving {store_url} at {url}{processes}  (API docs: {url}/docs)",
              markup=False)
    if login:
        out.print(f"demo login: user {login[0]!r}, password {login[1]!r} (shown once)",
                  markup=False)
    for line in lines:
        out.print(line, markup=False)
    sys.stdout.flush()
    # no per-message deflate: a dashboard push would be compressed once per client (500
    # clients × 31 KB); dashboards are small and the loopback/LAN is not the bottleneck
    if cfg.workers == 1:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                    ws_per_message_deflate=False)
        return
    _serve_workers(cfg)


def _check_workers(cfg: Any) -> None:
    """Several workers share one store: refused (one line) unless it is PostgreSQL."""
    if cfg.workers > 1 and not cfg.db.startswith(("postgresql:", "postgres:")):
        raise ConfigError(
            f"--workers {cfg.workers} needs a PostgreSQL store (KPIDASH_DB=postgresql://…): "
            f"the DuckDB file {cfg.db} is opened by one process. Serve it with one worker, or "
            "copy it to PostgreSQL first with `kpidash migrate`")


def _serve_workers(cfg: Any) -> None:
    """uvicorn's process manager with ``cfg.workers`` processes on one listening socket
    (it restarts a worker that dies), each building its app from ``cfg``
    (kpidash.api.worker), Prometheus metrics added up over the workers."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from kpidash.api.metrics import MULTIPROC_ENV
    from kpidash.api.worker import SETTINGS_ENV, settings_json

    metrics_dir = tempfile.mkdtemp(prefix="kpidash-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[SETTINGS_ENV] = settings_json(cfg)
    try:
        uvicorn.run("kpidash.api.worker:app", factory=True, workers=cfg.workers,
                    host=cfg.host, port=cfg.port, log_level="warning",
                    ws_per_message_deflate=False)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _load_demo(engine: Any, cfg: Any, days: int) -> tuple[str, str]:
    from kpidash import demo as demo_data
    from kpidash.packs import load_pack

    engine.register(load_pack("saas"))
    last = engine.clock.now().date() - timedelta(days=1)
    rng = engine.store.time_range(engine.workspace, ["revenue"])
    if rng is None or rng[1].date() < last:
        data = demo_data.generate(last, days=days)
        with progress("loading demo data") as update:
            result = engine.ingest_table(data.points, source="demo")
            update(result.rows, result.rows)
        err.print(f"demo: {result.written:,} points for {days} days up to {last}", markup=False)
    accounts = _accounts(engine, cfg)
    password = secrets.token_urlsafe(12)
    user = accounts.get_user_by_name(DEMO_USER) if _exists(accounts, DEMO_USER) else None
    if user is None:
        from kpidash.auth import Role

        user = accounts.create_user(DEMO_USER, password, role=Role.ADMIN,
                                    display_name="Demo user")
    else:
        accounts.set_password(user.id, password)
    if not accounts.list_dashboards(user.id):
        accounts.create_dashboard(user.id, "SaaS overview", {
            "kpis": ["revenue", "mrr", "customer_churn_rate", "signups"], "grain": "day",
            "range": {"last": "90d"}, "refresh_interval": 30, "layout": DEMO_LAYOUT})
    return DEMO_USER, password


@dataclass(frozen=True)
class DemoClient:
    """A demo client workspace: its company, settings, and how its data differs from the
    default demo's (``scale`` multiplies every generated value, ``seed`` draws them)."""

    company: str
    timezone: str
    currency: str
    scale: float


DEMO_CLIENTS: tuple[DemoClient, ...] = (
    DemoClient("Acme Retail", "America/New_York", "USD", 0.35),
    DemoClient("Nordlicht GmbH", "Europe/Berlin", "EUR", 0.12),
    DemoClient("Sakura Apps", "Asia/Tokyo", "JPY", 1.6),
    DemoClient("Kangaroo Cloud", "Australia/Sydney", "AUD", 0.5),
    DemoClient("Maple Analytics", "America/Toronto", "CAD", 0.25),
    DemoClient("Thames Digital", "Europe/London", "GBP", 0.8),
    DemoClient("Samba Commerce", "America/Sao_Paulo", "BRL", 0.2),
    DemoClient("Alpine Health", "Europe/Zurich", "CHF", 0.15),
    DemoClient("Ganges Software", "Asia/Kolkata", "INR", 1.2),
    DemoClient("Fjord Logistics", "Europe/Oslo", "NOK", 0.1),
    DemoClient("Pacific Learning", "America/Los_Angeles", "USD", 0.7),
    DemoClient("Lion City Fintech", "Asia/Singapore", "SGD", 0.3),
    DemoClient("Aztec Foods", "America/Mexico_City", "MXN", 0.18),
    DemoClient("Cape Media", "Africa/Johannesburg", "ZAR", 0.09),
    DemoClient("Seine Mode", "Europe/Paris", "EUR", 0.45),
    DemoClient("Han River Games", "Asia/Seoul", "KRW", 2.0),
    DemoClient("Tagus Travel", "Europe/Lisbon", "EUR", 0.22),
    DemoClient("Nile Energy", "Africa/Cairo", "EGP", 0.11),
    DemoClient("Kiwi Outdoors", "Pacific/Auckland", "NZD", 0.08),
    DemoClient("Vistula Robotics", "Europe/Warsaw", "PLN", 0.14),
)
MAX_CLIENTS = len(DEMO_CLIENTS)


def _load_clients(engine: Any, cfg: Any, days: int, n: int) -> list[str]:
    """Workspaces ``client-1`` … ``client-n`` (:data:`DEMO_CLIENTS`), each with the SaaS
    pack, its own demo data (seed ``DEMO_SEED + i``, values × its scale), a dashboard, and
    the demo user as an admin member; one line per client to print. Idempotent like the
    default demo: data is loaded only when it does not reach yesterday."""
    from kpidash import demo as demo_data
    from kpidash.auth import Role
    from kpidash.engine import Engine
    from kpidash.packs import load_pack

    _check_clients(n, True)
    if n == 0:
        return []
    pack = load_pack("saas")
    money = frozenset(k.id for k in pack if k.unit == "$")
    accounts = _accounts(engine, cfg)
    user = accounts.get_user_by_name(DEMO_USER)
    store, now = engine.store, engine.clock.now()
    last = now.date() - timedelta(days=1)
    lines = []
    for i, client in enumerate(DEMO_CLIENTS[:n], start=1):
        ws, name = f"client-{i}", f"Client {i} ({client.company})"
        if store.workspace(ws) is None:
            store.create_workspace(ws, name, {"timezone": client.timezone,
                                              "currency": client.currency}, now)
        scoped = Engine(store, engine.clock, workspace=ws, timezone=client.timezone,
                        input_timezone=engine.input_timezone, chunk_rows=engine.chunk_rows)
        scoped.register(pack)
        rng = store.time_range(ws, ["revenue"])
        if rng is None or rng[1].date() < last:
            data = demo_data.generate(last, days=days, seed=demo_data.DEMO_SEED + i)
            with progress(f"loading demo data of {ws}") as update:
                result = scoped.ingest_table(_scaled(data.points, client.scale, money),
                                             source="demo")
                update(result.rows, result.rows)
        accounts.add_member(user.id, ws, user.id, Role.ADMIN)
        boards = accounts.list_dashboards(user.id, workspace=ws)
        if not boards:
            boards = [accounts.create_dashboard(user.id, f"{client.company} overview", {
                "kpis": ["revenue", "mrr", "customer_churn_rate", "signups"], "grain": "day",
                "range": {"last": "90d"}, "refresh_interval": 30, "layout": DEMO_LAYOUT},
                workspace=ws)]
        lines.append(f"demo client workspace {ws}: {name}, {client.timezone}, "
                     f"{client.currency}, data ×{client.scale:g}, dashboard "
                     f"{boards[0].name!r} at /api/v1/workspaces/{ws}/dashboards/{boards[0].id}")
    return lines


def _check_clients(n: int, demo: bool) -> None:
    if not 0 <= n <= MAX_CLIENTS:
        raise InputError(f"--clients must be between 0 and {MAX_CLIENTS}, got {n}")
    if n and not demo:
        raise InputError("--clients creates demo client workspaces: it needs --demo")


def _scaled(points: Any, scale: float, money: frozenset[str]) -> Any:
    """Demo points with every value × ``scale``: money rounded to cents, counts to whole
    numbers (so conversions stay ≤ leads and counts stay counts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value = pc.multiply(points["value"], pa.scalar(scale, pa.float64()))
    is_money = pc.is_in(points["kpi"], value_set=pa.array(sorted(money), pa.string()))
    scaled = pc.if_else(is_money, pc.round(value, 2), pc.round(value, 0))
    return points.set_column(points.column_names.index("value"), "value", scaled)


def _exists(accounts: Any, name: str) -> bool:
    from kpidash.errors import NotFound

    try:
        accounts.get_user_by_name(name)
    except NotFound:
        return False
    return True


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name (lowercase).")],
    role: Annotated[str, typer.Option(help="viewer, analyst or admin.")] = "viewer",
    display_name: Annotated[str, typer.Option(help="Shown in the dashboard.")] = "",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Create a user; the password is prompted for (never an argument)."""
    from kpidash.auth import Role
    from kpidash.engine import Engine

    try:
        chosen = Role(role)
    except ValueError:
        raise InputError(f"--role must be viewer, analyst or admin, got {role!r}") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("an empty password is not allowed")
    cfg = settings()
    with Engine.from_settings(cfg) as engine:
        try:
            user = _accounts(engine, cfg).create_user(username, password, role=chosen,
                                                      display_name=display_name)
        except Conflict:
            raise ConfigError(f"user {username!r} already exists") from None
        out.print(f"user {user.username} ({user.role}) created, id {user.id}", markup=False)


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from rich.table import Table

    from kpidash.engine import Engine

    cfg = settings()
    with Engine.from_settings(cfg) as engine:
        table = Table("id", "username", "role", "display name", "disabled")
        for u in _accounts(engine, cfg).list_users():
            table.add_row(u.id, u.username, str(u.role), u.display_name, str(u.disabled))
        out.print(table)


__all__ = ["register"]
