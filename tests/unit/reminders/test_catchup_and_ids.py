"""Catch-up decisions and deterministic ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reminders.domain.catchup import CatchUpPolicy, classify
from reminders.domain.ids import digest_id, reminder_id

AT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_fire_within_grace_missed_beyond_drop_beyond_max_age() -> None:
    policy = CatchUpPolicy(grace=timedelta(minutes=5), max_age=timedelta(days=1))
    assert classify(policy, AT, "before", AT) == "fire"
    assert classify(policy, AT, "before", AT + timedelta(minutes=5)) == "fire"
    assert classify(policy, AT, "before", AT + timedelta(minutes=6)) == "missed"
    assert classify(policy, AT, "before", AT + timedelta(days=2)) == "drop"
    # A clock slightly behind the timer is on time, not "missed".
    assert classify(policy, AT, "before", AT - timedelta(seconds=1)) == "fire"


def test_grace_per_kind_and_no_max_age() -> None:
    policy = CatchUpPolicy(
        grace=timedelta(minutes=1), grace_by_kind={"due": timedelta(hours=1)}, max_age=None
    )
    late = AT + timedelta(minutes=30)
    assert classify(policy, AT, "due", late) == "fire"
    assert classify(policy, AT, "before", late) == "missed"
    assert classify(policy, AT, "before", AT + timedelta(days=365)) == "missed"


def test_reminder_id_is_deterministic_and_depends_on_all_three_parts() -> None:
    rid = reminder_id("t1", AT, 3)
    assert rid == reminder_id("t1", AT.astimezone(), 3)  # same instant, any zone
    assert (
        len(
            {
                rid,
                reminder_id("t2", AT, 3),
                reminder_id("t1", AT, 4),
                reminder_id("t1", AT + timedelta(seconds=1), 3),
            }
        )
        == 4
    )


def test_digest_id_ignores_item_order() -> None:
    assert digest_id("u", ["a", "b"]) == digest_id("u", ["b", "a"]) != digest_id("v", ["a", "b"])
