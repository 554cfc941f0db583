"""The whole system, started as a user starts it, traced end to end and scraped by a real
Prometheus. Each process is looked at alone: its own log file carries JSON lines with the
trace id of a request or message it handled, its own /metrics is scraped under its own
job, and every dashboard or alert selector is checked against the job it names."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets
import yaml

from deploy.broker import LocalBroker
from tests.integration.observability.otlp_receiver import ReceivedSpan, Receiver, serve_http
from tests.integration.observability.prometheus_server import (
    Prometheus,
    run_prometheus,
    scrape_config,
)
from tests.integration.observability.promql_names import (
    BUILTIN,
    dashboard_exprs,
    exposed_names,
    rule_exprs,
    selectors,
)
from tests.integration.observability.system import (
    FLOWS,
    JWT_SECRET,
    LOG_FILES,
    SERVICES,
    RunningSystem,
    run_system,
)
from webapi.auth import issue_token

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
DEPLOY = ROOT / "deploy" / "observability"
TASK, NOTIFY = "taskflow-task-service", "taskflow-notification-service"
AUDIT, REMINDERS = "taskflow-audit-service", "taskflow-reminder-service"
AUDIT_FLOW, REMINDER_FLOW = "taskflow-audit-flow", "taskflow-reminder-flow"
PROCESSES = [*SERVICES, *FLOWS]
# One GET route of each service's API (no path parameter: the route template is the path).
ROUTES = {
    TASK: "/api/v1/tasks",
    NOTIFY: "/api/v1/notifications",
    AUDIT: "/api/v1/audit",
    REMINDERS: "/api/v1/reminders",
}
assert set(ROUTES) == set(SERVICES)
# What the process collectors of prometheus-client put on every /metrics.
PROCESS_METRICS = {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"}
HTTP_METRICS = {"taskflow_http_requests_total", "taskflow_http_request_duration_seconds_bucket"}


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


# ---------------------------------------------------------------- each process's own logs


@dataclass(frozen=True)
class ServedRequest:
    trace_id: str
    route: str
    status: int


@pytest.fixture(scope="module")
async def service_requests(system: RunningSystem) -> dict[str, ServedRequest]:
    """One traced GET to each service's API (after a probe and a scrape, which must not be
    logged), so each service has a request of its own in its log and its HTTP metrics."""
    token = issue_token(JWT_SECRET, f"obs-{secrets.token_hex(4)}", (), timedelta(hours=1))
    served = {}
    for service, route in ROUTES.items():
        trace_id = secrets.token_hex(16)
        async with httpx.AsyncClient(base_url=system.url(service), timeout=10) as http:
            for quiet in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(quiet)).status_code == 200, (service, quiet)
            response = await http.get(
                route,
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                },
            )
        assert response.status_code == 200, (service, route, response.text)
        served[service] = ServedRequest(trace_id, route, response.status_code)
    return served


Entry = dict[str, object]


def _wait_logged(
    system: RunningSystem, process: str, wanted: Callable[[Entry], bool], timeout: float = 10.0
) -> list[Entry]:
    """Poll `process`'s own log until a JSON line satisfies `wanted` (or the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [entry for entry in system.json_logs(process) if wanted(entry)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _log_tail(system: RunningSystem, process: str) -> str:
    lines = system.logs(LOG_FILES[process]).splitlines()[-30:]
    return f"last lines of {LOG_FILES[process]}.log:\n" + "\n".join(line[:300] for line in lines)


def _assert_own_json(system: RunningSystem, process: str) -> None:
    logged = system.json_logs(process)
    assert logged, f"{process} writes no JSON log lines\n{_log_tail(system, process)}"
    others = {str(e.get("service")) for e in logged} - {process}
    assert not others, f"{process}'s log has lines of service {others}"


def _is_span_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 16 and int(value, 16) > 0


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_writes_a_json_access_line_with_the_trace_id(
    service: str, system: RunningSystem, service_requests: dict[str, ServedRequest]
) -> None:
    served = service_requests[service]
    lines = _wait_logged(system, service, lambda e: e.get("trace_id") == served.trace_id)
    _assert_own_json(system, service)
    access = [e for e in lines if e.get("logger") == "taskflow.access"]
    assert len(access) == 1, f"{service}: {lines}\n{_log_tail(system, service)}"
    (line,) = access
    assert line["http_method"] == "GET"
    assert line["http_route"] == served.route
    assert line["http_status"] == served.status
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert _is_span_id(line["span_id"])
    assert str(line["message"]).startswith(f"GET {served.route} {served.status} ")
    # Probes and scrapes (the launcher's, Prometheus's, this test's) are not logged.
    quiet = [
        e
        for e in system.json_logs(service)
        if e.get("logger") == "taskflow.access"
        and e.get("http_route") in ("/healthz", "/readyz", "/metrics")
    ]
    assert not quiet, quiet[:3]


def test_the_task_service_logs_the_clients_trace(
    traced_request: TracedRequest, system: RunningSystem
) -> None:
    def wanted(entry: Entry) -> bool:
        return entry.get("trace_id") == traced_request.trace_id

    lines = _wait_logged(system, TASK, wanted)
    post = [e for e in lines if e.get("logger") == "taskflow.access"]
    assert [(e["http_method"], e["http_route"], e["http_status"]) for e in post] == [
        ("POST", "/api/v1/tasks", 201)
    ]
    assert all(_is_span_id(e["span_id"]) for e in lines)


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_each_flow_logs_json_with_the_trace_id_of_a_message_it_handled(
    flow: str, traced_request: TracedRequest, system: RunningSystem
) -> None:
    """Both flows handled the traced task.created (the audit flow stored it, the reminder
    flow scheduled and fired its reminder, continuing the trace)."""
    lines = _wait_logged(system, flow, lambda e: e.get("trace_id") == traced_request.trace_id)
    _assert_own_json(system, flow)
    assert lines, (
        f"{flow} logged no line with the trace id of the task it handled\n{_log_tail(system, flow)}"
    )
    assert all(_is_span_id(e["span_id"]) for e in lines)


# ---------------------------------------------------------------- each process's own metrics


@pytest.fixture(scope="module")
def prometheus(
    system: RunningSystem,
    service_requests: dict[str, ServedRequest],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    """The Debian Prometheus on the shipped config, each job pointed at its own process."""
    directory = tmp_path_factory.mktemp("prometheus")
    targets = {name: f"127.0.0.1:{port}" for name, port in system.ports.items()}
    config = scrape_config(DEPLOY / "prometheus" / "prometheus.yml", targets, directory)
    with run_prometheus(config, directory / "tsdb") as running:
        running.wait_targets_up(set(targets), timeout=15)
        yield running


def test_prometheus_scrapes_every_target(system: RunningSystem, prometheus: Prometheus) -> None:
    health = prometheus.target_health()
    assert health == dict.fromkeys(system.ports, "up"), health
    groups = prometheus.rule_groups()
    assert {"taskflow-events", "taskflow-reminders", "taskflow-audit"} <= set(groups)
    assert all(state == "ok" for state in groups.values()), groups


def _scrape_names(system: RunningSystem, process: str) -> set[str]:
    return exposed_names([_scrape(system.metrics_url(process))])


@pytest.mark.parametrize("process", PROCESSES)
def test_each_process_exposes_its_metrics_under_its_own_job(
    process: str,
    system: RunningSystem,
    prometheus: Prometheus,
    service_requests: dict[str, ServedRequest],
) -> None:
    assert process not in system.pending, f"{process} never served /metrics"
    wanted = PROCESS_METRICS | (HTTP_METRICS if process in SERVICES else set())
    assert not wanted - _scrape_names(system, process), process
    queries = [f'process_cpu_seconds_total{{job="{process}"}}']
    if process in SERVICES:
        route = service_requests[process].route
        queries.append(f'taskflow_http_requests_total{{job="{process}",route="{route}"}}')
    for query in queries:
        assert prometheus.wait_query(query, timeout=15), f"no series for {query}"


def test_request_panels_naming_a_service_job_are_not_empty(prometheus: Prometheus) -> None:
    """The panels that plot one service's requests (the reminders and audit dashboards')
    show data once that service served a request."""
    panels = sorted(
        {
            (where, expr)
            for where, exprs in dashboard_exprs(DEPLOY / "grafana" / "dashboards").items()
            for expr in exprs
            for selector in selectors(expr)
            if selector.metric == "taskflow_http_requests_total"
            and any(op == "=" for op, _ in selector.job)
        }
    )
    assert "reminders.json: Reminder service requests" in {where for where, _ in panels}
    empty = [
        (where, expr)
        for where, expr in panels
        if not prometheus.wait_query(expr.replace("$__rate_interval", "30s"), timeout=20)
    ]
    assert not empty, empty


def test_dashboards_and_alerts_query_what_the_named_job_exposes(system: RunningSystem) -> None:
    """Each selector is checked against the jobs it names: a fixed `job="x"` must be a
    process exposing that metric; a regex or no job matcher needs one matching job that
    does (the union of all processes would hide a metric missing where it is asked for)."""
    jobs = _shipped_scrape_jobs()
    exposed = {
        process: _scrape_names(system, process)
        for process in PROCESSES
        if process not in system.pending
    }
    used = dashboard_exprs(DEPLOY / "grafana" / "dashboards") | rule_exprs(
        DEPLOY / "prometheus" / "alerts.yml"
    )
    problems: dict[str, list[str]] = {}
    for where, exprs in used.items():
        for selector in {s for expr in exprs for s in selectors(expr)}:
            if selector.metric in BUILTIN:
                continue
            named = selector.jobs(jobs)
            if not named:
                problems.setdefault(where, []).append(f"{selector}: no scrape job matches")
            elif not any(selector.metric in exposed.get(job, set()) for job in named):
                problems.setdefault(where, []).append(
                    f"{selector}: not exposed by {sorted(named & set(exposed)) or sorted(named)}"
                )
    assert not problems, f"unreachable: {system.pending}\n" + json.dumps(
        problems, indent=1, sort_keys=True
    )


def _shipped_scrape_jobs() -> list[str]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return [str(job["job_name"]) for job in config["scrape_configs"]]
