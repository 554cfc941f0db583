"""Hypothesis strategies for what can arrive on a TaskFlow topic, and a few sure-good events.

Bad values: random bytes, random JSON, and valid CloudEvents with one attribute or payload
field replaced or removed, a wrong type or version, or another event's payload. Headers:
none, random, or a `ce_type`/`traceparent` that lies or is not UTF-8.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from events.codec import Envelope, decode, encode
from events.errors import DecodeError
from events.payloads import NotificationBody, NotificationCreated, TaskCreated, TaskReminder

T = TypeVar("T")
Headers = list[tuple[str, bytes | None]]
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def task_created(user: str = "fuzz-user", due_in: timedelta | None = None) -> TaskCreated:
    return TaskCreated(
        id=uuid.uuid4(), user_id=user, title="fuzzed neighbour", created_at=T0, updated_at=T0,
        due_at=(datetime.now(UTC) + due_in) if due_in else None, version=1,
    )  # fmt: skip


def good_event(payload: Any, user: str = "fuzz-user") -> bytes:
    return encode(Envelope(data=payload, source="/fuzz", subject="s", user_id=user))


def _templates() -> list[dict[str, Any]]:
    note = NotificationBody(
        id=uuid.uuid4(), seq=1, kind="task.created", title="t", body="b",
        event_id=str(uuid.uuid4()), created_at=T0,
    )  # fmt: skip
    reminder = TaskReminder(
        reminder_id="r1", task_id=uuid.uuid4(), user_id="u", title="t", remind_at=T0,
        task_version=1, fired_at=T0,
    )  # fmt: skip
    payloads = [task_created(), reminder, NotificationCreated(user_id="u", notification=note)]
    return [orjson.loads(good_event(p)) for p in payloads]


TEMPLATES = _templates()


def _fresh(doc: Any) -> Any:
    """A deep copy of a template part: strategies mutate what they draw, never TEMPLATES."""
    return orjson.loads(orjson.dumps(doc))


EVENT_TYPES = sorted({t["type"] for t in TEMPLATES} | {"task.updated", "task.exploded", ""})

offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
    lambda delta: timezone(timedelta(minutes=delta // timedelta(minutes=1)))
)
# Any instant at any offset, and the calendar's edges, which may not exist in UTC.
times = st.datetimes(timezones=offsets).map(datetime.isoformat) | st.builds(
    lambda edge, tz: edge.replace(tzinfo=tz).isoformat(),
    st.sampled_from([datetime.min, datetime.max]),  # noqa: DTZ901 - made aware right here
    offsets,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    # Datetimes at any offset, the edges of the calendar included (year 1, year 9999).
    | st.datetimes(timezones=st.none() | st.just(UTC) | offsets).map(datetime.isoformat),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def mutated_events(draw: st.DrawFn, of_type: str | None = None) -> bytes:
    """A valid CloudEvent (of `of_type`, or any) with one or two things wrong with it."""
    templates = [t for t in TEMPLATES if of_type in (None, t["type"])]
    doc = _fresh(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(1, 2))):
        kinds = ["attribute", "field", "drop", "type", "version", "swap", "time"]
        where = draw(st.sampled_from(kinds))
        if where == "attribute":
            doc[draw(st.sampled_from(sorted(doc)))] = draw(json_values)
        elif where == "field" and isinstance(doc.get("data"), dict) and doc["data"]:
            doc["data"][draw(st.sampled_from(sorted(doc["data"])))] = draw(json_values)
        elif where == "drop":
            doc.pop(draw(st.sampled_from(sorted(doc))), None)
        elif where == "type":
            doc["type"] = draw(st.sampled_from(EVENT_TYPES))
        elif where == "version":
            doc["dataversion"] = draw(st.sampled_from(["2", "0", "-1", "x", "", "1.5"]))
        elif where == "swap":
            # A copy: a later "field" mutation must not write into the shared template.
            doc["data"] = _fresh(draw(st.sampled_from(TEMPLATES))["data"])
        elif where == "time":
            doc["time"] = draw(times)
    return orjson.dumps(doc)


@st.composite
def retimed_events(draw: st.DrawFn) -> bytes:
    """A valid CloudEvent whose `time` or one datetime field is any instant at any offset."""
    doc = _fresh(draw(st.sampled_from(TEMPLATES)))
    fields = [
        name for name, value in doc["data"].items() if isinstance(value, str) and "T" in value
    ]
    name = draw(st.sampled_from(["time", *fields]))
    (doc if name == "time" else doc["data"])[name] = draw(times)
    return orjson.dumps(doc)


values: st.SearchStrategy[bytes | None] = st.one_of(
    st.none(),
    retimed_events(),
    st.binary(max_size=300),
    json_values.map(orjson.dumps),
    mutated_events(),
    # Almost JSON: a valid event cut short, or with bytes that are not UTF-8 spliced in.
    st.builds(lambda raw, cut: raw[:cut], mutated_events(), st.integers(0, 200)),
    st.builds(
        lambda raw, junk: raw[:-2] + junk + raw[-2:],
        mutated_events(),
        st.binary(min_size=1, max_size=4),
    ),
)
header_values = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40).map(str.encode))
headers: st.SearchStrategy[Headers] = st.lists(
    st.tuples(st.sampled_from(["ce_type", "traceparent", "tracestate", "x"]) | st.text(max_size=8),
              header_values),
    max_size=4,
)  # fmt: skip
keys = st.none() | st.binary(max_size=16)


def is_undecodable(value: bytes | None) -> bool:
    try:
        decode(value)
    except DecodeError:
        return True
    return False


undecodable = values.filter(is_undecodable)


def collect(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` varied examples from Hypothesis's generator (the same ones on every CI run)."""
    found: list[T] = []

    @settings(
        max_examples=count, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(strategy)
    def draw(example: T) -> None:
        found.append(example)

    draw()
    return found
