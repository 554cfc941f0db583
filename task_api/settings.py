"""Typed settings of the task service (`TASKFLOW_TASK_API_*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from tortoise.backends.base.config_generator import expand_db_url

from events.kafka import KafkaSettings
from events.secrets import SecretFilesMixin
from runtime.database import tortoise_url
from webapi.auth import AuthSettings
from webapi.hardening import WebSecuritySettings

MIB = 1024 * 1024


class TaskApiSettings(SecretFilesMixin, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKFLOW_TASK_API_", extra="ignore")

    # May carry a password: kept out of repr(), and settable as ..._DATABASE_URL_FILE.
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/taskflow_tasks", repr=False)
    host: str = "127.0.0.1"
    port: int = 8001
    # Hypercorn worker processes; each runs the API and a relay.
    workers: int = 1
    db_pool_size: int = 20
    source: str = "/taskflow/task-service"
    max_body_bytes: int = MIB
    # Origins a browser may call the API from (JSON list): the console on port 8002.
    cors_origins: list[str] = ["http://127.0.0.1:8002", "http://localhost:8002"]
    # The relay runs inside the API process unless it is deployed on its own.
    run_relay: bool = True
    relay_batch_size: int = 500
    # The relay produces a committed change's event at once, from what the write recorded,
    # instead of claiming it back from the table (docs/performance.md, "Hand-off").
    relay_hand_off: bool = True
    # Commits wake the relay (in process, or by NOTIFY): the poll is only a safety net.
    relay_poll_interval: timedelta = timedelta(seconds=5)
    relay_max_backoff: timedelta = timedelta(seconds=5)
    # A publish attempt that gets no delivery report at all within this is abandoned.
    relay_delivery_timeout: timedelta = timedelta(seconds=60)
    # Liveness: the relay loop may be silent this long (a poll wait, or one publish attempt
    # plus a backoff, or a database reconnect) before /healthz names it stuck.
    relay_max_silence: timedelta = timedelta(seconds=90)
    outbox_retention: timedelta = timedelta(days=7)
    idempotency_ttl: timedelta = timedelta(hours=24)
    prune_interval: timedelta = timedelta(minutes=10)
    # After a local broker reset, events published this recently are sent again.
    broker_reset_replay: timedelta = timedelta(hours=1)

    def tortoise_config(self) -> dict[str, Any]:
        return tortoise_config(self.database_url, self.db_pool_size)

    @model_validator(mode="after")
    def _silence_covers_the_relay_waits(self) -> TaskApiSettings:
        longest = max(self.relay_poll_interval, self.relay_delivery_timeout)
        if self.relay_max_silence <= longest + self.relay_max_backoff:
            raise ValueError(
                "TASKFLOW_TASK_API_RELAY_MAX_SILENCE must exceed the relay's longest wait "
                f"({longest + self.relay_max_backoff}: poll interval or delivery timeout, "
                "plus the backoff), or liveness would restart a healthy relay"
            )
        return self


async def _keep_session(connection: object) -> None:
    """Pool release hook that skips asyncpg's reset query (a round trip per request).

    Safe here: request connections hold no advisory locks, cursors, LISTENs or SET state.
    """


def tortoise_config(database_url: str, pool_size: int = 20) -> dict[str, Any]:
    """Tortoise configuration for the task database, with its migrations package."""
    credentials = expand_db_url(tortoise_url(database_url))
    credentials["credentials"] |= {"minsize": 1, "maxsize": pool_size, "reset": _keep_session}
    return {
        "connections": {"default": credentials},
        "apps": {
            "tasks": {
                "models": ["task_api.db.models"],
                "default_connection": "default",
                "migrations": "task_api.db.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


@dataclass(frozen=True)
class Config:
    """Everything the task service reads from the environment."""

    service: TaskApiSettings = field(default_factory=TaskApiSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    security: WebSecuritySettings = field(default_factory=WebSecuritySettings)
