"""Channel messages and the dispatcher's retry/breaker rules, with hand-written fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from notify_ws.channels.base import Outcome, Outgoing
from notify_ws.channels.breaker import Breakers, State
from notify_ws.channels.dispatch import Dispatcher
from notify_ws.db.deliveries import Delivery
from notify_ws.db.notifications import Notification
from notify_ws.exceptions import ChannelError
from notify_ws.metrics import Metrics
from notify_ws.preferences import Preferences
from notify_ws.settings import NotifySettings

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def note(seq: int, title: str = "t") -> Notification:
    return Notification(uuid.UUID(int=seq), "u", seq, "task.created", title, "b", None,
                        f"e{seq}", T0)  # fmt: skip


def test_digest_message_lists_every_notification() -> None:
    msg = Outgoing("u", [note(1, "One"), note(2, "Two")], Preferences(), digest=True)
    assert msg.subject.startswith("TaskFlow: 2 notifications")
    assert "One" in msg.text and "Two" in msg.text
    assert [n["seq"] for n in msg.payload()["notifications"]] == [1, 2]
    single = Outgoing("u", [note(3, "Three")], Preferences())
    assert single.payload()["notification"]["title"] == "Three"


def test_preferences_reject_unknown_fields_and_bad_zones() -> None:
    with pytest.raises(ValidationError):
        Preferences.model_validate({"timezone": "Nowhere/Land"})
    with pytest.raises(ValidationError):
        Preferences.model_validate({"quiet_hours": {"start": "7:00", "end": "08:00"}})
    with pytest.raises(ValidationError):
        Preferences.model_validate({"extra": True})
    prefs = Preferences.model_validate({"channels": {"email": True}})
    assert not prefs.wants("email")  # enabled but no address


class FakeConn:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    async def execute(self, sql: str, *args: Any) -> str:
        self.log.append((sql.split()[0], args))
        return "UPDATE 1"

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return None  # the erased-user check before a retry: nobody was erased


class FakePool:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def acquire(self) -> Any:
        pool = self

        class _Ctx:
            async def __aenter__(self) -> FakeConn:
                return FakeConn(pool.log)

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Ctx()


@dataclass
class FlakyChannel:
    """Fails `failures` times (transiently), then delivers."""

    failures: int
    permanent: bool = False
    name: str = "email"
    calls: int = 0

    def breaker_key(self, message: Outgoing) -> str:
        return "email"

    async def deliver(self, message: Outgoing) -> Outcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise ChannelError("boom", permanent=self.permanent)
        return "delivered"

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class FakePublisher:
    outcomes: list[Delivery] = field(default_factory=list)

    async def outcome(self, delivery: Delivery, at: datetime) -> None:
        self.outcomes.append(delivery)


class FixedClock:
    def now(self) -> datetime:
        return T0


def dispatcher(channel: FlakyChannel, threshold: int = 10) -> tuple[Dispatcher, FakePublisher]:
    settings = NotifySettings(retry_initial="PT0.001S", retry_max="PT0.002S",
                              retry_jitter="PT0.001S", max_attempts=4,
                              breaker_threshold=threshold)  # fmt: skip
    publisher = FakePublisher()
    d = Dispatcher(FakePool(), {"email": channel}, Breakers(threshold, 60.0), publisher,  # type: ignore[arg-type]
                   FixedClock(), settings, Metrics())  # fmt: skip
    return d, publisher


def row() -> Delivery:
    return Delivery(uuid.uuid4(), uuid.UUID(int=1), "u", "email", "pending", 0, (), None)


async def test_transient_failures_are_retried_then_delivered() -> None:
    channel = FlakyChannel(failures=2)
    d, pub = dispatcher(channel)
    await d.deliver(row(), Outgoing("u", [note(1)], Preferences()))
    assert channel.calls == 3
    assert [(o.status, o.attempts) for o in pub.outcomes] == [("delivered", 3)]


async def test_exhausted_attempts_fail_and_permanent_errors_fail_at_once() -> None:
    channel = FlakyChannel(failures=100)
    d, pub = dispatcher(channel)
    await d.deliver(row(), Outgoing("u", [note(1)], Preferences()))
    assert channel.calls == 4 and pub.outcomes[0].status == "failed"
    permanent = FlakyChannel(failures=100, permanent=True)
    d, pub = dispatcher(permanent)
    await d.deliver(row(), Outgoing("u", [note(1)], Preferences()))
    assert permanent.calls == 1 and pub.outcomes[0].status == "failed"


async def test_open_breaker_postpones_without_failing() -> None:
    channel = FlakyChannel(failures=100)
    d, pub = dispatcher(channel, threshold=2)
    await d.deliver(row(), Outgoing("u", [note(1)], Preferences()))
    assert channel.calls == 2  # the breaker opened after two; no third attempt
    assert pub.outcomes == []  # postponed, not failed
    assert d._breakers.get("email").state is State.OPEN
