"""Benchmark: events/s from Kafka into the audit store (hash chain included).

Pre-loads N events on the three TaskFlow topics (3 partitions each) of a fresh Tansu
broker, then, each into a fresh audit database:
  * the real dataflow, `python -m bytewax.run pipelines.audit:flow -r DIR -s 1 -b 0 -w W`
    for W = 1 and 2;
  * a Quix Streams application (the peer a Python team would pick) decoding with the same
    codec and writing the same rows through the same `ChainWriter`, with 1 and 2 processes
    in one consumer group.
Rate = entries committed per second, from the first committed batch to the N-th entry
(the figure "incl. startup" also counts process start). Prints one JSON line.

    .venv/bin/python tests/bench/audit_ingest.py [-n 100000]
Needs the `bench` extra (quixstreams). TASKFLOW_TEST_DATABASE_URL picks the PostgreSQL
server (else an embedded one starts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from audit_store.db.migrate import migrate  # noqa: E402
from deploy.broker import ensure_topics, start_broker  # noqa: E402
from deploy.database import server_url, start_embedded  # noqa: E402
from events.kafka import KafkaSettings  # noqa: E402
from runtime.database import drop_database, ensure_database  # noqa: E402
from tests.integration.audit.support import init_recovery, start_flow  # noqa: E402


def cpu_pressure() -> float | None:
    """Share of the last minute some task waited for a CPU (Linux PSI): the machine's load."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return float(line.split("avg60=")[1].split()[0])


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def preload(kafka: KafkaSettings, n: int) -> None:
    from confluent_kafka import Producer

    from tests.unit.audit.factories import (
        TRACEPARENT,
        event_bytes,
        notification_payload,
        reminder_payload,
        task_payload,
    )

    producer = Producer(kafka.producer(**{"linger.ms": 20, "enable.idempotence": False}))
    topics = kafka.topics
    # A few hundred distinct events, re-stamped with fresh ids: encoding 100k payloads
    # would dominate the set-up time.
    templates: list[tuple[str, bytes]] = []
    for i in range(300):
        user = f"user{i % 13}"
        if i % 5 == 3:
            templates.append((topics.reminders, event_bytes(reminder_payload(user), user)))
        elif i % 5 == 4:
            templates.append((topics.notifications, event_bytes(notification_payload(user), user)))
        else:
            templates.append((topics.tasks, event_bytes(task_payload(user=user), user)))
    import orjson

    from events.codec import new_event_id

    headers = [("traceparent", TRACEPARENT.encode())]
    for i in range(n):
        topic, raw = templates[i % len(templates)]
        doc = orjson.loads(raw)
        doc["id"] = new_event_id()
        while True:
            try:
                producer.produce(topic, orjson.dumps(doc), key=str(i).encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 20000 == 0:
            progress(f"  produced {i}/{n}")
    assert producer.flush(60) == 0


async def stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(seq), 0) FROM audit_chain_heads"))
    finally:
        await conn.close()


class CpuMeter:
    """CPU seconds used by the runner processes and by their PostgreSQL backends.

    The machine is shared: wall-clock rates move with other people's load, CPU per event
    does not (much), so both are reported.
    """

    def __init__(self, procs: list[subprocess.Popen[bytes]], database: str) -> None:
        self._procs = [psutil.Process(p.pid) for p in procs]
        self._database = database
        self.client: dict[int, float] = {}
        self.backends: dict[int, float] = {}

    async def sample(self, conn: asyncpg.Connection) -> None:
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.client[proc.pid] = times.user + times.system
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self._database,
        )
        for row in pids:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(row["pid"]).cpu_times()
                self.backends[row["pid"]] = times.user + times.system


def measure(url: str, n: int, procs: list[subprocess.Popen[bytes]], label: str) -> dict[str, Any]:
    """Poll the heads table (cheap) until n entries are in; rate from the first commit."""
    started = time.monotonic()
    first_t, first_n, last_print = None, 0, 0.0
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(url))
    meter = CpuMeter(procs, url.rsplit("/", 1)[-1])
    try:
        while True:
            loop.run_until_complete(meter.sample(conn))
            count = int(
                loop.run_until_complete(
                    conn.fetchval("SELECT coalesce(sum(seq), 0) FROM audit_chain_heads")
                )
            )
            now = time.monotonic()
            if count and first_t is None:
                first_t, first_n = now, count
            if count >= n:
                break
            if now - last_print > 2:
                progress(f"  {label}: {count}/{n}")
                last_print = now
            if now - started > 600 or any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError(f"{label} did not finish ({count}/{n})")
            time.sleep(0.02)  # poll interval of the bench, not a test wait
        assert first_t is not None
        steady = (n - first_n) / max(now - first_t, 1e-9)
        client_us = 1e6 * sum(meter.client.values()) / n
        backend_us = 1e6 * sum(meter.backends.values()) / n
        return {
            "events_per_s": round(steady),
            "events_per_s_incl_startup": round(n / (now - started)),
            "seconds": round(now - started, 2),
            # incl. process start-up and imports; backends: our connections only
            "cpu_us_per_event": {"runner": round(client_us, 1), "postgres": round(backend_us, 1)},
        }
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def env_for(kafka: KafkaSettings, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TASKFLOW_KAFKA_BOOTSTRAP=kafka.bootstrap,
        TASKFLOW_KAFKA_TOPIC_NAMESPACE=kafka.topic_namespace,
        TASKFLOW_AUDIT_DATABASE_URL=url,
        TASKFLOW_AUDIT_FLOW_TAIL="false",
        OTEL_TRACES_EXPORTER="none",
        PYTHONWARNINGS="ignore",
    )
    return env


def run_bytewax(kafka: KafkaSettings, url: str, n: int, workers: int, tmp: Path) -> dict[str, Any]:
    recovery = tmp / f"recovery-w{workers}"
    init_recovery(recovery)
    proc = start_flow(env_for(kafka, url), recovery, workers=workers)
    try:
        return measure(url, n, [proc], f"bytewax -w {workers}")
    finally:
        proc.wait(60) if proc.poll() is None else None


def run_quix(kafka: KafkaSettings, url: str, n: int, procs: int, tmp: Path) -> dict[str, Any]:
    group = f"audit-bench-{uuid.uuid4().hex[:8]}"
    env = env_for(kafka, url) | {
        "AUDIT_BENCH_GROUP": group,
        "AUDIT_BENCH_STATE": str(tmp / f"quix-state-{group}"),
    }
    children = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, __file__, "--quix-worker"],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        for _ in range(procs)
    ]
    try:
        return measure(url, n, children, f"quix x{procs}")
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def quix_worker() -> None:
    """One Quix Streams process: decode with the events codec, write with ChainWriter."""
    import warnings

    warnings.simplefilter("ignore")
    from quixstreams import Application, message_context
    from quixstreams.sinks import BatchingSink, SinkBatch

    from audit_store.db.pool import create_pool
    from audit_store.dead_letters import KafkaDeadLetters
    from audit_store.ingest import ChainWriter
    from audit_store.ports import utc_now
    from audit_store.records import Origin, to_record

    kafka = KafkaSettings()
    url = os.environ["TASKFLOW_AUDIT_DATABASE_URL"]

    class AuditSink(BatchingSink):
        def setup(self) -> None:
            self._loop = asyncio.new_event_loop()
            pool = self._loop.run_until_complete(create_pool(url, 2))
            dlq = KafkaDeadLetters(kafka.producer(), kafka.topics.dlq)
            self._writer = ChainWriter(pool, dlq, utc_now)

        def write(self, batch: SinkBatch) -> None:
            self._loop.run_until_complete(self._writer.write([item.value for item in batch]))

    def decode(value: bytes, key: Any, timestamp: int, headers: Any) -> Any:
        ctx = message_context()
        origin = Origin(ctx.topic, ctx.partition, ctx.offset, timestamp)
        return to_record(origin, key, value, headers or [])

    app = Application(
        broker_address=kafka.bootstrap,
        consumer_group=os.environ["AUDIT_BENCH_GROUP"],
        auto_offset_reset="earliest",
        commit_interval=1.0,
        consumer_extra_config={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 20,
        },
        auto_create_topics=False,
        use_changelog_topics=False,
        state_dir=os.environ["AUDIT_BENCH_STATE"],
    )
    topics = kafka.topics
    for name in (topics.tasks, topics.reminders, topics.notifications):
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(decode, metadata=True)
        sdf.sink(AuditSink())
    app.run()


async def fresh_db(admin: str, name: str) -> str:
    await drop_database(admin, name)
    url = await ensure_database(admin, name)
    await migrate(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--skip-quix", action="store_true")
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        admin = os.environ.get("TASKFLOW_TEST_DATABASE_URL")
        embedded = None
        if not admin:
            embedded = start_embedded(tmp / "pg")
            admin = server_url(embedded)
        broker = start_broker(log_file=tmp / "tansu.log")
        try:
            kafka = KafkaSettings(
                bootstrap=broker.bootstrap, topic_namespace="bench.", partitions=3
            )
            ensure_topics(kafka)
            progress(f"pre-loading {n} events")
            preload(kafka, n)
            results: dict[str, Any] = {
                "events": n,
                "partitions": 9,
                "cores": os.cpu_count(),
                "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            }
            runs: list[tuple[str, Any]] = [
                ("bytewax_w1", lambda url: run_bytewax(kafka, url, n, 1, tmp)),
                ("bytewax_w2", lambda url: run_bytewax(kafka, url, n, 2, tmp)),
            ]
            if not args.skip_quix:
                runs += [
                    ("quix_x1", lambda url: run_quix(kafka, url, n, 1, tmp)),
                    ("quix_x2", lambda url: run_quix(kafka, url, n, 2, tmp)),
                ]
            for label, run in runs:
                db = f"audit_bench_{label}"
                url = asyncio.run(fresh_db(admin, db))
                progress(f"running {label}")
                results[label] = run(url) | {"cpu_pressure_avg60": cpu_pressure()}
                asyncio.run(drop_database(admin, db))
            if not args.skip_quix:
                best_bw = max(
                    results["bytewax_w1"]["events_per_s"], results["bytewax_w2"]["events_per_s"]
                )
                best_quix = max(
                    results["quix_x1"]["events_per_s"], results["quix_x2"]["events_per_s"]
                )
                results["ratio_best_bytewax_to_best_quix"] = round(best_bw / best_quix, 2)
                results["ratio_w1_to_quix_x1"] = round(
                    results["bytewax_w1"]["events_per_s"] / results["quix_x1"]["events_per_s"], 2
                )
                results["ratio_w2_to_quix_x2"] = round(
                    results["bytewax_w2"]["events_per_s"] / results["quix_x2"]["events_per_s"], 2
                )
            print(__import__("json").dumps(results), flush=True)
        finally:
            broker.stop()
            if embedded is not None:
                embedded.cleanup()


if __name__ == "__main__":
    if "--quix-worker" in sys.argv:
        quix_worker()
    else:
        main()
