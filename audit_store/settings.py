"""Typed settings of the audit service and the audit dataflow (`TASKFLOW_AUDIT_*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audit_store.crypto import Keyring, kek_bytes
from events.secrets import SecretFilesMixin

DEFAULT_DIGEST_KEY = "taskflow-local-audit-digest-key-change-me"  # noqa: S105 - refused outside local
# The local key-encryption key of personal fields (refused outside local mode).
DEFAULT_KEK = "7461736b666c6f772d6c6f63616c2d6b656b2d6368616e67652d6d652d303031"

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

    # Crypto-shredding: the key-encryption key (32 bytes as 64 hex chars) that wraps each
    # user's data key, its id (stored with every wrapped key), and rotated-out KEKs by id
    # (JSON), kept only to unwrap keys not yet re-wrapped (`taskflow audit rewrap-keys`).
    kek: SecretStr = SecretStr(DEFAULT_KEK)
    kek_id: str = "kek1"
    kek_retired: dict[str, SecretStr] = Field(default_factory=dict, repr=False)

    # Retention: days to keep per type or prefix ("notification."); null = forever.
    retention_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RETENTION))
    retention_default_days: int | None = None
    purge_interval: timedelta = timedelta(hours=1)
    purge_batch: int = 5000

    verify_interval: timedelta = timedelta(minutes=15)
    # Liveness: the longest one run of a scheduled job (digests, purge, verify) may take;
    # a job silent for its interval plus this is named stuck by /healthz.
    job_max_runtime: timedelta = timedelta(minutes=30)

    # Dataflow: sink batching and the flow's own Prometheus port (0 = off).
    flow_metrics_port: int = 0
    flow_metrics_host: str = "127.0.0.1"
    # One CONSUMER span per message, child of its producer span (parent from the Kafka
    # headers), opened while decoding. Off (a few µs/message cheaper), only each batch
    # write span links to the producers.
    flow_message_spans: bool = True
    flow_batch_size: int = 1000
    # The flow has a consumer per partition (Bytewax), each fetching every this many ms
    # even when idle (Tansu answers an empty fetch only at its timeout): the audit is not on the
    # user's path, so a longer wait saves the broker's CPU (see tests/bench/e2e.py).
    flow_fetch_wait_ms: int = 250
    # Between two empty polls of a partition the flow waits this long instead of asking
    # librdkafka's queue in a tight loop (Bytewax's KafkaSource polls with a 1 ms timeout).
    flow_poll_interval: timedelta = timedelta(milliseconds=50)
    # Once the flow has had no event for a second its partitions wait in librdkafka up to
    # this long between them instead of letting Bytewax wake every millisecond (idle cost
    # 0.03 core → ~0.003; see pipelines/paced_source.py). 0 turns it off.
    flow_idle_wait: timedelta = timedelta(milliseconds=100)
    # On Tansu, a partition waiting so stops fetching and asks its end this often instead
    # (events/quiet.py: one cheap request in place of ~2 empty fetches): the first event
    # after a quiet spell is audited up to this much later. 0 keeps fetching.
    flow_idle_check: timedelta = timedelta(milliseconds=500)
    # Per-partition prefetch (librdkafka's default is 64 MiB a partition).
    flow_prefetch_kib: int = 8192
    flow_tail: bool = True
    flow_name: str = "audit"
    # Liveness of the flow process: a source partition not polled for this long (its
    # worker stuck in a step or a sink) fails the metrics port's /healthz.
    flow_max_silence: timedelta = timedelta(minutes=2)

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
        self._check_kek()
        if self.digest_algorithm == "ed25519":
            try:
                seed = bytes.fromhex(key)
            except ValueError:
                seed = b""
            if len(seed) != 32:
                raise ValueError("an ed25519 TASKFLOW_AUDIT_DIGEST_KEY is a 64-char hex seed")
        return self

    def _check_kek(self) -> None:
        kek = self.kek.get_secret_value()
        if self.env != "local" and kek == DEFAULT_KEK:
            raise ValueError("TASKFLOW_AUDIT_KEK must be set outside local mode")
        for name, value in (("TASKFLOW_AUDIT_KEK", kek),) + tuple(
            (f"TASKFLOW_AUDIT_KEK_RETIRED[{k}]", v.get_secret_value())
            for k, v in self.kek_retired.items()
        ):
            try:
                kek_bytes(value)
            except ValueError:
                raise ValueError(f"{name} must be 32 bytes written as 64 hex characters") from None
        if self.kek_id in self.kek_retired:
            raise ValueError(
                f"TASKFLOW_AUDIT_KEK_ID {self.kek_id!r} is also a retired KEK id:"
                " a rotated KEK needs a new id"
            )

    def keyring(self) -> Keyring:
        """The KEKs: the current one wraps new data keys, retired ones only unwrap."""
        keks = {k: kek_bytes(v.get_secret_value()) for k, v in self.kek_retired.items()}
        keks[self.kek_id] = kek_bytes(self.kek.get_secret_value())
        return Keyring(self.kek_id, keks)
