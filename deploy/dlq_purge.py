"""`taskflow dlq purge --user U`: a user's dead letters leave the DLQ (right to erasure).

Kafka deletes no single message, so the purge rewrites the topic: the dead letters it keeps
are copied to a staging topic (`<dlq>.purge`, one partition, so its order is total), the
DLQ is deleted and created again, and the copies go back to their partitions with their
key, value, headers and timestamp. The staging topic is the crash journal: a *commit*
marker says the copy is whole (from then on the DLQ may be deleted), a *done* marker says
the copies are back. A re-run finishes an interrupted purge before anything else, so a
purge killed at any point and run again loses no other dead letter and doubles none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson

from deploy.dlq import DeadLetter, DlqError
from events import dlq

STAGING_SUFFIX = ".purge"
COMMIT = "commit"
DONE = "done"
MARKER_KEY = b"dlq.purge.marker"
COPY_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Layout:
    """What the DLQ is made again with: partitions, replicas and topic settings."""

    topic_id: str
    partitions: int
    replicas: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to write: a dead letter copied, or a journal marker."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None = None


class PurgeBroker(Protocol):
    """What the purge needs of the broker; the real one is `KafkaPurgeBroker`."""

    def layout(self, topic: str) -> Layout | None:
        """The topic as it is now, or None if it does not exist."""

    def read(self, topic: str) -> list[DeadLetter]:
        """Every record of the topic, start to end (DlqError if it cannot)."""

    def write(self, topic: str, records: Sequence[Outgoing]) -> None:
        """Write and wait for every acknowledgement (DlqError if one fails)."""

    def create(self, topic: str, layout: Layout) -> Layout:
        """Create the topic; if it exists (made meanwhile by a writer or an operator) give it
        `layout`'s settings. Returns the topic as it then is."""

    def delete(self, topic: str, topic_id: str) -> None:
        """Delete this incarnation of the topic and wait until it is gone."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a purge of `user` takes away and keeps; `unknown`: kept, no user named."""

    user: str
    gone: list[DeadLetter]
    kept: list[DeadLetter]
    unknown: list[DeadLetter]


@dataclass(frozen=True, slots=True)
class Marker:
    """A journal entry of run `run`: COMMIT (copy whole) or DONE (copies back)."""

    run: str
    step: str
    layout: Layout
    gone: tuple[str, ...] = ()

    def record(self) -> Outgoing:
        doc = {
            "run": self.run,
            "step": self.step,
            "layout": {
                "topic_id": self.layout.topic_id,
                "partitions": self.layout.partitions,
                "replicas": self.layout.replicas,
                "configs": self.layout.configs,
            },
            "gone": list(self.gone),
        }
        headers = ((dlq.PURGE_MARKER, self.step.encode()), (dlq.PURGE_RUN, self.run.encode()))
        return Outgoing(0, MARKER_KEY, orjson.dumps(doc), headers)

    @classmethod
    def parse(cls, letter: DeadLetter) -> Marker:
        doc = orjson.loads(letter.value or b"{}")
        layout = Layout(**doc["layout"])
        return cls(doc["run"], doc["step"], layout, tuple(doc["gone"]))


@dataclass(frozen=True, slots=True)
class Journal:
    """The staging topic read back: the newest committed run not yet done, and its copies."""

    pending: Marker | None
    done: bool
    copies: dict[str, DeadLetter]  # of the pending run, by their place before the purge


@dataclass(frozen=True, slots=True)
class Report:
    """What one purge did (or, as a dry run, would do)."""

    plan: Plan
    resumed: int = 0  # dead letters gone by finishing an interrupted purge
    dry_run: bool = False

    def lines(self) -> list[str]:
        plan = self.plan
        unknown = f"{len(plan.unknown)} name no user (kept)"
        if self.dry_run:
            return [
                *(f"would purge\t{d.line()}" for d in plan.gone),
                f"dry run: {len(plan.gone)} dead letters about {plan.user} would be purged, "
                f"{len(plan.kept)} kept, {unknown}; nothing changed (add --yes to purge)",
            ]
        lines = [f"finished an interrupted purge: {self.resumed} dead letters gone"]
        lines = lines if self.resumed else []
        lines.append(
            f"purged {len(plan.gone)} dead letters about {plan.user}, kept {len(plan.kept)}, "
            f"{unknown}"
        )
        if plan.gone:
            lines.append("the kept dead letters have new ids (see `taskflow dlq list`)")
        return lines


def owner(letter: DeadLetter) -> str | None:
    """The user a dead letter is about: its event's `userid`, else (a value that is no
    event) its key, which is the user id on the topics keyed by user. None: cannot tell."""
    return letter.user or (letter.key.decode("utf-8", "replace") if letter.key else None)


def plan(letters: Iterable[DeadLetter], user: str) -> Plan:
    """Split the DLQ into the user's dead letters and the rest."""
    gone: list[DeadLetter] = []
    kept: list[DeadLetter] = []
    unknown: list[DeadLetter] = []
    for letter in letters:
        if owner(letter) == user:
            gone.append(letter)
        else:
            kept.append(letter)
            if letter.user is None:
                unknown.append(letter)
    return Plan(user, gone, kept, unknown)


def staged(letter: DeadLetter, run: str, partition: int = 0) -> Outgoing:
    """`letter` as the purge writes it: unchanged, plus the run and where it came from."""
    origin = letter.headers_of(dlq.PURGE_FROM) if letter.moved_by(run) else letter.id
    headers = tuple((k, v) for k, v in letter.headers if not k.startswith("dlq.purge."))
    tags = ((dlq.PURGE_RUN, run.encode()), (dlq.PURGE_FROM, origin.encode()))
    return Outgoing(partition, letter.key, letter.value, headers + tags, _millis(letter))


def journal(records: Sequence[DeadLetter]) -> Journal:
    """Read the staging topic: the last run with a COMMIT, whether it is DONE, its copies."""
    markers = [Marker.parse(r) for r in records if r.headers_of(dlq.PURGE_MARKER)]
    committed = [m for m in markers if m.step == COMMIT]
    if not committed:
        return Journal(None, False, {})
    last = committed[-1]
    done = any(m.step == DONE and m.run == last.run for m in markers)
    copies = {
        r.headers_of(dlq.PURGE_FROM): r
        for r in records
        if r.moved_by(last.run) and not r.headers_of(dlq.PURGE_MARKER)
    }
    return Journal(last, done, copies)


def home(letter: DeadLetter, partitions: int) -> int:
    """The partition a copy goes back to: its own, if the new topic has it."""
    before = letter.headers_of(dlq.PURGE_FROM)
    partition = int(before.split(":")[0]) if before else letter.dlq_partition
    return partition if partition < partitions else partition % partitions


def _millis(letter: DeadLetter) -> int | None:
    return round(letter.when.timestamp() * 1000) if letter.when else None


Checkpoint = Callable[[str], None]


class DlqPurge:
    """The purge over a `PurgeBroker`; `checkpoint(step)` runs after each step (tests stop
    the process there)."""

    def __init__(
        self,
        broker: PurgeBroker,
        topic: str,
        checkpoint: Checkpoint | None = None,
        new_run: Callable[[], str] | None = None,
    ) -> None:
        self._broker = broker
        self.topic = topic
        self.staging = topic + STAGING_SUFFIX
        self._checkpoint = checkpoint or (lambda _step: None)
        self._new_run = new_run or (lambda: uuid.uuid4().hex[:12])

    def preview(self, user: str) -> Report:
        """What `run(user)` would purge now (an interrupted purge is finished first)."""
        return Report(plan(self._broker.read(self.topic), user), dry_run=True)

    def run(self, user: str) -> Report:
        """Finish an interrupted purge if there is one, then purge `user`'s dead letters."""
        resumed = self._resume(user)
        current = plan(self._broker.read(self.topic), user)
        if current.gone:
            layout = self._broker.layout(self.topic)
            if layout is None:
                raise DlqError(f"topic {self.topic} disappeared while being read")
            self._rewrite(current, layout)
        return Report(current, resumed=resumed)

    def _resume(self, user: str) -> int:
        if self._broker.layout(self.staging) is None:
            return 0
        state = journal(self._broker.read(self.staging))
        if state.pending is not None and not state.done:
            self._finish(state.pending, state.copies, user)
        self._drop_staging()
        return len(state.pending.gone) if state.pending and not state.done else 0

    def _rewrite(self, current: Plan, layout: Layout) -> None:
        run = self._new_run()
        retention = {k: v for k, v in layout.configs.items() if k.startswith("retention.")}
        self._broker.create(self.staging, Layout("", 1, layout.replicas, retention))
        self._broker.write(self.staging, [staged(d, run) for d in current.kept])
        self._checkpoint("staged")
        marker = Marker(run, COMMIT, layout, tuple(d.id for d in current.gone))
        self._broker.write(self.staging, [marker.record()])
        self._checkpoint("committed")
        self._finish(marker, copies_as_staged(current.kept, run), current.user)
        self._drop_staging()

    def _finish(self, marker: Marker, copies: dict[str, DeadLetter], user: str) -> None:
        now = self._broker.layout(self.topic)
        if now is not None and now.topic_id == marker.layout.topic_id:
            marker, copies = self._catch_up(marker, copies, user)
            self._broker.delete(self.topic, now.topic_id)
        self._checkpoint("deleted")
        made = self._broker.create(self.topic, marker.layout)
        self._checkpoint("recreated")
        back = {
            d.headers_of(dlq.PURGE_FROM)
            for d in self._broker.read(self.topic)
            if d.moved_by(marker.run)
        }
        todo = [d for origin, d in copies.items() if origin not in back]
        for start in range(0, len(todo), COPY_CHUNK):
            chunk = todo[start : start + COPY_CHUNK]
            self._broker.write(
                self.topic, [staged(d, marker.run, home(d, made.partitions)) for d in chunk]
            )
            self._checkpoint("copied")
        self._broker.write(self.staging, [replace(marker, step=DONE).record()])
        self._checkpoint("done")

    def _catch_up(
        self, marker: Marker, copies: dict[str, DeadLetter], user: str
    ) -> tuple[Marker, dict[str, DeadLetter]]:
        """Dead letters written to the DLQ since it was copied join the copy (or, about
        `user`, the purge) before the DLQ is deleted; repeated until none are new."""
        while True:
            known = set(copies) | set(marker.gone)
            new = [d for d in self._broker.read(self.topic) if d.id not in known]
            if not new:
                return marker, copies
            more = plan(new, user)
            self._broker.write(self.staging, [staged(d, marker.run) for d in more.kept])
            marker = replace(marker, gone=marker.gone + tuple(d.id for d in more.gone))
            self._broker.write(self.staging, [marker.record()])
            copies = copies | copies_as_staged(more.kept, marker.run)

    def _drop_staging(self) -> None:
        staging = self._broker.layout(self.staging)
        if staging is not None:
            self._broker.delete(self.staging, staging.topic_id)


def copies_as_staged(letters: Iterable[DeadLetter], run: str) -> dict[str, DeadLetter]:
    """Letters as their staged copies read back would be (same headers), by origin."""
    return {d.id: replace(d, headers=staged(d, run).headers) for d in letters}
