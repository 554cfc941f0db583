"""No secret ever reaches the logs: the task and notification services run as processes at
DEBUG with known secrets (JWT secret, Kafka SASL password, SMTP password, database
password), serve good and bad requests and a WebSocket, start and stop; then every byte
they wrote is searched for each secret and for every bearer token sent."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from deploy.broker import LocalBroker, free_port
from notify_ws.db.migrate import migrate as migrate_notify
from webapi.auth import issue_token

JWT_SECRET = "jwt-" + secrets.token_hex(24)
SASL_PASSWORD = "sasl-" + secrets.token_hex(16)
SMTP_PASSWORD = "smtp-" + secrets.token_hex(16)
DB_PASSWORD = "dbpw-" + secrets.token_hex(12)
SECRETS = {
    "JWT secret": JWT_SECRET,
    "Kafka SASL password": SASL_PASSWORD,
    "SMTP password": SMTP_PASSWORD,
    "database password": DB_PASSWORD,
}


def with_password(url: str) -> str:
    """The machine's PostgreSQL trusts local users: a password in the URL is sent, unused."""
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":")[0] or "postgres"
    return f"{scheme}://{user}:{DB_PASSWORD}@{host}"


@contextmanager
def service(args: list[str], env: dict[str, str], log: Path, health: str) -> Iterator[None]:
    """`taskflow <args>` with all its output in `log`; stopped with SIGTERM afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "deploy.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(health, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.2)
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def base_env(broker: LocalBroker) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "OTEL_"))}
    return env | {
        "TASKFLOW_JWT_SECRET": JWT_SECRET,
        "TASKFLOW_LOG_LEVEL": "DEBUG",
        "TASKFLOW_LOG_FORMAT": "json",
        "TASKFLOW_KAFKA_BOOTSTRAP": broker.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": f"logs{secrets.token_hex(4)}.",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_SDK_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }


async def test_no_secret_or_token_in_any_log(
    broker: LocalBroker,
    create_database: Callable[[str], Awaitable[str]],
    tmp_path: Path,
) -> None:
    from task_api.cli import migrate as migrate_tasks

    tasks_db = with_password(await create_database("logs_tasks"))
    notify_db = with_password(await create_database("logs_notify"))
    os.environ["TASKFLOW_TASK_API_DATABASE_URL"] = tasks_db
    try:
        await migrate_tasks()
    finally:
        del os.environ["TASKFLOW_TASK_API_DATABASE_URL"]
    await migrate_notify(notify_db)

    good = issue_token(JWT_SECRET, "alice")
    tokens = {
        "good": good,
        "wrong secret": issue_token("another-secret-" + "x" * 40, "alice"),
        "expired": issue_token(JWT_SECRET, "alice", ttl=timedelta(seconds=-5)),
        "garbage": "not.a.jwt-" + secrets.token_hex(8),
    }
    task_port, notify_port = free_port(), free_port()
    task_env = base_env(broker) | {
        # Production: the real startup checks run; Kafka authentication then fails against
        # the test broker, which makes librdkafka log about the SASL connection.
        "TASKFLOW_ENV": "production",
        "TASKFLOW_TASK_API_DATABASE_URL": tasks_db,
        "TASKFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TASKFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TASKFLOW_KAFKA_SASL_USERNAME": "taskflow-task-api",
        "TASKFLOW_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "TASKFLOW_KAFKA_EXTRA": '{"debug": "security,broker"}',
    }
    notify_env = base_env(broker) | {
        "TASKFLOW_NOTIFY_DATABASE_URL": notify_db,
        "TASKFLOW_NOTIFY_SMTP_USERNAME": "mailer",
        "TASKFLOW_NOTIFY_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    task_log, notify_log = tmp_path / "task-api.log", tmp_path / "notify.log"
    task_url, notify_url = f"http://127.0.0.1:{task_port}", f"http://127.0.0.1:{notify_port}"

    with (
        service(["serve", "task-api", "--port", str(task_port)], task_env, task_log,
                f"{task_url}/healthz"),
        service(["serve", "notify", "--port", str(notify_port)], notify_env, notify_log,
                f"{notify_url}/healthz"),
    ):  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as http:
            for name, token in tokens.items():
                auth = {"Authorization": f"Bearer {token}"}
                created = await http.post(f"{task_url}/api/v1/tasks", json={"title": "t"},
                                          headers=auth)  # fmt: skip
                assert created.status_code == (201 if name == "good" else 401), name
                listed = await http.get(f"{notify_url}/api/v1/notifications", headers=auth)
                assert listed.status_code == (200 if name == "good" else 401), name
            await http.post(f"{task_url}/api/v1/tasks", content=b"{bad json",
                            headers={"Authorization": f"Bearer {good}"})  # fmt: skip
            await http.get(f"{task_url}/readyz")  # Kafka (SASL) fails: logged, not leaked
            await http.get(f"{notify_url}/readyz")
        for name in ("good", "garbage"):
            url = f"ws://127.0.0.1:{notify_port}/ws?token={tokens[name]}"
            async with websockets.connect(url) as ws:
                with pytest.raises(ConnectionClosed):
                    if name == "good":
                        await ws.recv()
                        await ws.send("x" * 200_000)  # too big: closed by the server
                    while True:
                        await ws.recv()

    logs = {"task-api": task_log.read_text(errors="replace"),
            "notify": notify_log.read_text(errors="replace")}  # fmt: skip
    assert '"level": "DEBUG"' in logs["task-api"] or '"level":"DEBUG"' in logs["task-api"]
    assert "sasl" in logs["task-api"].lower()  # librdkafka did talk about the SASL login
    for service_name, text in logs.items():
        for what, value in {**SECRETS, **{f"{k} token": v for k, v in tokens.items()}}.items():
            assert value not in text, f"the {what} appears in the {service_name} log"
        assert "Bearer " not in text, f"an Authorization header is in the {service_name} log"
