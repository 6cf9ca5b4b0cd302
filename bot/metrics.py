"""Prometheus metrics served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("supportbot_requests_total", "Inbound chat platform requests", ["kind"],
                   registry=REGISTRY)
HTTP_REQUESTS = Counter("supportbot_http_requests_total",
                        "HTTP requests answered, by route, status and chat platform",
                        ["route", "status", "platform"], registry=REGISTRY)
COMMANDS = Counter("supportbot_commands_total", "Commands dispatched", ["root"],
                   registry=REGISTRY)
JOBS_DONE = Counter("supportbot_jobs_done_total", "Jobs completed", ["kind"], registry=REGISTRY)
DELIVERY_FAILURES = Counter("supportbot_delivery_failures_total", "Failed platform calls",
                            ["kind", "permanent"], registry=REGISTRY)
WORKER_ERRORS = Counter("supportbot_worker_errors_total", "Worker cycles that failed",
                        registry=REGISTRY)
TIMER_LAG = Histogram("supportbot_timer_lag_seconds", "SLA timer firing lag (fired - due)",
                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                      registry=REGISTRY)
DUPLICATE_EVENTS = Counter("supportbot_duplicate_events_total",
                           "Inbound events skipped as already processed", registry=REGISTRY)
