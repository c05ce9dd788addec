"""Prometheus metrics of one app (its own registry, so apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kpidash_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("kpidash_http_request_duration_seconds", "Request latency",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                          2.5, 5, 10))
        self.points = Counter("kpidash_ingested_points_total", "Points written",
                              ["source"], registry=self.registry)
        self.ws_clients = Gauge("kpidash_live_clients", "Connected WebSocket/SSE clients",
                                registry=self.registry)
        self.pushes = Counter("kpidash_live_messages_total", "Messages queued to live clients",
                              ["type"], registry=self.registry)
        self.refresh = Histogram("kpidash_dashboard_render_seconds", "Dashboard renders",
                                 registry=self.registry)
        self.alert_ticks = Counter("kpidash_alert_ticks_total", "Alert manager ticks",
                                   registry=self.registry)

    def render_latest(self) -> bytes:
        return generate_latest(self.registry)
