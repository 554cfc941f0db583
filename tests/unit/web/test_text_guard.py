from typing import Any

import pytest

from webapi.text_guard import nul_path


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("plain", None),
        ({"title": "ok", "tags": ["a", "b"]}, None),
        ("a\x00b", "body"),
        ({"title": "a\x00"}, "title"),
        ({"tags": ["ok", "b\x00"]}, "tags.1"),
        ({"reminders": [{"before": "PT1M", "note": {"x": "\x00"}}]}, "reminders.0.note.x"),
        ({"ke\x00y": 1}, "ke\x00y"),
        ([1, None, True, 2.5], None),
    ],
)
def test_nul_path_names_the_first_field_holding_nul(value: Any, path: str | None) -> None:
    assert nul_path(value) == path
