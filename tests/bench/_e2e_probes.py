"""What the e2e bench reads from the running system: CPU and memory per process, and per
change timestamps from the audit, task and notify databases."""

from __future__ import annotations

import contextlib
from collections import defaultdict

import asyncpg
import psutil

from runtime.database import with_database
from tests.bench._e2e_observer import Key
from tests.bench._harness import percentile
from tests.e2e.system import System


def component_pids(system: System) -> dict[str, int]:
    assert system.process is not None
    return {"launcher": system.process.pid, **system.pids()}


def tree(pid: int, alone: bool) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root] if alone else [root, *root.children(recursive=True)]
    return []


def cpu_seconds(system: System, client: list[int]) -> dict[str, float]:
    """CPU seconds per component, of this bench's own processes ("bench-client") and of the
    whole machine ("machine": what every process used, others' tests included)."""
    cpu = psutil.cpu_times()
    out = {"machine": cpu.user + cpu.system + cpu.nice + cpu.irq + cpu.softirq}
    groups = [(name, pid, name == "launcher") for name, pid in component_pids(system).items()]
    groups += [("bench-client", pid, True) for pid in client]
    for name, pid, alone in groups:
        total = out.get(name, 0.0) if name == "bench-client" else 0.0
        for proc in tree(pid, alone=alone):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        out[name] = total
    return out


def memory_mib(system: System, full: bool) -> dict[str, dict[str, float]]:
    """RSS (and PSS with `full`: shared pages split, so a tree's sum is honest) per component
    with its child processes (PostgreSQL's backends, Hypercorn workers); the launcher alone."""
    out: dict[str, dict[str, float]] = {}
    for name, pid in component_pids(system).items():
        rss = pss = 0
        for proc in tree(pid, alone=name == "launcher"):
            with contextlib.suppress(psutil.Error):
                if full:
                    info = proc.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                else:
                    rss += proc.memory_info().rss
        out[name] = {"rss": round(rss / 2**20, 1)} | (
            {"pss": round(pss / 2**20, 1)} if full else {}
        )
    return out


def cpu_util(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores used per component over `seconds`; "others": the machine's rest (other tests)."""
    used = {k: (after[k] - before.get(k, 0.0)) / seconds for k in after}
    used["others"] = used["machine"] - sum(v for k, v in used.items() if k != "machine")
    return {k: round(v, 3) for k, v in used.items()}


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5) * 1000, 1),
        "p99": round(percentile(values, 0.99) * 1000, 1),
        "max": round(max(values, default=float("nan")) * 1000, 1),
    }


async def audit_rows(audit_url: str, task_ids: list[str]) -> dict[Key, tuple[str, int, float]]:
    conn = await asyncpg.connect(audit_url)
    try:
        rows = await conn.fetch(
            "SELECT task_id, type, chain_id, chain_seq, recorded_at FROM audit_entries"
            " WHERE task_id = ANY($1::text[]) AND NOT snapshot",
            task_ids,
        )
    finally:
        await conn.close()
    return {
        (r["task_id"], r["type"]): (r["chain_id"], r["chain_seq"], r["recorded_at"].timestamp())
        for r in rows
    }


async def hop_times(admin_url: str, task_ids: list[str]) -> dict[Key, dict[str, float]]:
    """Where each change was when, by (task id, kind), in epoch seconds: the relay marking its
    outbox row published (after the broker's ack; task DB), the notify worker's clock as it
    inserts the notification and as it marks it published (after the ack; notify DB)."""
    hops: dict[Key, dict[str, float]] = defaultdict(dict)
    conn = await asyncpg.connect(with_database(admin_url, "taskflow_tasks"))
    try:
        for row in await conn.fetch(
            "SELECT key, event_type, published_at FROM outbox WHERE key = ANY($1::text[])",
            task_ids,
        ):
            if row["published_at"] is not None:
                hops[(row["key"], row["event_type"])]["relay_marked"] = row[
                    "published_at"
                ].timestamp()
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_url, "taskflow_notify"))
    try:
        for row in await conn.fetch(
            "SELECT task_id::text AS task_id, kind, created_at, published_at FROM notifications"
            " WHERE task_id = ANY($1::uuid[])",
            task_ids,
        ):
            hop = hops[(row["task_id"], row["kind"])]
            hop["worker_stored"] = row["created_at"].timestamp()
            if row["published_at"] is not None:
                hop["worker_published"] = row["published_at"].timestamp()
    finally:
        await conn.close()
    return hops
