"""The whole system, started as a user starts it, traced end to end and scraped by a real
Prometheus; the dashboards and alert rules use only metrics the processes expose."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets

from deploy.broker import LocalBroker
from tests.integration.observability.otlp_receiver import ReceivedSpan, Receiver, serve_http
from tests.integration.observability.prometheus_server import run_prometheus, scrape_config
from tests.integration.observability.promql_names import (
    BUILTIN,
    dashboard_exprs,
    exposed_names,
    metric_names,
    rule_exprs,
)
from tests.integration.observability.system import (
    FLOWS,
    JWT_SECRET,
    SERVICES,
    RunningSystem,
    run_system,
)
from webapi.auth import issue_token

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
DEPLOY = ROOT / "deploy" / "observability"
TASK, NOTIFY = "taskflow-task-service", "taskflow-notification-service"
AUDIT_FLOW, REMINDER_FLOW = "taskflow-audit-flow", "taskflow-reminder-flow"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with serve_http(rec) as url:
        yield rec, url


@pytest.fixture(scope="module")
async def system(
    receiver: tuple[Receiver, str],
    pg_admin_url: str,
    create_database: Callable[[str], Awaitable[str]],
    broker: LocalBroker,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningSystem]:
    databases = {
        f"{prefix}DATABASE_URL": await create_database(f"obs_{name.replace('-', '_')}")
        for name, prefix in SERVICES.values()
    }
    with run_system(
        admin_url=pg_admin_url,
        database_urls=databases,
        bootstrap=broker.bootstrap,
        otlp_endpoint=receiver[1],
        data_dir=tmp_path_factory.mktemp("system"),
    ) as running:
        assert not set(running.pending) & set(SERVICES), (
            f"not ready: {running.pending}\n{(running.data_dir / 'up.out').read_text()}\n"
            f"{running.all_logs()}"
        )
        yield running


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local
        return str(response.read().decode())


# ---------------------------------------------------------------- one request, one trace


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _related(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    """Spans of the trace plus spans of traces that link into it (and their traces)."""
    traces = {trace_id}
    traces |= {s.trace_id for s in spans if any(t == trace_id for t, _ in s.links)}
    return [s for s in spans if s.trace_id in traces]


def _is_ws_send(span: ReceivedSpan) -> bool:
    name = span.name.lower()
    return (
        span.service == NOTIFY
        and span.kind != "SERVER"
        and ("websocket" in name or "ws" in name.split())
    )


def _is_task_consumer(span: ReceivedSpan, service: str) -> bool:
    topic = str(span.attributes.get("messaging.destination.name", ""))
    return span.service == service and span.kind == "CONSUMER" and topic.endswith("taskflow.tasks")


def _missing_hops(trace: list[ReceivedSpan]) -> list[str]:
    checks = {
        "HTTP server span": lambda s: (
            s.service == TASK
            and s.kind == "SERVER"
            and s.attributes.get("http.request.method") == "POST"
        ),
        "DB spans": lambda s: (
            s.service == TASK
            and s.kind == "CLIENT"
            and s.attributes.get("db.system.name") == "postgresql"
        ),
        "producer span": lambda s: s.service == TASK and s.kind == "PRODUCER",
        "audit-flow processing span": lambda s: _is_task_consumer(s, AUDIT_FLOW),
        "notification worker span": lambda s: _is_task_consumer(s, NOTIFY),
        "WebSocket send span": _is_ws_send,
    }
    return [hop for hop, check in checks.items() if not any(check(s) for s in trace)]


async def _frames_until(
    ws: websockets.ClientConnection, kinds: set[str]
) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    async with asyncio.timeout(45):
        while kinds - {f["notification"]["kind"] for f in seen}:  # type: ignore[index]
            frame = json.loads(await ws.recv())
            if frame.get("type") == "notification":
                seen.append(frame)
    return seen


@dataclass(frozen=True)
class TracedRequest:
    trace_id: str
    client_span_id: str
    kinds: frozenset[str]


@pytest.fixture(scope="module")
async def traced_request(system: RunningSystem) -> TracedRequest:
    """POST one task with a reminder (client traceparent set), with a WebSocket listening,
    and wait for its task.created and task.reminder notifications to be pushed."""
    user = f"obs-{secrets.token_hex(4)}"
    token = issue_token(JWT_SECRET, user, (), timedelta(hours=1))
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    now = datetime.now(UTC)
    body = {
        "title": "observe me",
        "due_at": (now + timedelta(hours=1)).isoformat(),
        "reminders": [{"at": (now + timedelta(seconds=4)).isoformat()}],
    }
    ws_url = f"ws://127.0.0.1:{system.ports[NOTIFY]}/ws?token={token}"
    async with websockets.connect(ws_url) as ws:
        async with httpx.AsyncClient(base_url=system.url(TASK)) as http:
            response = await http.post(
                "/api/v1/tasks",
                json=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-{parent}-01",
                },
            )
        assert response.status_code == 201, response.text
        frames = await _frames_until(ws, {"task.created", "task.reminder"})
    kinds = frozenset(str(f["notification"]["kind"]) for f in frames)  # type: ignore[index]
    return TracedRequest(trace_id, parent, kinds)


def _describe(spans: list[ReceivedSpan], trace_id: str) -> str:
    trace = _in_trace(spans, trace_id)
    lines = [f"missing hops: {_missing_hops(trace)}", "in the trace:"]
    lines += [f"  {s.service} {s.kind} {s.name!r} {s.attributes}" for s in trace]
    linked = [s for s in _related(spans, trace_id) if s.trace_id != trace_id]
    lines += ["linked:"] + [f"  {s.service} {s.kind} {s.name!r}" for s in linked]
    return "\n".join(lines)


async def test_one_request_is_one_trace_across_every_hop(
    traced_request: TracedRequest, receiver: tuple[Receiver, str]
) -> None:
    trace_id = traced_request.trace_id
    try:
        spans = await asyncio.to_thread(
            receiver[0].wait_for, lambda s: not _missing_hops(_in_trace(s, trace_id)), 15.0
        )
    except AssertionError:
        pytest.fail(_describe(receiver[0].snapshot(), trace_id))
    assert not receiver[0].rejected  # every export request was valid OTLP
    trace = _in_trace(spans, trace_id)
    server = next(s for s in trace if s.service == TASK and s.kind == "SERVER")
    assert server.parent_span_id == traced_request.client_span_id  # client's trace continued
    assert str(server.attributes.get("http.route", "")).startswith("/api/v1/tasks")
    assert server.attributes.get("http.response.status_code") == 201
    producer = next(s for s in trace if s.service == TASK and s.kind == "PRODUCER")
    assert producer.attributes["messaging.system"] == "kafka"
    # The relay publishes after the request returned, yet continues the request's trace;
    # the consumers are children of the producer span (parent from the Kafka headers).
    for service in (AUDIT_FLOW, NOTIFY):
        consumer = next(s for s in trace if _is_task_consumer(s, service))
        assert consumer.parent_span_id == producer.span_id, service


async def test_reminder_fire_and_its_websocket_send_continue_the_trace(
    traced_request: TracedRequest, receiver: tuple[Receiver, str]
) -> None:
    assert "task.reminder" in traced_request.kinds
    trace_id = traced_request.trace_id

    def complete(spans: list[ReceivedSpan]) -> bool:
        related = _related(spans, trace_id)
        return any(s.service == REMINDER_FLOW for s in related) and (
            sum(_is_ws_send(s) for s in related) >= 2  # task.created and task.reminder
        )

    try:
        await asyncio.to_thread(receiver[0].wait_for, complete, 15.0)
    except AssertionError:
        pytest.fail(_describe(receiver[0].snapshot(), trace_id))


def test_logs_carry_the_trace_id(traced_request: TracedRequest, system: RunningSystem) -> None:
    logged = [
        json.loads(line)
        for component in ("task-api", "notify", "audit-flow", "reminders-flow")
        for line in system.logs(component).splitlines()
        if line.startswith("{")
    ]
    assert logged, "no JSON log lines"
    in_trace = [e for e in logged if e.get("trace_id") == traced_request.trace_id]
    assert in_trace, "no log line carries the request's trace id"
    assert all(len(str(e["span_id"])) == 16 for e in in_trace)


# ---------------------------------------------------------------- Prometheus and metric names


def test_prometheus_scrapes_every_target(system: RunningSystem, tmp_path: Path) -> None:
    targets = {name: f"127.0.0.1:{port}" for name, port in system.ports.items()}
    config = scrape_config(DEPLOY / "prometheus" / "prometheus.yml", targets, tmp_path)
    with run_prometheus(config, tmp_path / "tsdb") as prometheus:
        health = prometheus.wait_targets_up(set(targets), timeout=15)
        assert health == dict.fromkeys(targets, "up"), health
        groups = prometheus.rule_groups()
        assert {"taskflow-events", "taskflow-reminders", "taskflow-audit"} <= set(groups)
        assert all(state == "ok" for state in groups.values()), groups


def test_dashboards_and_alerts_use_only_exposed_metrics(system: RunningSystem) -> None:
    reachable = [name for name in [*SERVICES, *FLOWS] if name not in system.pending]
    names = exposed_names(_scrape(system.metrics_url(name)) for name in reachable)
    used = dashboard_exprs(DEPLOY / "grafana" / "dashboards") | rule_exprs(
        DEPLOY / "prometheus" / "alerts.yml"
    )
    missing = {
        where: sorted(bad)
        for where, exprs in used.items()
        if (bad := set().union(*(metric_names(e) for e in exprs)) - names - BUILTIN)
    }
    assert not missing, (
        f"not exposed by any process (unreachable: {system.pending}):\n"
        + json.dumps(missing, indent=1)
    )
