"""The one way a service's Quart app is made: OpenAPI, problem+json, hardening, probes,
server spans, HTTP metrics and the access log are installed here, so no service can serve a
request unobserved. A service adds its own blueprints and lifecycle hooks to what this
returns."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from quart import Quart
from quart_schema import QuartSchema

from observability.quart import DEFAULT_EXCLUDED_URLS, instrument_app
from observability.tracing import setup_tracing
from runtime.heartbeat import Heartbeats
from webapi.auth import TokenVerifier
from webapi.hardening import WebSecuritySettings, install_hardening
from webapi.openapi import ProblemOpenAPIProvider
from webapi.probes import Check, probes_blueprint
from webapi.problems import install_problem_handlers

MIB = 1024 * 1024
OBSERVED = "taskflow.observed"  # app.extensions key: set only by `service_app`


@dataclass(frozen=True)
class WebService:
    """What differs between the services' web apps."""

    name: str  # service.name in traces, `service` in logs, the Prometheus job
    title: str
    import_name: str
    max_body_bytes: int = MIB
    # Readiness: what must answer for the service to take traffic (its database).
    ready_checks: Mapping[str, Check] = field(default_factory=dict)
    # Start-up: what must have happened once before the first readiness (a consumer
    # holding its partitions); after that, an outage of it does not make the pod unready.
    startup_checks: Mapping[str, Check] = field(default_factory=dict)
    # Liveness: the heartbeats of the process's background loops (relay, worker, jobs);
    # /healthz fails naming a loop that died or has been silent longer than it may be.
    heartbeats: Heartbeats = field(default_factory=Heartbeats)
    cors_origins: list[str] | None = None
    page_csp: Mapping[str, str] | None = None
    # Long-lived routes (a WebSocket) that must not be one span each.
    untraced_paths: tuple[str, ...] = ()


def service_app(
    service: WebService,
    registry: CollectorRegistry,
    tokens: TokenVerifier,
    security: WebSecuritySettings,
) -> Quart:
    """A Quart app with every shared HTTP rule and the observability wiring installed."""
    setup_tracing(service.name)
    app = Quart(service.import_name)
    app.config["MAX_CONTENT_LENGTH"] = service.max_body_bytes
    app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"] = "pydantic"
    QuartSchema(
        app,
        info={"title": service.title, "version": "1.0.0"},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        security=[{"bearer": []}],
        openapi_provider_class=ProblemOpenAPIProvider,
    )
    install_problem_handlers(app)
    install_hardening(
        app, security, tokens, cors_origins=service.cors_origins, page_csp=service.page_csp
    )
    app.register_blueprint(
        probes_blueprint(
            service.ready_checks,
            registry,
            startup=service.startup_checks,
            stale=service.heartbeats.stale,
        )
    )
    _add_process_metrics(registry)
    excluded = DEFAULT_EXCLUDED_URLS + "".join(f",{path}$" for path in service.untraced_paths)
    instrument_app(app, service.name, registry, excluded_urls=excluded)
    app.extensions[OBSERVED] = service.name
    return app


def _add_process_metrics(registry: CollectorRegistry) -> None:
    """process_*, python_gc_* and python_info under the service's own job (once)."""
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        with contextlib.suppress(ValueError):  # already there (new_registry, or a rebuild)
            collector(registry=registry)


def observed_as(app: Quart) -> str:
    """The service name `app` was built for; refuses an app not made by `service_app`."""
    name = app.extensions.get(OBSERVED)
    if not isinstance(name, str):
        raise RuntimeError("app not built by runtime.web.service_app: it would run unobserved")
    return name
