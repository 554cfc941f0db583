"""Request schemas translate into the use cases' commands: present fields only, plain values."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from events.payloads import ReminderSpec
from task_api.commands import UpdateTask
from task_api.http.schemas import TaskCreate, TaskListQuery, TaskPatch


def test_create_carries_every_field_as_plain_values() -> None:
    command = TaskCreate.model_validate(
        {"title": "x", "tags": ["a", "a", "b"], "reminders": [{"before": "PT15M"}]}
    ).to_command()
    assert command.title == "x" and command.tags == ("a", "b")
    assert command.reminders == (ReminderSpec(before=timedelta(minutes=15)),)
    assert command.timezone == "UTC" and command.priority == "medium"


def test_patch_names_only_the_fields_in_the_body() -> None:
    task_id = uuid.uuid4()
    command = TaskPatch.model_validate({"title": "y", "due_at": None}).to_command(task_id, 3)
    assert command == UpdateTask(task_id, {"title": "y", "due_at": None}, 3)


def test_update_refuses_fields_that_are_not_writable() -> None:
    with pytest.raises(ValueError, match="not writable"):
        UpdateTask(uuid.uuid4(), {"status": "completed"})


def test_list_query_all_means_any_status() -> None:
    assert TaskListQuery(status="all").to_filter().status is None
    assert TaskListQuery(q="milk").to_filter().text == "milk"
