"""Prometheus metrics of one app (its own registry, so apps in one process never clash).

With several worker processes (``kpidash serve --workers N``) each worker counts in files
of the folder ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, which
``serve`` switches on before the workers start), and ``/metrics`` — whichever worker answers
it — adds up every worker's: counters and histograms summed, the live-client gauge summed
over the workers alive. A worker killed without a clean exit is removed from the sum by the
next worker that starts (its pid no longer exists).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The multiprocess folder when this process counts for several workers, else None."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.shared_dir = multiprocess_dir()
        if self.shared_dir is not None:
            _forget_dead_workers(self.shared_dir)
        self.requests = Counter("kpidash_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("kpidash_http_request_duration_seconds", "Request latency",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                          2.5, 5, 10))
        self.points = Counter("kpidash_ingested_points_total", "Points written",
                              ["source"], registry=self.registry)
        self.ws_clients = Gauge("kpidash_live_clients", "Connected WebSocket/SSE clients",
                                registry=self.registry, multiprocess_mode="livesum")
        self.pushes = Counter("kpidash_live_messages_total", "Messages queued to live clients",
                              ["type"], registry=self.registry)
        self.refresh = Histogram("kpidash_dashboard_render_seconds", "Dashboard renders",
                                 registry=self.registry)
        self.alert_ticks = Counter("kpidash_alert_ticks_total", "Alert manager ticks",
                                   registry=self.registry)

    def render_latest(self) -> bytes:
        if self.shared_dir is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, path=str(self.shared_dir))  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)

    def close(self) -> None:
        """This worker stops: its live gauge leaves the sum."""
        if self.shared_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), path=str(self.shared_dir))  # type: ignore[no-untyped-call]


_LIVE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def _forget_dead_workers(folder: Path) -> None:
    """Drop the live gauges of workers that ended without a clean exit (SIGKILL, OOM)."""
    from prometheus_client import multiprocess

    for f in folder.glob("gauge_live*.db"):
        m = _LIVE_FILE.match(f.name)
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path=str(folder))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            continue
