"""The reminder flow's graph: `build_flow(source, sink, store_sink)` for tests, and
`flow_from_env()`, the production flow from settings (no I/O until Bytewax builds it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink
from prometheus_client import REGISTRY

from events.kafka import KafkaSettings
from events.topics import Topics
from observability.metrics.messaging import MessagingMetrics
from pipelines.kafka_sink import DeliveredKafkaSink
from pipelines.paced_source import PacedKafkaSource
from pipelines.reminders.codec import (
    DeadLetter,
    SinkMessage,
    dead_letter_log,
    dead_letter_message,
    decode_message,
    delivery_log,
    delivery_message,
    resent_log,
)
from pipelines.reminders.erasure import (
    AckLogic,
    ErasureAck,
    ErasureDone,
    ErasureInput,
    GateLogic,
    ShardErasure,
    erased_user_op,
    erasure_message,
    gate_of,
    user_of,
)
from pipelines.reminders.logic import (
    DigestOut,
    FlowContext,
    TaskInput,
    TimerOutput,
    UserDigestLogic,
)
from pipelines.reminders.sent import (
    NOTHING_SENT,
    Outgoing,
    RecordingKafkaSink,
    Resend,
    SentIndex,
    recorded,
    resent,
    sent_index,
)
from pipelines.reminders.shards import TimerShardLogic, shard_of
from pipelines.reminders.store import ReadModelSink
from pipelines.reminders.trace import header_value
from reminders.domain.clock import Clock, system_clock
from reminders.domain.timers import Fired
from reminders.ports import LogEntry, ScheduleChange, StoreOp
from reminders.settings import ReminderSettings
from runtime.flow import FlowProcess


def build_flow(
    source: Source[Any],
    sink: Sink[Outgoing],
    store_sink: Sink[StoreOp],
    *,
    topics: Topics,
    settings: ReminderSettings | None = None,
    clock: Clock = system_clock,
    metrics: MessagingMetrics | None = None,
    sent: SentIndex = NOTHING_SENT,
) -> Dataflow:
    """The flow from a task-event source to a Kafka sink (reminders, DLQ) and the read model.

    `metrics` counts each task event read (`taskflow_events_consumed_total`); `sent` holds
    the reminders sent before this run (pipelines/reminders/sent.py)."""
    settings = settings or ReminderSettings()
    ctx = FlowContext(
        clock=clock,
        policy=settings.catchup_policy(),
        remind_at_due=settings.remind_at_due,
        idle_ttl=settings.idle_state_ttl,
        digest_window=settings.digest_window,
        tick=settings.timer_tick,
        hold_from=clock() + settings.digest_startup,
        sent=sent,
    )
    flow = Dataflow("reminders")
    raw = op.input("tasks_in", flow, source)
    decoded = op.filter_map("decode", raw, _counted(decode_message, topics.tasks, metrics))
    good: Stream[TaskInput | ErasureInput] = op.filter_map("task_events", decoded, _task_input)
    bad = op.filter_map("undecodable", decoded, _dead_letter)

    # Erasure (pipelines/reminders/erasure.py): the gate drops events of erased users and
    # lets each erasure through once; it is broadcast to every timer shard, and once all
    # shards acknowledged it, the user's digest window goes, then the applied event.
    gated = op.key_on("by_gate", good, lambda item: gate_of(user_of(item)))
    gate = op.stateful("erased_gate", gated, lambda state: GateLogic(state))
    passed = op.map("gate_values", gate, lambda key_value: key_value[1])
    tasks = op.filter_map("gated_tasks", passed, _task_only)
    erasures = op.filter_map("gated_erasures", passed, _erasure_only)

    shards = settings.timer_shards
    by_shard = op.key_on("by_shard", tasks, lambda item: shard_of(item.task_id, shards))
    to_shards = op.flat_map("erasure_to_shards", erasures, _broadcast(shards))
    timers_in: KeyedStream[TaskInput | ShardErasure] = op.merge("timer_inputs", by_shard, to_shards)
    timers = op.stateful("timers", timers_in, lambda state: TimerShardLogic(state, ctx))
    timer_out = op.map("timer_values", timers, lambda key_value: key_value[1])
    fired = op.filter_map("fired", timer_out, _fired)
    acks = op.key_on(
        "by_erasure", op.filter_map("acks", timer_out, _ack), lambda a: a.erasure.erasure_id
    )
    released = op.stateful("erasure_acks", acks, lambda state: AckLogic(state, shards))
    released_values = op.map("released_values", released, lambda key_value: key_value[1])

    to_digests: Stream[Fired | ErasureInput] = op.merge("digest_inputs", fired, released_values)
    by_user = op.key_on("by_user", to_digests, lambda item: item.user_id)
    windows = op.stateful("digests", by_user, lambda state: UserDigestLogic(state, ctx))
    deliveries = op.map("delivery_values", windows, lambda key_value: key_value[1])

    out = op.merge(
        "kafka_messages",
        op.map("encode", deliveries, lambda d: _encode(topics.reminders, d, clock())),
        op.map(
            "dead_letters", bad, lambda letter: Outgoing(dead_letter_message(topics.dlq, letter))
        ),
    )
    op.output("kafka_out", out, sink)

    store: Stream[StoreOp] = op.merge(
        "store_ops",
        op.filter_map("schedule", timer_out, _store_op),
        op.flat_map("delivery_log", deliveries, _delivery_ops),
        op.map("dlq_log", bad, dead_letter_log),
    )
    op.output("read_model", store, store_sink)
    return flow


# Typed splits (Bytewax's `branch` loses the item types).
def _task_input(item: object) -> TaskInput | ErasureInput | None:
    return item if isinstance(item, TaskInput | ErasureInput) else None


def _task_only(item: object) -> TaskInput | None:
    return item if isinstance(item, TaskInput) else None


def _erasure_only(item: object) -> ErasureInput | None:
    return item if isinstance(item, ErasureInput) else None


def _ack(item: object) -> ErasureAck | None:
    return item if isinstance(item, ErasureAck) else None


def _broadcast(shards: int) -> Callable[[ErasureInput], list[tuple[str, ShardErasure]]]:
    def to_every_shard(item: ErasureInput) -> list[tuple[str, ShardErasure]]:
        return [(str(k), ShardErasure(item, str(k))) for k in range(shards)]

    return to_every_shard


def _encode(topic: str, out: DigestOut, now: datetime) -> Outgoing:
    if isinstance(out, ErasureDone):
        return Outgoing(erasure_message(topic, out, now))
    if isinstance(out, Resend):
        return resent(out)
    return recorded(delivery_message(topic, out, now), out)


def _delivery_ops(out: DigestOut) -> list[StoreOp]:
    if isinstance(out, ErasureDone):
        return [erased_user_op(out)]
    if isinstance(out, Resend):
        return list(resent_log(out.sent))
    return list(delivery_log(out))


def _dead_letter(item: object) -> DeadLetter | None:
    return item if isinstance(item, DeadLetter) else None


def _fired(item: TimerOutput | ErasureAck) -> Fired | None:
    return item if isinstance(item, Fired) else None


def _store_op(item: TimerOutput | ErasureAck) -> StoreOp | None:
    return item if isinstance(item, ScheduleChange | LogEntry) else None


# GC thresholds for a process holding ~10^5-10^6 armed tasks. Full (gen 2) collections
# over 100k armed tasks paused the worker for up to 0.8 s and were the p99 timer lateness
# (default 700/10/10; 50_000/20/100 still gave 0.4 s gen-0/1 pauses). These keep young
# collections small and full ones rare.
GC_THRESHOLDS = (5_000, 20, 1_000)
SERVICE_NAME = "taskflow-reminder-flow"


def flow_process(settings: ReminderSettings) -> FlowProcess:
    """What `runtime.flow` sets up for this process: logs, traces, GC, the metrics port."""
    return FlowProcess(
        SERVICE_NAME,
        metrics_port=settings.flow_metrics_port,
        metrics_host=settings.flow_metrics_host,
        max_silence=settings.flow_max_silence,
        gc_thresholds=GC_THRESHOLDS,
    )


def flow_from_env(settings: ReminderSettings | None = None) -> Dataflow:
    """The production flow from `TASKFLOW_KAFKA_*` and `TASKFLOW_REMINDERS_*` (no I/O yet)."""
    settings = settings or ReminderSettings()
    kafka = KafkaSettings()
    common = kafka.common()
    brokers = common.pop("bootstrap.servers").split(",")
    source = PacedKafkaSource(
        settings.source_poll_interval,
        brokers,
        [kafka.topics.tasks],
        tail=True,
        add_config={
            **common,
            "fetch.wait.max.ms": str(kafka.fetch_wait_ms(settings.fetch_wait_max_ms)),
            # One consumer per partition, each prefetching up to 64 MiB by default: while
            # catching up that buffer, not the timers, dominated the flow's memory.
            "queued.max.messages.kbytes": str(settings.source_prefetch_kib),
            "queued.min.messages": "2000",
        },
        batch_size=settings.source_batch_size,
        raise_on_errors=False,
        resume_hold=settings.resume_hold,
        idle_wait=settings.source_idle_wait,
        idle_check=kafka.quiet_check(settings.source_idle_check),
    )
    metrics = MessagingMetrics(REGISTRY)  # the flow process's registry (runtime.flow)

    def delivered(topic: str, msg: SinkMessage) -> None:
        ce_type = header_value(msg.headers, "ce_type")
        metrics.event_produced(topic, ce_type or "unknown")

    # linger 0: the sink flushes every batch anyway (it must, for at-least-once).
    produce = DeliveredKafkaSink(kafka.producer(**{"linger.ms": 0}), on_delivered=delivered)
    sink = RecordingKafkaSink(produce, settings.database_url)
    store = ReadModelSink(settings.database_url, settings.log_retention)
    return build_flow(
        source,
        sink,
        store,
        topics=kafka.topics,
        settings=settings,
        metrics=metrics,
        sent=sent_index(settings.database_url),
    )


def _counted(
    decode: Callable[[Any], TaskInput | ErasureInput | DeadLetter | None],
    topic: str,
    metrics: MessagingMetrics | None,
) -> Callable[[Any], TaskInput | ErasureInput | DeadLetter | None]:
    if metrics is None:
        return decode

    def decode_and_count(msg: Any) -> TaskInput | ErasureInput | DeadLetter | None:
        item = decode(msg)
        if isinstance(item, TaskInput | ErasureInput):
            metrics.event_consumed(topic, item.event_type)
        return item

    return decode_and_count
