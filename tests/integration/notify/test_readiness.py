"""Ready means ready: `/readyz` answers 200 only once the worker's group has assigned it
its partitions and the hub feed holds the notification topic's partitions."""

from __future__ import annotations

import websockets

from events.kafka import KafkaSettings
from notify_ws.app import service_of
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    eventually,
    make_settings,
    running,
    task_created,
)
from tests.integration.notify.wsutil import next_frame, notifications


async def test_readyz_waits_for_the_worker_group_assignment(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    # Tansu holds a JoinGroup for about half the session timeout: a long one keeps the
    # worker without partitions for seconds after the server answers /healthz.
    settings = make_settings(notify_db, smtp.port, worker_session_timeout_ms=12000)
    async with running(settings, kafka_settings) as svc:
        service = service_of(svc.app)
        assert service.worker is not None and service.feed is not None
        first = await svc.http.get("/readyz")
        if not service.worker.assigned.is_set():  # the join is still held by the broker
            assert first.status_code == 503
            assert "worker group assignment" in first.text

        async def ready() -> bool:
            response = await svc.http.get("/readyz")
            # Never ready before the assignment; ready after it.
            assert response.status_code == 503 or service.worker.assigned.is_set()  # type: ignore[union-attr]
            return response.status_code == 200

        await eventually(ready, timeout=30)
        assert service.feed.ready.is_set()
        body = (await svc.http.get("/readyz")).json()
        assert body["checks"]["partitions"] == "ok"
        # Ready, so the first change reaches its socket.
        async with websockets.connect(svc.ws_url("hana")) as ws:
            await next_frame(ws, "unread_count")
            await kafka.produce(task_created("hana"), "hana")
            assert (await notifications(ws, 1))[0]["seq"] == 1


async def test_a_hub_only_process_is_ready_without_a_worker(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    settings = make_settings(notify_db, smtp.port, run_worker=False, run_dispatcher=False)
    async with running(settings, kafka_settings) as svc:

        async def ready() -> bool:
            return (await svc.http.get("/readyz")).status_code == 200

        await eventually(ready)
