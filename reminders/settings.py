"""`TASKFLOW_REMINDERS_*` settings of the reminder service and its dataflow."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.secrets import SecretFilesMixin
from reminders.domain.catchup import CatchUpPolicy

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/taskflow_reminders"


class ReminderSettings(SecretFilesMixin, BaseSettings):
    """Read API, read model and dataflow settings; durations are ISO 8601 or seconds."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_REMINDERS_", extra="ignore")

    # May carry a password: kept out of repr(), and settable as ..._DATABASE_URL_FILE.
    database_url: str = Field(DEFAULT_DATABASE_URL, repr=False)
    host: str = "127.0.0.1"
    port: int = 8004
    # The dataflow serves Prometheus metrics on its own port (0: none).
    flow_metrics_port: int = 0
    flow_metrics_host: str = "127.0.0.1"
    # Liveness of the flow process: a source partition not polled for this long (its
    # worker stuck in a step or a sink) fails the metrics port's /healthz.
    flow_max_silence: timedelta = timedelta(minutes=2)
    # Digest window: reminders of one user firing within this time after a delivered one
    # are held and sent as one `reminder.digest` when it ends.
    digest_window: timedelta = timedelta(seconds=60)
    # For this long after the flow starts, reminders of a user with no saved window go
    # out one by one instead of opening a window (see pipelines/reminders/logic.py: a
    # window opened before Bytewax loads the saved state would be dropped by the load).
    digest_startup: timedelta = timedelta(seconds=30)
    # Catch-up: fire late within the grace period, else fold into a "missed" digest;
    # older than max age: drop (counted). Per-kind grace as JSON: {"due": "PT30M"}.
    catchup_grace: timedelta = timedelta(minutes=5)
    catchup_grace_by_kind: dict[str, timedelta] = Field(default_factory=dict)
    catchup_max_age: timedelta | None = timedelta(days=7)
    # Also remind at the due time itself (kind "due"), besides the task's own rules.
    remind_at_due: bool = True
    # A task with nothing armed is forgotten after this long (bounds dataflow memory).
    idle_state_ttl: timedelta = timedelta(days=1)
    # Dataflow Kafka tuning. The source has a consumer per partition, each fetching every
    # this many ms even when idle (Tansu answers an empty fetch only at its timeout): at 10 ms the
    # six of them cost the local broker ~0.1 core doing nothing. Timers do not wait on it:
    # only a task changed less than this before its reminder is due can fire late.
    # (On the `kafka` broker profile the wait is long and costs nothing: see KafkaSettings.)
    fetch_wait_max_ms: int = 250
    source_batch_size: int = 1000
    source_prefetch_kib: int = 4096  # per partition consumer
    # The source polls at most this often (while not catching up), so task events reach
    # the timers in a few larger batches rather than many tiny ones; see `timer_tick`.
    source_poll_interval: timedelta = timedelta(milliseconds=50)
    # Once no task event has come for a second the source waits in librdkafka up to this
    # long instead of letting Bytewax wake every millisecond (pipelines/paced_source.py).
    # Timers wait for it too: it adds at most this much to a reminder's lateness while
    # the flow is quiet. 0 turns it off.
    source_idle_wait: timedelta = timedelta(milliseconds=50)
    # On Tansu, a quiet source's partition stops fetching and asks its end this often
    # instead (events/quiet.py): a task changed after a quiet spell reaches its timer up to
    # this much later (a reminder due sooner than that after the change fires late). 0
    # keeps fetching.
    source_idle_check: timedelta = timedelta(milliseconds=500)
    # After a restart from recovery the source stays silent this long, so the saved timer
    # and digest state is loaded before new task events touch it (PacedKafkaSource). Must
    # exceed two snapshot intervals (the flow runs with `-s 1`).
    resume_hold: timedelta = timedelta(seconds=3)
    # Task timers are grouped into this many Bytewax keys (see pipelines/reminders/shards.py).
    # Changing it needs a fresh recovery directory.
    timer_shards: int = Field(default=16384, ge=1)
    # Timer wake-ups are rounded up to this tick (adds at most this much lateness).
    timer_tick: timedelta = timedelta(milliseconds=50)
    # Rows of the fired/DLQ log are kept this long (metrics counters are kept forever).
    log_retention: timedelta = timedelta(days=7)

    def catchup_policy(self) -> CatchUpPolicy:
        return CatchUpPolicy(
            grace=self.catchup_grace,
            grace_by_kind=dict(self.catchup_grace_by_kind),
            max_age=self.catchup_max_age,
        )
