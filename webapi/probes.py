"""`/healthz`, `/readyz` and `/metrics`, the same on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Blueprint, Response

from webapi.openapi import JSON_OBJECT, PROBLEM_REF, document_status
from webapi.problems import PROBLEM_JSON, problem_response

Check = Callable[[], Awaitable[None]]
# Liveness: the process's stuck or dead loops, name → why (runtime.heartbeat.Heartbeats.stale).
Stale = Callable[[], Mapping[str, str]]


def probes_blueprint(
    checks: Mapping[str, Check],
    registry: CollectorRegistry,
    timeout: float = 3.0,
    *,
    startup: Mapping[str, Check] | None = None,
    stale: Stale | None = None,
) -> Blueprint:
    """Liveness, readiness and Prometheus metrics.

    Readiness runs every check in `checks` on each probe (what the service needs to answer
    its requests: its database). `startup` checks must pass once, before the first ready
    answer (a consumer holding its partitions); once passed they are not asked again, so a
    later broker outage does not take the service out of its load balancer.

    Liveness asks no dependency (an outage must not restart every pod): it fails only
    when `stale` names a background loop of this process that died or stopped beating.
    """
    probes = Blueprint("probes", __name__)
    pending_startup = dict(startup or {})

    @probes.get("/healthz")
    @document_status(200, "Alive", "application/json", JSON_OBJECT)
    @document_status(503, "A background loop is stuck or dead", PROBLEM_JSON, PROBLEM_REF)
    async def healthz() -> Response | dict[str, str]:
        failing = dict(stale()) if stale is not None else {}
        if failing:
            return _refusal("Not live", "not-live", failing, "{name} {why}")
        return {"status": "ok"}

    @probes.get("/readyz")
    @document_status(200, "Every dependency answered", "application/json", JSON_OBJECT)
    @document_status(503, "A dependency is unreachable", PROBLEM_JSON, PROBLEM_REF)
    async def readyz() -> Response | dict[str, object]:
        not_started = await _failing(pending_startup, timeout)
        for name in set(pending_startup) - set(not_started):
            del pending_startup[name]  # passed once: not asked again
        failing = not_started | await _failing(checks, timeout)
        if failing:
            return _refusal("Not ready", "not-ready", failing, "{name} unreachable ({why})")
        return {"status": "ready", "checks": {name: "ok" for name in [*(startup or {}), *checks]}}

    @probes.get("/metrics")
    @document_status(200, "Prometheus text", CONTENT_TYPE_LATEST.split(";")[0], {"type": "string"})
    async def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return probes


async def _failing(checks: Mapping[str, Check], timeout: float) -> dict[str, str]:
    """The checks that did not answer within `timeout`, with why."""
    failing: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            failing[name] = f"{type(exc).__name__}: {exc}" or type(exc).__name__
    return failing


def _refusal(title: str, kind: str, failing: Mapping[str, str], line: str) -> Response:
    """503 problem+json naming each failing part."""
    detail = "; ".join(line.format(name=name, why=why) for name, why in failing.items())
    errors = [{"field": name, "message": why} for name, why in failing.items()]
    return problem_response(503, title, detail, kind, errors)
