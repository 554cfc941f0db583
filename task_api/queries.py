"""Read side of the task service: filtered, keyset-paged listing."""

from __future__ import annotations

import uuid

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from task_api.commands import TaskFilter
from task_api.db.models import Task
from webapi.paging import decode_cursor, encode_cursor


async def list_tasks(
    conn: BaseDBAsyncClient, user_id: str, query: TaskFilter
) -> tuple[list[Task], str | None]:
    """One page of the user's tasks in id (creation) order, and the cursor of the next."""
    filters = Task.filter(user_id=user_id)
    if query.status is not None:
        filters = filters.filter(status=query.status)
    if query.tag:
        filters = filters.filter(tags__contains=[query.tag])
    if query.text:
        # Tortoise escapes LIKE wildcards in the value itself.
        text = query.text
        filters = filters.filter(Q(title__icontains=text) | Q(description__icontains=text))
    if query.due_before:
        filters = filters.filter(due_at__lt=query.due_before)
    if query.due_after:
        filters = filters.filter(due_at__gte=query.due_after)
    if query.priority:
        filters = filters.filter(priority=query.priority)
    if query.cursor:
        (last_id,) = decode_cursor(query.cursor, 1)
        try:
            filters = filters.filter(id__gt=uuid.UUID(str(last_id)))
        except ValueError:
            decode_cursor("", 1)
    rows = await filters.order_by("id").limit(query.limit + 1).using_db(conn)
    page = list(rows[: query.limit])
    next_cursor = encode_cursor(str(page[-1].id)) if len(rows) > query.limit else None
    return page, next_cursor
