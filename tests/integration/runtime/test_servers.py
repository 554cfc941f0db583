"""Every server `TASKFLOW_SERVER` can pick serves the same service app the same way: probes,
the access log's metrics, a JSON POST, lifecycle hooks, and a drain on stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import get_args

import httpx
import pytest
from prometheus_client import CollectorRegistry
from quart import Quart, request

from deploy.broker import free_port
from runtime.servers import SERVERS, ServerName, ServerOptions, serve
from runtime.settings import RuntimeSettings
from runtime.web import WebService, observed_as, service_app
from webapi.auth import AuthSettings
from webapi.hardening import WebSecuritySettings

pytestmark = pytest.mark.integration
SECRET = "runtime-servers-test-secret-0123456789"


def _app(events: list[str]) -> Quart:
    tokens = AuthSettings(jwt_secret=SECRET).verifier()
    app = service_app(
        WebService(name="taskflow-runtime-probe", title="probe", import_name=__name__),
        CollectorRegistry(),
        tokens,
        WebSecuritySettings(),
    )

    @app.post("/echo")
    async def echo() -> tuple[dict[str, object], int]:
        return {"got": await request.get_json()}, 201

    @app.before_serving
    async def started() -> None:
        events.append("started")

    @app.after_serving
    async def stopped() -> None:
        events.append("stopped")

    return app


@contextlib.asynccontextmanager
async def running(server: ServerName, app: Quart) -> AsyncIterator[httpx.AsyncClient]:
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve(server, app, ServerOptions("127.0.0.1", port), stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            if task.done():
                task.result()
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{server} did not answer")
            await asyncio.sleep(0.05)
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


@pytest.mark.parametrize("server", SERVERS)
async def test_each_server_serves_the_service_app_and_drains(server: ServerName) -> None:
    events: list[str] = []
    app = _app(events)
    assert observed_as(app) == "taskflow-runtime-probe"
    async with running(server, app) as client:
        created = await client.post("/echo", json={"title": "x"})
        assert created.status_code == 201 and created.json() == {"got": {"title": "x"}}
        assert (await client.get("/readyz")).status_code == 200
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        metrics = (await client.get("/metrics")).text
        assert 'route="/echo",status="201"' in metrics
        assert "process_cpu_seconds_total" in metrics
    assert events == ["started", "stopped"]


def test_the_server_setting_names_one_of_the_three(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(get_args(ServerName)) == set(SERVERS)
    assert RuntimeSettings().server is None  # each service's measured default applies
    monkeypatch.setenv("TASKFLOW_SERVER", "granian")
    assert RuntimeSettings().server == "granian"
    monkeypatch.setenv("TASKFLOW_SERVER", "gunicorn")
    with pytest.raises(ValueError, match="server"):
        RuntimeSettings()


def test_an_app_not_built_by_the_skeleton_cannot_be_served() -> None:
    with pytest.raises(RuntimeError, match="unobserved"):
        observed_as(Quart(__name__))
