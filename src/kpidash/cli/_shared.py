"""What every command shares: consoles, settings, the engine factory, the progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from kpidash.clock import Clock
from kpidash.engine import Engine
from kpidash.errors import KpidashError
from kpidash.settings import Settings

# The --filter option every KPI command shares: repeat it; the same dim twice = either value.
FilterOption = Annotated[list[str] | None, typer.Option(
    "--filter", help="dim=value (repeat; same dim twice = either value).")]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
state: dict[str, Any] = {"debug": False, "overrides": {}}


def settings(**extra: Any) -> Settings:
    return Settings(**{**state["overrides"], **{k: v for k, v in extra.items() if v is not None}})


def open_engine(clock: Clock | None = None, **extra: Any) -> Engine:
    return Engine.from_settings(settings(**extra), clock)


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr (shown on a terminal); yields update(done, total)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=err, transient=False,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def parse_instant(text: str | None, opt: str) -> datetime | None:
    """An ISO date or timestamp option value; naive values are taken as UTC."""
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise KpidashError(f"{opt} expects an ISO date or timestamp, got {text!r}") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_filters(values: list[str] | None) -> dict[str, list[str]]:
    """``--filter dim=value`` options → {dim: [values]} (the same dim twice = either value)."""
    flt: dict[str, list[str]] = {}
    for f in values or []:
        if "=" not in f:
            raise KpidashError(f"--filter expects dim=value, got {f!r}")
        d, v = f.split("=", 1)
        flt.setdefault(d.strip(), []).append(v.strip())
    return flt
