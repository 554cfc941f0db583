"""Request schemas: what the API accepts and the field each rejection names."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from task_api.http.replies import parse_if_match
from task_api.http.schemas import SnoozeRequest, TaskCreate, TaskPatch
from webapi.problems import field_errors


def fields_of(model: type[Any], body: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {error["field"] for error in field_errors(caught.value)}


def test_full_valid_create() -> None:
    task = TaskCreate.model_validate(
        {
            "title": "x",
            "due_at": "2026-12-01T09:00:00-05:00",
            "timezone": "America/New_York",
            "priority": "low",
            "tags": ["a", "b", "a"],
            "reminders": [{"before": "P1DT2H"}],
            "recurrence": "RRULE:FREQ=WEEKLY;BYDAY=MO",
        }
    )
    assert task.tags == ["a", "b"]
    assert task.reminders[0].before == timedelta(days=1, hours=2)
    assert task.recurrence == "FREQ=WEEKLY;BYDAY=MO"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "due_at": "2026-12-01T09:00:00"}, "due_at"),
        ({"title": "x", "extra": 1}, "extra"),
        ({"title": "x" * 501}, "title"),
        (
            {"title": "x", "reminders": [{"before": "PT15M", "at": "2026-12-01T09:00:00Z"}]},
            "reminders.0",
        ),
        ({"title": "x", "reminders": [{"before": "P400D"}]}, "reminders.0"),
        ({"title": "x", "reminders": [{"before": "P1M"}]}, "reminders.0.before"),
        ({"title": "x", "timezone": "../../etc/passwd"}, "timezone"),
        ({"title": "x", "recurrence": "DTSTART:20260101T000000Z"}, "recurrence"),
        ({"title": "x", "recurrence": "FREQ=DAILY\nFREQ=WEEKLY"}, "recurrence"),
        ({"title": "x", "recurrence": "FREQ=DAILY;BYDAY=XX"}, "recurrence"),
    ],
)
def test_create_rejections(body: dict[str, Any], field: str) -> None:
    assert field in fields_of(TaskCreate, body)


def test_patch_tracks_present_fields_and_refuses_null_required() -> None:
    assert TaskPatch.model_validate({"due_at": None}).model_fields_set == {"due_at"}
    assert fields_of(TaskPatch, {"title": None, "tags": None}) == {"title", "tags"}
    assert TaskPatch.model_validate({"description": None}).description is None


def test_snooze_needs_exactly_one() -> None:
    assert SnoozeRequest.model_validate({"for": "PT1H"}).for_ == timedelta(hours=1)
    with pytest.raises(ValidationError):
        SnoozeRequest.model_validate({})
    with pytest.raises(ValidationError):
        SnoozeRequest.model_validate({"for_": "PT1H"})


@pytest.mark.parametrize(
    ("header", "version"),
    [(None, None), ("*", None), ('"3"', 3), ('W/"3"', 3), ("3", 3), ('"abc"', -1)],
)
def test_if_match(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version
