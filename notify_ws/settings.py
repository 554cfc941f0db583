"""Typed settings of the notification service (`TASKFLOW_NOTIFY_*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.kafka import KafkaSettings
from events.secrets import SecretFilesMixin
from runtime.servers import UvicornWs
from webapi.auth import AuthSettings
from webapi.hardening import WebSecuritySettings

DEFAULT_WEBHOOK_SECRET = "taskflow-local-webhook-secret-change-me"  # noqa: S105 - local only
WORKER_GROUP = "notify-worker"


class NotifySettings(SecretFilesMixin, BaseSettings):
    """Everything under `TASKFLOW_NOTIFY_`; durations accept ISO 8601 or seconds."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_NOTIFY_", extra="ignore")

    env: Literal["local", "production"] = "local"
    # May carry a password: kept out of repr(), and settable as ..._DATABASE_URL_FILE.
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/taskflow_notify", repr=False)
    host: str = "127.0.0.1"
    port: int = 8002
    db_pool_size: int = 10
    source: str = "/taskflow/notify-service"
    max_body_bytes: int = 1024 * 1024

    # Which parts run in this process (`taskflow serve notify` runs all three).
    run_worker: bool = True
    run_hub: bool = True
    run_dispatcher: bool = True

    # Worker
    worker_group: str = WORKER_GROUP
    # Group timings; None keeps KafkaSettings' Tansu-safe defaults (tests go lower).
    worker_session_timeout_ms: int | None = None
    worker_batch_size: int = 500
    # A poll returns on the first message; this only sets how often an idle loop goes round.
    worker_poll_timeout: timedelta = timedelta(milliseconds=250)
    # The worker's Kafka wait on Tansu, which answers an empty fetch only when it runs out
    # and a message within about half of it (docs/performance.md): the worker is on the
    # user's path (POST → frame), so it is short; each fetch costs the broker ~0.5–1 ms of
    # CPU. (On the `kafka` profile the wait is long and free.)
    worker_fetch_wait_ms: int = 20
    # On Tansu, after this long without a message the worker stops fetching and instead
    # asks the partitions' ends every `worker_quiet_check` (one cheap request, no empty
    # fetch wait: events/quiet.py). The first change after a quiet spell waits up to one
    # check longer; steady traffic never pauses. 0 keeps fetching; on the `kafka` profile,
    # where an empty fetch is free, the worker never pauses.
    worker_quiet_after: timedelta = timedelta(seconds=1)
    worker_quiet_check: timedelta = timedelta(milliseconds=50)
    # Offsets are committed at most this often (and whenever the worker goes idle): each
    # commit is a broker round trip; a crash re-reads at most this much, which the per-event
    # dedupe absorbs (notify_ws/worker/offsets.py).
    worker_commit_interval: timedelta = timedelta(milliseconds=200)
    outbox_sweep_interval: timedelta = timedelta(seconds=2)
    outbox_grace: timedelta = timedelta(seconds=5)

    # Channel delivery
    dispatch_batch_size: int = 100
    dispatch_concurrency: int = 50
    # The longest the dispatcher sleeps; it wakes earlier for rows falling due and new ones.
    dispatch_poll_interval: timedelta = timedelta(seconds=5)
    dispatch_lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    retry_initial: timedelta = timedelta(milliseconds=200)
    retry_max: timedelta = timedelta(seconds=30)
    retry_jitter: timedelta = timedelta(milliseconds=100)
    breaker_threshold: int = 3
    breaker_reset: timedelta = timedelta(seconds=30)
    channel_timeout: timedelta = timedelta(seconds=10)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "TaskFlow <notifications@taskflow.local>"

    vapid_private_key: SecretStr | None = None
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:admin@taskflow.local"
    push_ttl: int = 86400

    webhook_secret: SecretStr = SecretStr(DEFAULT_WEBHOOK_SECRET)
    webhook_signature_header: str = "X-TaskFlow-Signature"
    # Webhook targets (SSRF): outside local mode only public addresses, plus these exact
    # host names and these networks (CIDR) for internal receivers; both JSON lists.
    webhook_allowed_hosts: list[str] = []
    webhook_allowed_networks: list[IPv4Network | IPv6Network] = []
    # How much of a receiver's answer is read before the connection is dropped.
    webhook_max_response_bytes: int = Field(64 * 1024, ge=0)

    # WebSocket hub
    ws_queue_size: int = 256
    # permessage-deflate keeps ~260 KiB of zlib state per socket: off unless asked for.
    ws_compression: bool = False
    ws_ping_interval: timedelta | None = timedelta(seconds=20)
    ws_close_timeout: timedelta = timedelta(seconds=2)
    # uvicorn's WebSocket protocol when `TASKFLOW_SERVER=uvicorn` (docs/adr/0009-asgi-server.md).
    uvicorn_ws: UvicornWs = "wsproto"
    # The cyclic GC's first threshold in this process (Python's default is 700). Every
    # frame allocates a few short-lived containers; with the default, collections took
    # ~16 % of the hub's CPU in a burst (py-spy). 0 keeps Python's default.
    gc_threshold: int = 20_000
    # The hub feed's Kafka wait on Tansu (which answers an empty fetch only when the wait
    # runs out, a message within about half of it, at ~0.5–1 ms of broker CPU per fetch; on
    # Kafka the wait is long and free either way).
    # A hub without a worker in its process gets every frame through Kafka: a short wait.
    hub_fetch_wait_ms: int = 10
    # With the worker in the process its notifications reach the hub directly (the fast
    # path); the feed then only carries other instances' notifications: a long wait
    # (docs/notifications.md has the measurement behind the value).
    hub_fetch_wait_fast_path_ms: int = 500
    lag_interval: timedelta = timedelta(seconds=5)

    # Liveness: how long a background loop (worker, hub feed, dispatcher, outbox sweep) may
    # go without a round before /healthz names it stuck. Generous: a round may wait out a
    # delivery timeout (15 s), a synchronous offset commit to a slow broker, or a database
    # retry; a Kafka outage must not get the pod restarted.
    loop_max_silence: timedelta = timedelta(minutes=2)

    @model_validator(mode="after")
    def _silence_covers_the_loops_waits(self) -> NotifySettings:
        waits = {
            "worker_poll_timeout": self.worker_poll_timeout,
            "dispatch_poll_interval": self.dispatch_poll_interval,
            "outbox_sweep_interval": self.outbox_sweep_interval,
        }
        name, longest = max(waits.items(), key=lambda item: item[1])
        if self.loop_max_silence <= 2 * longest:
            raise ValueError(
                f"TASKFLOW_NOTIFY_LOOP_MAX_SILENCE must exceed twice {name} ({longest}): "
                "a loop waits that long between rounds"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secret_outside_local(self) -> NotifySettings:
        secret = self.webhook_secret.get_secret_value()
        if self.env != "local" and (secret == DEFAULT_WEBHOOK_SECRET or len(secret) < 32):
            raise ValueError("TASKFLOW_NOTIFY_WEBHOOK_SECRET must be set (32+ chars) outside local")
        return self


@dataclass(frozen=True)
class Config:
    """Everything the notification service reads from the environment."""

    notify: NotifySettings = field(default_factory=NotifySettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    security: WebSecuritySettings = field(default_factory=WebSecuritySettings)

    @property
    def local(self) -> bool:
        """Local mode needs both `TASKFLOW_ENV` and `TASKFLOW_NOTIFY_ENV` to say so."""
        return self.auth.env == "local" and self.notify.env == "local"
