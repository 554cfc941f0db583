"""Benchmark of the notification hub and worker; prints two JSON lines.

Line 1 (hub): one hub process (`taskflow serve notify`, worker and dispatcher off) on a
Tansu broker and Postgres; N WebSocket clients in separate processes (one user each; a lean
client, tests/bench/_ws_client.py, so the load generator leaves the cores to the hub);
`notification.created` messages produced straight to `taskflow.notifications`:
  - connections held and hub RSS per connection,
  - delivered notification frames/s for a burst of B notifications,
  - event -> frame latency (Kafka produce time to client receipt) with L connected users
    receiving R notifications/s in total for D seconds.
With `--servers hypercorn,uvicorn,granian` the hub phase runs once per server (same app,
same clients, same run: one line each), so the servers compare side by side.
Line 2 (worker): E `task.created` events preloaded on `taskflow.tasks`, then one worker
process; events/s from the first to the last persisted and published notification.
Each line carries `targets`: issue 12's target 5 (and the worker's floor), met or not met,
and the load average the run saw (the machine is shared: compare only side-by-side runs).

    python tests/bench/ws_hub.py [--connections 19000] [--latency-users 10000]
        [--rate 2000] [--duration 10] [--burst 60000] [--events 20000]
        [--servers hypercorn,uvicorn:websockets-sansio,uvicorn:wsproto,granian] [--no-worker]

Needs PostgreSQL at TASKFLOW_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import psutil
from confluent_kafka import Producer

from deploy.broker import ensure_topics, free_port, start_broker
from events.codec import Envelope, encode
from events.kafka import KafkaSettings
from events.payloads import NotificationBody, NotificationCreated, TaskCreated
from events.producer import AsyncProducer
from notify_ws.db.migrate import migrate
from runtime.database import drop_database, ensure_database
from webapi.auth import issue_token

if __package__:  # python -m tests.bench.ws_hub
    from tests.bench._ws_client import ClientProtocol, connect
else:  # python tests/bench/ws_hub.py: this folder is on sys.path
    from _ws_client import ClientProtocol, connect  # type: ignore[no-redef]

SECRET = "bench-secret-0123456789abcdef0123456789"
ADMIN = os.environ.get(
    "TASKFLOW_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> None:
    """Soft limit up to the hard one (20,000 in this container: caps connections)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_service(
    db_url: str, kafka: KafkaSettings, port: int, **env: str
) -> subprocess.Popen[bytes]:
    full = (
        os.environ
        | {
            "TASKFLOW_NOTIFY_DATABASE_URL": db_url,
            "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka.topic_namespace,
            "TASKFLOW_JWT_SECRET": SECRET,
            "TASKFLOW_NOTIFY_WS_PING_INTERVAL": "PT60S",
            # Thousands of sockets from one address: lift the handshake limits.
            "TASKFLOW_WS_CONNECT_LIMIT_PER_IP": "1000000/minute",
            "TASKFLOW_WS_CONNECT_LIMIT_PER_USER": "1000000/minute",
            "TASKFLOW_LOG_LEVEL": "WARNING",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_SDK_DISABLED": "true",
        }
        | env
    )
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "deploy.cli", "serve", "notify", "--port", str(port)],
        env=full, preexec_fn=raise_nofile, stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVICE_LOG", os.devnull), "ab"),  # noqa: SIM115
    )  # fmt: skip


# ---------------------------------------------------------------- client processes


def client_main(port: int, users: list[str], conn: Any) -> None:
    raise_nofile()
    import uvloop

    uvloop.run(_clients(port, users, conn))


async def _clients(port: int, users: list[str], pipe: Any) -> None:
    latencies: list[float] = []
    received = frames = 0
    first = last = 0.0
    measuring = False
    sockets: list[ClientProtocol] = []

    def on_message(raw: bytes) -> None:
        nonlocal received, first, last, frames
        frames += 1
        if b'"notification"' not in raw[:30]:
            return
        now = time.time()
        received += 1
        if not first:
            first = now
        last = now
        if measuring:
            created = orjson.loads(raw)["notification"]["created_at"]
            latencies.append(now - datetime.fromisoformat(created).timestamp())

    sem = asyncio.Semaphore(64)

    async def open_one(user: str) -> None:
        async with sem:
            token = issue_token(SECRET, user)
            # The first message (unread_count) is the hub's welcome; `connect` waits for it.
            sockets.append(await connect("127.0.0.1", port, f"/ws?token={token}", on_message))

    await asyncio.gather(*(open_one(u) for u in users))
    pipe.send(("connected", len(sockets)))
    loop = asyncio.get_running_loop()
    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)
        if cmd == "reset":
            received, first, last, latencies, frames = 0, 0.0, 0.0, [], 0
            pipe.send("ok")
        elif cmd == "measure":
            measuring = True
            received, first, last, latencies, frames = 0, 0.0, 0.0, [], 0
            pipe.send("ok")
        elif cmd == "report":
            pipe.send((received, first, last, latencies, frames))
        elif cmd == "stop":
            for ws in sockets:
                ws.close()
            await asyncio.wait([ws.closed for ws in sockets], timeout=30)
            pipe.send("bye")
            return


# ---------------------------------------------------------------- producing


def created(user: str, seq: int) -> bytes:
    note = NotificationBody(
        id=uuid.uuid4(), seq=seq, kind="task.created", title="Bench task", body="Due soon.",
        task_id=None, event_id=str(uuid.uuid4()), created_at=datetime.now(UTC),
    )  # fmt: skip
    return encode(Envelope(data=NotificationCreated(user_id=user, notification=note),
                           source="/bench", subject=user, user_id=user))  # fmt: skip


NOTIFICATION_HEADERS = [("ce_type", b"notification.created")]


def next_notification(users: list[str], seqs: dict[str, int], i: int) -> tuple[bytes, bytes]:
    """(key, value) of the `i`-th notification round-robin over `users`, with the user's
    next seq."""
    user = users[i % len(users)]
    seqs[user] += 1
    return user.encode(), created(user, seqs[user])


async def produce(
    producer: AsyncProducer, topic: str, users: list[str], seqs: dict[str, int], count: int,
    rate: float,
) -> None:  # fmt: skip
    """`count` notifications round-robin over `users` at `rate`/s, each encoded as it goes
    (its `created_at` is the latency's start)."""
    start = time.perf_counter()
    futures = []
    for i in range(count):
        key, value = next_notification(users, seqs, i)
        futures.append(producer.produce(topic, value, key=key, headers=NOTIFICATION_HEADERS))
        if i % 20 == 19:
            ahead = (i + 1) / rate - (time.perf_counter() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
    await asyncio.gather(*futures)


def burst_messages(users: list[str], seqs: dict[str, int], count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` notifications round-robin over `users`."""
    return [next_notification(users, seqs, i) for i in range(count)]


def produce_burst(conf: dict[str, Any], topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Hand pre-encoded messages to librdkafka as fast as it takes them, then wait for all.

    The burst measures the hub: encoding each message and a future per delivery (what the
    services' `AsyncProducer` does) cost the bench ~50 µs a message on the cores the hub
    shares, enough to set the delivered rate."""
    producer = Producer(conf)
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key, headers=NOTIFICATION_HEADERS)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                producer.poll(0.01)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} burst messages not delivered within 60 s")


def ask(pipes: list[Any], cmd: str) -> list[Any]:
    for p in pipes:
        p.send(cmd)
    return [p.recv() for p in pipes]


async def wait_received(pipes: list[Any], want: int, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        reports = ask(pipes, "report")
        if sum(r[0] for r in reports) >= want or time.monotonic() > deadline:
            return reports
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- phases


# Issue 12, target 5 (per hub process), and the worker's floor.
HUB_TARGETS = {
    "connections_held": (">=", 19000),
    "rss_per_connection_kib": ("<=", 30),
    "delivered_msgs_per_s": (">=", 20000),
    "latency_p99_ms": ("<=", 50),
}
WORKER_TARGETS = {"events_per_s": (">=", 3000)}


def judged(result: dict[str, Any], targets: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """`result` plus each target as "met"/"not met" and the machine's load average."""
    verdicts = {}
    for key, (op, bound) in targets.items():
        value = result[key]
        ok = value >= bound if op == ">=" else value <= bound
        verdicts[key] = f"{value} {op} {bound}: {'met' if ok else 'not met'}"
    return result | {"targets": verdicts, "loadavg": [round(x, 2) for x in os.getloadavg()]}


async def hub_phase(
    args: argparse.Namespace, db_url: str, kafka: KafkaSettings, server: str
) -> dict[str, Any]:
    port = free_port()
    # "uvicorn:wsproto" picks uvicorn's WebSocket protocol too.
    name, _, uvicorn_ws = server.partition(":")
    extra = {"TASKFLOW_NOTIFY_UVICORN_WS": uvicorn_ws} if uvicorn_ws else {}
    hub = start_service(db_url, kafka, port, TASKFLOW_NOTIFY_RUN_WORKER="false",
                        TASKFLOW_NOTIFY_RUN_DISPATCHER="false",
                        TASKFLOW_NOTIFY_WS_QUEUE_SIZE="1024",
                        TASKFLOW_SERVER=name, **extra)  # fmt: skip
    proc = psutil.Process(hub.pid)
    producer = AsyncProducer(kafka.producer(**{"linger.ms": 1}))
    await producer.warm_up(kafka.topics.notifications)
    pipes: list[Any] = []
    workers: list[Any] = []
    try:
        import httpx

        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        rss_before = proc.memory_info().rss
        users = [f"bench-{server}-{i}" for i in range(args.connections)]
        nproc = max(1, args.client_processes)
        ctx = mp.get_context("spawn")
        progress(f"connecting {len(users)} clients from {nproc} processes")
        t0 = time.perf_counter()
        for k in range(nproc):
            parent, child = ctx.Pipe()
            w = ctx.Process(target=client_main, args=(port, users[k::nproc], child), daemon=True)
            w.start()
            pipes.append(parent)
            workers.append(w)
        held = sum(p.recv()[1] for p in pipes)
        connect_s = time.perf_counter() - t0
        rss_after = proc.memory_info().rss
        progress(f"{held} connected in {connect_s:.1f}s; hub RSS {rss_after / 2**20:.0f} MiB")
        seqs = {u: 0 for u in users}
        topic = kafka.topics.notifications

        # Throughput: a burst spread over every connected user.
        ask(pipes, "reset")
        progress(f"burst of {args.burst} notifications")
        burst = burst_messages(users, seqs, args.burst)  # encoded before the clock starts
        t_burst = time.time()
        cpu_burst = sum(proc.cpu_times()[:2])
        clients = [psutil.Process(w.pid) for w in workers]
        clients_burst = sum(sum(c.cpu_times()[:2]) for c in clients)
        machine_burst = psutil.cpu_times()
        await asyncio.to_thread(produce_burst, kafka.producer(**{"linger.ms": 5}), topic, burst)
        reports = await wait_received(pipes, args.burst, 120)
        got = sum(r[0] for r in reports)
        last = max(r[2] for r in reports if r[2]) if got else t_burst
        throughput = got / max(last - t_burst, 1e-9)
        all_frames = sum(r[4] for r in reports) / max(last - t_burst, 1e-9)
        # The hub shares 2 cores with the producer and the clients: its CPU per frame says
        # what one hub process could deliver with the cores to itself.
        burst_cpu = sum(proc.cpu_times()[:2]) - cpu_burst
        # The load generator's share of the cores: the first thing to look at when the
        # delivered rate is below what the hub's CPU per frame allows.
        clients_cpu = sum(sum(c.cpu_times()[:2]) for c in clients) - clients_burst
        machine = psutil.cpu_times()
        machine_busy = (machine.user + machine.system) - (machine_burst.user + machine_burst.system)
        progress(f"burst: {got} frames at {throughput:,.0f}/s; hub CPU {burst_cpu:.1f}s")

        # Latency: R/s over the first L users for D seconds.
        lat_users = users[: args.latency_users]
        ask(pipes, "measure")
        count = int(args.rate * args.duration)
        progress(f"latency: {args.rate}/s to {len(lat_users)} users for {args.duration}s")
        await produce(producer, topic, lat_users, seqs, count, args.rate)
        reports = await wait_received(pipes, count, 60)
        lat = sorted(x for r in reports for x in r[3])
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
        return {
            "bench": "ws_hub",
            "server": server,
            "connections_held": held,
            "connect_seconds": round(connect_s, 1),
            "hub_rss_mib": round(rss_after / 2**20, 1),
            "rss_per_connection_kib": round((rss_after - rss_before) / max(held, 1) / 1024, 1),
            "burst_notifications": args.burst,
            "burst_frames_received": got,
            "delivered_msgs_per_s": round(throughput),
            "delivered_frames_per_s_incl_unread_count": round(all_frames),
            "burst_hub_cpu_seconds": round(burst_cpu, 2),
            "burst_client_cpu_seconds": round(clients_cpu, 2),
            "burst_machine_cores_busy": round(machine_busy / max(last - t_burst, 1e-9), 2),
            "hub_cpu_us_per_notification_frame": round(burst_cpu / max(got, 1) * 1e6, 1),
            "notification_frames_per_hub_cpu_second": round(got / max(burst_cpu, 1e-9)),
            "latency_users": len(lat_users),
            "latency_rate_per_s": args.rate,
            "latency_samples": len(lat),
            "latency_p50_ms": round(q[49] * 1000, 1),
            "latency_p99_ms": round(q[98] * 1000, 1),
            "hub_cpu_seconds": round(sum(proc.cpu_times()[:2]), 1),
        }
    finally:
        try:
            ask(pipes, "stop")
        except Exception:  # noqa: BLE001, S110 - best effort on the way out
            pass
        for w in workers:
            w.join(10)
        await producer.close()
        t_stop = time.perf_counter()
        hub.terminate()
        try:
            hub.wait(120)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait(10)
        progress(f"hub stopped {time.perf_counter() - t_stop:.1f}s after SIGTERM")


async def worker_phase(
    args: argparse.Namespace, db_url: str, kafka: KafkaSettings
) -> dict[str, Any]:
    producer = AsyncProducer(kafka.producer(**{"linger.ms": 5}))
    now = datetime.now(UTC)
    progress(f"preloading {args.events} task.created events")
    futures = []
    for i in range(args.events):
        user = f"w-{i % 1000}"
        task = TaskCreated(id=uuid.uuid4(), user_id=user, title=f"task {i}", created_at=now,
                           updated_at=now, version=1)  # fmt: skip
        env = Envelope(data=task, source="/bench", subject=str(task.id), user_id=user)
        futures.append(producer.produce(kafka.topics.tasks, encode(env), key=str(task.id),
                                        headers=[("ce_type", b"task.created")]))  # fmt: skip
        if i % 1000 == 999:
            await asyncio.sleep(0)
    await asyncio.gather(*futures)
    await producer.close()
    conn = await asyncpg.connect(db_url)
    worker = start_service(db_url, kafka, free_port(), TASKFLOW_NOTIFY_RUN_HUB="false",
                           TASKFLOW_NOTIFY_RUN_DISPATCHER="false",
                           TASKFLOW_NOTIFY_WORKER_SESSION_TIMEOUT_MS="2000")  # fmt: skip
    try:
        progress("worker started")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            n = await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE published_at IS NOT NULL"
            )
            if n >= args.events:
                break
            await asyncio.sleep(0.25)
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS first, max(published_at) AS last"
            " FROM notifications"
        )
        seconds = (row["last"] - row["first"]).total_seconds()
        return {
            "bench": "notify_worker",
            "events": args.events,
            "notifications": row["n"],
            "seconds": round(seconds, 2),
            "events_per_s": round(row["n"] / max(seconds, 1e-9)),
        }
    finally:
        worker.terminate()
        worker.wait(30)
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=19000)
    parser.add_argument("--latency-users", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--burst", type=int, default=60000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--servers",
        default="uvicorn:wsproto",  # the notification service's default (notify_ws/cli.py)
        help="comma-separated: hypercorn,uvicorn,uvicorn:wsproto,granian (hub phase each)",
    )
    parser.add_argument("--no-worker", action="store_true", help="skip the worker phase")
    args = parser.parse_args()
    broker = start_broker()
    name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    try:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_namespace="bench.", partitions=6)
        ensure_topics(kafka)
        db_url = await ensure_database(ADMIN, name)
        await migrate(db_url)
        for server in args.servers.split(","):
            result = await hub_phase(args, db_url, kafka, server.strip())
            print(json.dumps(judged(result, HUB_TARGETS)), flush=True)
        if not args.no_worker:
            result = await worker_phase(args, db_url, kafka)
            print(json.dumps(judged(result, WORKER_TARGETS)), flush=True)
    finally:
        broker.stop()
        await drop_database(ADMIN, name)


if __name__ == "__main__":
    asyncio.run(main())
