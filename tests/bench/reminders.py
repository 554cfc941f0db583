"""Reminder dataflow benchmark: timer lateness under load, memory, recovery size, restart.

Workload: `--pending` tasks (one user each, so none is held for a digest) with due dates
spread over `--spread` seconds starting after a lead time, loaded into `taskflow.tasks`;
then the real flow command (`python -m bytewax.run pipelines.reminders:flow -r DIR -s 1
-b 0`) runs against a local Tansu broker and PostgreSQL while `--rate` task updates/s of
other tasks keep flowing for `--measure` seconds. Lateness is end to end: when the
reminder is read from `taskflow.reminders` minus its `remind_at`. Then the flow is killed
with SIGKILL and restarted; "restart_on_time_s" is how long until reminders are on time
(<= 250 ms late) again. Prints progress to stderr and one JSON line to stdout.

    .venv/bin/python -m tests.bench.reminders --pending 100000 --rate 1000 --measure 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from events.codec import Envelope, decode, encode
from events.kafka import KafkaSettings
from events.payloads import TaskCreated, TaskReminder, TaskUpdated
from reminders.db.migrate import migrate_url
from tests.bench._harness import local_broker, percentile, postgres_admin_url, scratch_database

ON_TIME = 0.25


def progress(message: str) -> None:
    print(f"[bench reminders] {message}", file=sys.stderr, flush=True)


def event(cls: Any, task_id: uuid.UUID, user: str, version: int, due: datetime) -> bytes:
    now = datetime.now(UTC)
    extra = {"changed": ("due_at",)} if cls is TaskUpdated else {}
    payload = cls(
        id=task_id,
        user_id=user,
        title="bench",
        due_at=due,
        created_at=now,
        updated_at=now,
        version=version,
        **extra,
    )
    return encode(Envelope(data=payload, source="/bench", subject=str(task_id), user_id=user))


def produce_pending(kafka: KafkaSettings, count: int, first: datetime, spread: float) -> None:
    producer = Producer(kafka.producer(**{"linger.ms": 20, "batch.num.messages": 10000}))
    step = spread / max(count, 1)
    for i in range(count):
        task = uuid.UUID(int=i + 1)
        due = first + timedelta(seconds=i * step)
        value = event(TaskCreated, task, f"user-{i}", 1, due)
        while True:
            try:
                producer.produce(kafka.topics.tasks, value, key=str(task).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 50000 == 0:
            progress(f"produced {i}/{count} pending tasks")
    producer.flush(60)


class Noise(threading.Thread):
    """Task updates at a fixed rate for tasks whose reminders are far away (never fire)."""

    def __init__(self, kafka: KafkaSettings, rate: int, tasks: int = 5000) -> None:
        super().__init__(daemon=True)
        self.kafka, self.rate, self.tasks = kafka, rate, tasks
        self.stop = threading.Event()
        self.sent = 0
        self.last: tuple[uuid.UUID, datetime] | None = None

    def run(self) -> None:
        producer = Producer(self.kafka.producer())
        start = time.monotonic()
        far = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        while not self.stop.is_set() and self.rate > 0:
            target = int((time.monotonic() - start) * self.rate)
            while self.sent < target:
                i = self.sent
                task = uuid.UUID(int=10**9 + i % self.tasks)
                due = far + timedelta(seconds=i)
                value = event(TaskUpdated, task, f"noise-{i % self.tasks}", i + 1, due)
                producer.produce(self.kafka.topics.tasks, value, key=str(task).encode())
                self.last = (task, due)
                self.sent += 1
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(30)


class Reader(threading.Thread):
    """Records (received_at, remind_at, fired_at) of every reminder on the output topic."""

    def __init__(self, kafka: KafkaSettings) -> None:
        super().__init__(daemon=True)
        self.kafka = kafka
        self.stop = threading.Event()
        self.seen: list[tuple[datetime, datetime, datetime]] = []

    def run(self) -> None:
        consumer = Consumer(self.kafka.consumer(f"bench-{uuid.uuid4().hex}"))
        topic = self.kafka.topics.reminders
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while not self.stop.is_set():
            for msg in consumer.consume(1000, 0.05):
                if msg.error():
                    continue
                received = datetime.now(UTC)
                data = decode(msg.value()).data
                if isinstance(data, TaskReminder):
                    self.seen.append((received, data.remind_at, data.fired_at))
        consumer.close()


class Flow:
    def __init__(self, env: dict[str, str], recovery: Path) -> None:
        self.env, self.recovery = env, recovery
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "bytewax.run", "pipelines.reminders:flow"]
        cmd += ["-r", str(self.recovery), "-s", "1", "-b", "0"]
        with open(self.recovery.parent / "flow.log", "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own flow
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def sample(self) -> int:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = (self.recovery.parent / "flow.log").read_text()[-3000:]
            raise RuntimeError(f"flow exited with {self.process.returncode}:\n{tail}")
        rss = int(psutil.Process(self.process.pid).memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def kill9(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait(10)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def wait_rows(db_url: str, expected: int, flow: Flow, timeout: float) -> float:
    """Seconds until the read model holds `expected` reminders."""
    start = time.monotonic()
    conn = await asyncpg.connect(db_url)
    try:
        while (n := await conn.fetchval("SELECT count(*) FROM scheduled_reminder")) < expected:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"read model has {n}/{expected} after {timeout}s")
            rss = flow.sample()
            progress(f"ingested {n}/{expected} (rss {rss / 2**20:.0f} MiB)")
            await asyncio.sleep(2)
    finally:
        await conn.close()
    return time.monotonic() - start


async def wait_task(db_url: str, task: uuid.UUID, due: datetime, timeout: float) -> float:
    start = time.monotonic()
    conn = await asyncpg.connect(db_url)
    try:
        while not await conn.fetchval(
            "SELECT 1 FROM scheduled_reminder WHERE task_id = $1 AND due_at = $2", task, due
        ):
            if time.monotonic() - start > timeout:
                raise TimeoutError("last noise event not applied")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return time.monotonic() - start


def lateness_ms(rows: list[tuple[datetime, datetime, datetime]]) -> dict[str, float]:
    late = [(received - remind).total_seconds() * 1000 for received, remind, _ in rows]
    fired = [(f - remind).total_seconds() * 1000 for _, remind, f in rows]
    return {
        "p50": round(percentile(late, 0.5), 1),
        "p99": round(percentile(late, 0.99), 1),
        "max": round(max(late, default=float("nan")), 1),
        "flow_p99": round(percentile(fired, 0.99), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with (
        postgres_admin_url() as admin,
        scratch_database(admin, "reminders") as db_url,
        local_broker(partitions=args.partitions) as (_, kafka),
        tempfile.TemporaryDirectory(prefix="bench-reminders-") as tmp,
    ):
        recovery = Path(tmp) / "recovery"
        recovery.mkdir()
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True
        )
        env = {
            **os.environ,
            "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TASKFLOW_REMINDERS_DATABASE_URL": db_url,
        }
        lead = args.lead if args.lead is not None else 30 + args.pending / 2500
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
        t0 = time.monotonic()
        produce_pending(kafka, args.pending, first, args.spread)
        progress(f"produced {args.pending} in {time.monotonic() - t0:.1f}s; starting flow")

        asyncio.run(migrate_url(db_url))
        flow = Flow(env, recovery)
        reader = Reader(kafka)
        reader.start()
        flow.start()
        try:
            return measure(args, flow, reader, kafka, db_url, recovery, first, lead)
        finally:
            flow.kill9()


def measure(
    args: argparse.Namespace,
    flow: Flow,
    reader: Reader,
    kafka: KafkaSettings,
    db_url: str,
    recovery: Path,
    first: datetime,
    lead: float,
) -> dict[str, Any]:
    ingest_s = asyncio.run(wait_rows(db_url, args.pending, flow, timeout=lead * 4))
    progress(f"ingested {args.pending} in {ingest_s:.1f}s")
    if datetime.now(UTC) > first:
        progress("WARNING: ingest overran the lead time; early reminders fire late")

    noise = Noise(kafka, args.rate)
    while datetime.now(UTC) < first:
        flow.sample()
        time.sleep(0.2)
    measure_start = datetime.now(UTC)
    cpu_start, wall_start, load_start = flow.cpu_seconds(), time.monotonic(), os.getloadavg()[0]
    noise.start()
    end = time.monotonic() + args.measure
    while time.monotonic() < end:
        flow.sample()
        time.sleep(0.5)
    cpu_util = (flow.cpu_seconds() - cpu_start) / (time.monotonic() - wall_start)
    load = (load_start + os.getloadavg()[0]) / 2
    noise.stop.set()
    noise.join()
    measure_end = datetime.now(UTC)
    processed_s = args.measure
    if noise.last is not None:
        asyncio.run(wait_task(db_url, *noise.last, timeout=120))
        processed_s = (datetime.now(UTC) - measure_start).total_seconds()
    rows = [r for r in reader.seen if measure_start <= r[1] < measure_end]
    progress(f"measured {len(rows)} reminders; killing the flow (SIGKILL) and restarting")
    rss_measured = flow.sample()
    recovery_bytes = dir_size(recovery)

    flow.kill9()
    restart_at = datetime.now(UTC)
    flow.start()
    on_time_at = None
    deadline = time.monotonic() + 120
    while on_time_at is None and time.monotonic() < deadline:
        time.sleep(0.2)
        after = sorted((r for r in reader.seen if r[1] >= restart_at), key=lambda r: r[1])
        # Back on time: a reminder due after the restart that arrived within 250 ms,
        # with every later one so far on time too.
        for i, (received, _remind, _) in enumerate(after):
            if all((rc - rm).total_seconds() <= ON_TIME for rc, rm, _ in after[i:]) and (
                len(after) - i >= 20
            ):
                on_time_at = received
                break
    reader.stop.set()
    after_restart = [r for r in reader.seen if r[1] >= restart_at]
    return {
        "bench": "reminders",
        "pending": args.pending,
        "noise_rate_target": args.rate,
        "produce_events": noise.sent,
        "events_per_s": round((noise.sent) / processed_s, 1),
        "ingest_s": round(ingest_s, 1),
        "ingest_events_per_s": round(args.pending / ingest_s, 1),
        "reminders_measured": len(rows),
        "lateness_ms": lateness_ms(rows),
        "flow_cpu_util": round(cpu_util, 2),
        "machine_load_avg": round(load, 1),
        "cpus": os.cpu_count(),
        "rss_mib": round(rss_measured / 2**20, 1),
        "peak_rss_mib": round(flow.peak_rss / 2**20, 1),
        "recovery_bytes": recovery_bytes,
        "restart_on_time_s": (
            round((on_time_at - restart_at).total_seconds(), 2) if on_time_at else None
        ),
        "restart_lateness_ms": lateness_ms(after_restart),
    }


def main() -> None:
    # Run the cleanups (flow, broker, scratch database) on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="task updates/s during measure")
    parser.add_argument("--spread", type=float, default=600.0, help="due dates over N seconds")
    parser.add_argument("--measure", type=float, default=60.0)
    parser.add_argument("--lead", type=float, default=None, help="seconds before first due")
    parser.add_argument("--partitions", type=int, default=6)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
