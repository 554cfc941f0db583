"""Hypothesis: whatever bytes or near-valid CloudEvents arrive, decode raises only DecodeError."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import Envelope, decode, encode
from events.errors import DecodeError
from events.payloads import TaskCreated
from tests.unit.events.test_codec import sample

VALID: dict[str, Any] = orjson.loads(
    encode(Envelope(data=sample(TaskCreated), source="/s", subject="x", user_id="alice"))
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def decodes_or_rejects(raw: bytes) -> None:
    try:
        decode(raw)
    except DecodeError:
        pass


@given(st.binary(max_size=512))
def test_random_bytes(raw: bytes) -> None:
    decodes_or_rejects(raw)


@given(json_values)
def test_random_json(value: Any) -> None:
    decodes_or_rejects(orjson.dumps(value))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(VALID)),
    json_values,
    st.sampled_from(sorted(VALID["data"])),
    json_values,
)
def test_valid_event_with_one_attribute_and_one_field_replaced(
    attribute: str, attribute_value: Any, field: str, field_value: Any
) -> None:
    doc = orjson.loads(orjson.dumps(VALID))
    doc[attribute] = attribute_value
    if isinstance(doc.get("data"), dict):
        doc["data"][field] = field_value
    decodes_or_rejects(orjson.dumps(doc))
