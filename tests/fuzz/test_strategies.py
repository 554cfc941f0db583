"""The message strategies themselves: drawing from them never changes what later draws see.

A "swap" once shared a template's payload with the event it mutated, so a later mutation
wrote into `TEMPLATES` and other strategies then drew from a corrupted template (a list
where a dict belongs). No I/O."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings

from tests.fuzz.messages import TEMPLATES, mutated_events, retimed_events, values

PRISTINE = orjson.dumps(TEMPLATES)


@settings(
    max_examples=max(500, settings().max_examples), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(mutated_events() | mutated_events("notification.created") | retimed_events() | values)
def test_drawing_events_leaves_the_templates_alone(value: bytes | None) -> None:
    assert orjson.dumps(TEMPLATES) == PRISTINE
