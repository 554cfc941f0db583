"""Typed settings of the audit service and the audit dataflow (`TASKFLOW_AUDIT_*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.secrets import SecretFilesMixin

DEFAULT_DIGEST_KEY = "taskflow-local-audit-digest-key-change-me"  # noqa: S105 - refused outside local

# Days to keep per event type ("x." is a prefix); types not listed use `retention_default_days`.
DEFAULT_RETENTION = {
    "task.snapshot": 30,
    "notification.": 90,
    "reminder.": 180,
    "task.reminder": 180,
    "task.": 365 * 7,
    "audit.": 365 * 10,
}


class AuditSettings(SecretFilesMixin, BaseSettings):
    """`TASKFLOW_AUDIT_*` environment variables (plus `TASKFLOW_ENV`)."""

    model_config = SettingsConfigDict(
        env_prefix="TASKFLOW_AUDIT_", extra="ignore", populate_by_name=True
    )

    env: Literal["local", "production"] = Field(
        "local", validation_alias=AliasChoices("TASKFLOW_ENV", "TASKFLOW_AUDIT_ENV")
    )
    # May carry a password: kept out of repr(), and settable as ..._DATABASE_URL_FILE.
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/taskflow_audit", repr=False)
    host: str = "127.0.0.1"
    port: int = 8003
    pool_size: int = 5

    # Signed digests over chain ranges (CloudTrail-style digest chain).
    digest_algorithm: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    # HMAC: the secret itself. Ed25519: the 32-byte private seed as hex (64 chars).
    digest_key: SecretStr = SecretStr(DEFAULT_DIGEST_KEY)
    digest_key_id: str = "k1"
    # Keys rotated out (key id -> key, as JSON): they only check older digests. Rotating:
    # move the old key here under its id, then set a new key and a new key id.
    digest_retired_keys: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    digest_interval: timedelta = timedelta(minutes=5)

    # Retention: days to keep per type or prefix ("notification."); null = forever.
    retention_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RETENTION))
    retention_default_days: int | None = None
    purge_interval: timedelta = timedelta(hours=1)
    purge_batch: int = 5000

    verify_interval: timedelta = timedelta(minutes=15)

    # Dataflow: sink batching and the flow's own Prometheus port (0 = off).
    flow_metrics_port: int = 0
    flow_metrics_host: str = "127.0.0.1"
    # One CONSUMER span per message, child of its producer span (parent from the Kafka
    # headers), opened while decoding. Off (a few µs/message cheaper), only each batch
    # write span links to the producers.
    flow_message_spans: bool = True
    flow_batch_size: int = 1000
    # The flow has a consumer per partition (Bytewax), each fetching every this many ms
    # even when idle (Tansu answers a fetch only at its timeout): the audit is not on the
    # user's path, so a longer wait saves the broker's CPU (see tests/bench/e2e.py).
    flow_fetch_wait_ms: int = 250
    # Between two empty polls of a partition the flow waits this long instead of asking
    # librdkafka's queue in a tight loop (Bytewax's KafkaSource polls with a 1 ms timeout).
    flow_poll_interval: timedelta = timedelta(milliseconds=50)
    # Per-partition prefetch (librdkafka's default is 64 MiB a partition).
    flow_prefetch_kib: int = 8192
    flow_tail: bool = True
    flow_name: str = "audit"

    @model_validator(mode="after")
    def _refuse_default_key_outside_local(self) -> AuditSettings:
        key = self.digest_key.get_secret_value()
        if self.env != "local" and (key == DEFAULT_DIGEST_KEY or len(key) < 32):
            raise ValueError("TASKFLOW_AUDIT_DIGEST_KEY must be set (32+ chars) outside local mode")
        if self.digest_key_id in self.digest_retired_keys:
            raise ValueError(
                f"TASKFLOW_AUDIT_DIGEST_KEY_ID {self.digest_key_id!r} is also a retired key id:"
                " a rotated key needs a new id"
            )
        if self.digest_algorithm == "ed25519":
            try:
                seed = bytes.fromhex(key)
            except ValueError:
                seed = b""
            if len(seed) != 32:
                raise ValueError("an ed25519 TASKFLOW_AUDIT_DIGEST_KEY is a 64-char hex seed")
        return self
