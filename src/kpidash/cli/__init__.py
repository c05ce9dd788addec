"""The ``kpidash`` command. It calls the engine, never a store directly.

Errors print as one readable line (exit 1; 2 for usage errors) unless ``--debug`` is given.
Long work (file ingestion, the demo load) shows a progress bar on stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from kpidash.cli import (
    alerts,
    anomalies,
    data,
    demo,
    detect,
    events,
    forecast,
    insights,
    kpis,
    migrate,
    quality,
    serve,
    trends,
    workspaces,
)
from kpidash.cli._shared import err, state
from kpidash.core.report import Report
from kpidash.errors import KpidashError, ValidationFailed

app = typer.Typer(help="kpidash — KPI intelligence engine.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    db: Annotated[str | None, typer.Option(help="Store path or URL [env KPIDASH_DB].")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of periods [KPIDASH_TIMEZONE].")] = None,
    input_tz: Annotated[str | None, typer.Option(
        "--input-tz", help="Zone for timestamps without offset [KPIDASH_INPUT_TIMEZONE].")] = None,
) -> None:
    state["debug"] = debug
    state["overrides"] = {k: v for k, v in
                           {"db": db, "timezone": tz, "input_timezone": input_tz}.items() if v}


def main() -> None:
    """Console-script entry point: one readable line per error unless --debug."""
    try:
        rc = app(standalone_mode=False)  # returns the code of a typer.Exit in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        if state["debug"] or "--debug" in sys.argv:
            raise
        _fail(exc)


def _fail(exc: BaseException) -> NoReturn:
    # click's exceptions by name: typer ≥ 0.29 raises those of its own copy of click
    # (typer._click), which are not click's classes
    kinds = {t.__name__ for t in type(exc).__mro__}
    message = getattr(exc, "format_message", None)
    if "UsageError" in kinds and message is not None:
        err.print(f"usage error: {message()}", markup=False)
        sys.exit(2)
    if "ClickException" in kinds and message is not None:
        err.print(f"error: {message()}", markup=False)
        sys.exit(int(getattr(exc, "exit_code", 1)))
    if isinstance(exc, ValidationFailed):
        _print_report(exc.report, header=str(exc).split(":")[0])
        sys.exit(1)
    if isinstance(exc, KpidashError):
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        err.print(f"error: setting {'.'.join(map(str, first['loc']))}: {first['msg']}",
                  markup=False)
        sys.exit(1)
    err.print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
              markup=False)
    sys.exit(1)


def _print_report(report: Report, header: str, limit: int = 20) -> None:
    err.print(f"error: {header}: {report.error_count} error(s)", markup=False)
    for issue in report.issues[:limit]:
        err.print(f"  {issue}", markup=False)
    rest = report.error_count + len(report.warnings) - min(limit, len(report.issues))
    if rest > 0:
        err.print(f"  … and {rest} more", markup=False)


# Commands live in one module each; register them here.
app.add_typer(kpis.kpis_app, name="kpis")
app.add_typer(events.annotations_app, name="annotations")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(workspaces.workspaces_app, name="workspaces")
data.register(app)
demo.register(app)
anomalies.register(app)
quality.register(app)
trends.register(app)
detect.register(app)
forecast.register(app)
insights.register(app)
serve.register(app)
migrate.register(app)


if __name__ == "__main__":
    main()
