"""The oracle: what the load generator was told (accepted changes) against what every store
and client holds: the task outbox, the audit store, the notification inbox, the reminders
that fired, and each user's WebSocket feed.

An issue is a tuple naming the effect, so the same missing effect counted in two rounds is
one issue. `lost` = an expected effect missing, `duplicated` = an effect seen more than once,
`unexpected` = an effect that should not exist at all (a snooze that notified, say).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from reminders.domain.ids import reminder_id
from tests.chaos.feed import Feed
from tests.chaos.harness import ChaosSystem
from tests.chaos.load import BEFORE, Ledger

NOTIFYING = {"task.created", "task.updated", "task.completed", "task.deleted", "task.reopened"}
# A reminder is judged this long after its time: the digest window (3 s) plus slack.
REMINDER_SLACK = 6.0

Issue = tuple[str, ...]


@dataclass
class Verdict:
    lost: set[Issue] = field(default_factory=set)
    duplicated: set[Issue] = field(default_factory=set)
    unexpected: set[Issue] = field(default_factory=set)
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stores:
    """One read of every store, taken at the same moment (more or less)."""

    outbox: list[Mapping[str, Any]]
    audit: list[Mapping[str, Any]]
    notifications: list[Mapping[str, Any]]


async def _fetch(system: ChaosSystem, database: str, sql: str) -> list[Mapping[str, Any]]:
    conn = await asyncpg.connect(system.database_url(database), timeout=10)
    try:
        return list(await conn.fetch(sql, timeout=30))
    finally:
        await conn.close()


OUTBOX = """
SELECT event_id::text AS event_id, event_type, key AS task_id, created_at,
       (convert_from(payload, 'UTF8')::json #>> '{data,version}')::int AS version,
       convert_from(payload, 'UTF8')::json ->> 'userid' AS user_id
FROM outbox WHERE event_type <> 'task.snapshot'
"""
AUDIT = """
SELECT event_id, type, task_id,
       CASE WHEN type IN ('task.reminder', 'reminder.digest', 'notification.created')
            THEN data::text END AS data
FROM audit_entries
"""
NOTIFICATIONS = """
SELECT user_id, seq, id::text AS id, kind, task_id::text AS task_id, event_id, created_at
FROM notifications
"""


async def read_stores(system: ChaosSystem) -> Stores:
    outbox, audit, notes = await asyncio.gather(
        _fetch(system, "taskflow_tasks", OUTBOX),
        _fetch(system, "taskflow_audit", AUDIT),
        _fetch(system, "taskflow_notify", NOTIFICATIONS),
    )
    return Stores(outbox, audit, notes)


def judge(stores: Stores, ledger: Ledger, feeds: Iterable[Feed], cut: float) -> Verdict:
    """Every accepted change up to `cut` (wall clock) and its effects, and every feed."""
    verdict = Verdict()
    users = {feed.user for feed in feeds}
    outbox = [row for row in stores.outbox if row["user_id"] in users]
    committed = {(row["task_id"], row["version"]): row for row in outbox}
    accepted = ledger.accepted_before(cut)
    verdict.stats["accepted"] = len(accepted)

    for change in accepted:
        row = committed.get((change.task_id, change.version))
        if row is None or row["event_type"] != change.type:
            verdict.lost.add(("outbox", change.task_id, str(change.version), change.type))
    _changes_applied_once(outbox, ledger, verdict)

    audit_count = Counter(row["event_id"] for row in stores.audit)
    notes_by_event: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for note in stores.notifications:
        notes_by_event[note["event_id"]].append(note)
    judged = [row for row in outbox if row["created_at"].timestamp() <= cut]
    verdict.stats["events"] = len(judged)
    for row in judged:
        event_id = row["event_id"]
        _once(verdict, ("audit", event_id, row["event_type"]), audit_count[event_id])
        notes = len(notes_by_event[event_id])
        if row["event_type"] in NOTIFYING:
            _once(verdict, ("notification", event_id, row["event_type"]), notes)
        elif notes:
            verdict.unexpected.add(("notification", event_id, row["event_type"]))

    _reminders(stores, ledger, notes_by_event, cut, verdict)
    _audited_notifications_once(stores, verdict)
    for feed in feeds:
        _feed(feed, stores.notifications, cut, verdict)
    return verdict


def _once(verdict: Verdict, issue: Issue, count: int) -> None:
    if count == 0:
        verdict.lost.add(issue)
    elif count > 1:
        verdict.duplicated.add(issue)


def _changes_applied_once(
    outbox: list[Mapping[str, Any]], ledger: Ledger, verdict: Verdict
) -> None:
    """No write took effect twice: at most one event per attempt (retries share a key)."""
    per_task = Counter(row["task_id"] for row in outbox)
    unknown_creates: Counter[str] = Counter()
    for task_id, events in per_task.items():
        if task_id in ledger.attempts:
            if events > ledger.attempts[task_id]:
                verdict.duplicated.add(("change", task_id, f"{events} events"))
        else:
            first = next(r for r in outbox if r["task_id"] == task_id)
            unknown_creates[first["user_id"]] += 1
    for user, created in unknown_creates.items():
        if created > ledger.uncertain_creates[user]:
            verdict.duplicated.add(("create", user, f"{created} unknown tasks"))


def _reminders(
    stores: Stores,
    ledger: Ledger,
    notes_by_event: Mapping[str, list[Mapping[str, Any]]],
    cut: float,
    verdict: Verdict,
) -> None:
    """Every reminder due by `cut` (minus slack) fired once: as a `task.reminder` whose id is
    the reminder id, or as an item of exactly one `reminder.digest`; and it notified."""
    fired: defaultdict[str, list[str]] = defaultdict(list)  # reminder id -> event ids
    for row in stores.audit:
        if row["type"] == "task.reminder":
            fired[json.loads(row["data"])["reminder_id"]].append(row["event_id"])
        elif row["type"] == "reminder.digest":
            for item in json.loads(row["data"])["items"]:
                fired[item["reminder_id"]].append(row["event_id"])
    horizon = datetime.fromtimestamp(cut, UTC) - timedelta(seconds=REMINDER_SLACK)
    expected = 0
    for change in ledger.changes:
        if change.due_at is None:
            continue
        for at in (change.due_at - BEFORE, change.due_at):
            if at > horizon or (change.written_at is not None and at <= change.written_at):
                continue  # not due yet, or in the past of the write (never armed)
            expected += 1
            rid = reminder_id(change.task_id, at, change.version)
            events = fired.get(rid, [])
            _once(verdict, ("reminder", change.task_id, at.isoformat()), len(events))
            for event_id in events:
                _once(verdict, ("reminder notification", event_id), len(notes_by_event[event_id]))
    verdict.stats["reminders"] = expected


def _audited_notifications_once(stores: Stores, verdict: Verdict) -> None:
    """The audit flow records `notification.created` too: one entry per notification."""
    per_note = Counter(
        json.loads(row["data"])["notification"]["id"]
        for row in stores.audit
        if row["type"] == "notification.created"
    )
    for note_id, count in per_note.items():
        if count > 1:
            verdict.duplicated.add(("audited notification.created", note_id))


def _feed(feed: Feed, notifications: list[Mapping[str, Any]], cut: float, verdict: Verdict) -> None:
    """Each notification stored for the user up to `cut` reached the feed exactly once, as
    the same notification under the same seq; no seq the store does not have."""
    stored = {n["seq"]: n for n in notifications if n["user_id"] == feed.user}
    seen = Counter(s.seq for s in feed.seen)
    for seq, count in seen.items():
        if count > 1:
            verdict.duplicated.add(("ws", feed.user, str(seq)))
        if seq not in stored:
            verdict.unexpected.add(("ws unknown seq", feed.user, str(seq)))
    for s in feed.seen:
        note = stored.get(s.seq)
        if note is not None and note["id"] != s.notification_id:
            verdict.unexpected.add(("ws wrong notification", feed.user, str(s.seq)))
    for seq, note in stored.items():
        if note["created_at"].timestamp() <= cut and seq not in seen:
            verdict.lost.add(("ws", feed.user, str(seq)))
    verdict.stats[f"ws_{feed.user}"] = len(feed.seen)


async def settle(
    system: ChaosSystem,
    ledger: Ledger,
    feeds: list[Feed],
    cut: float,
    timeout: float,
    known: frozenset[Issue] = frozenset(),
) -> Verdict:
    """Judge until nothing is missing (but the `known` issues of earlier rounds) or
    `timeout` runs out; the last verdict stands."""
    deadline = time.monotonic() + timeout
    while True:
        # The feeds first: whatever a client saw must already be in the stores read after.
        seen = [replace(feed, seen=list(feed.seen)) for feed in feeds]
        try:
            verdict = judge(await read_stores(system), ledger, seen, cut)
        except (OSError, asyncpg.PostgresError) as exc:
            verdict = Verdict(lost={("stores unreadable", str(exc))})
        if verdict.lost <= known or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(0.5)
