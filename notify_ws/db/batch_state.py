"""What the worker reads before it decides a batch, in one round trip.

Three reads (erased users, preferences, applied task versions, the last row-locked) were
three statements; at low rates each batch is one event, so they were three of its eight
round trips. One statement reads them all. It runs after the user locks (`erasure.
lock_users`), so its snapshot, taken when it starts, sees an erasure committed while the
batch waited for them, as the separate `erased_among` did.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from notify_ws.preferences import Preferences

_READ = """
WITH versions AS (
    SELECT task_id, version FROM task_versions
    WHERE task_id = ANY($2::uuid[]) ORDER BY task_id FOR UPDATE
)
SELECT 'erased' AS part, user_id, NULL::jsonb AS doc, NULL::uuid AS task_id,
       NULL::bigint AS version
FROM erased_users WHERE user_id = ANY($1::text[])
UNION ALL
SELECT 'prefs', user_id, doc, NULL, NULL FROM preferences WHERE user_id = ANY($1::text[])
UNION ALL
SELECT 'version', NULL, NULL, task_id, version FROM versions
"""


@dataclass(frozen=True, slots=True)
class BatchState:
    erased: set[str]
    # Every user asked about; defaults for those who never set preferences.
    prefs: dict[str, Preferences]
    # Applied versions of the tasks asked about, row-locked until the transaction ends.
    versions: dict[uuid.UUID, int]


async def load(conn: Any, users: Sequence[str], task_ids: Sequence[uuid.UUID]) -> BatchState:
    """Erased users among `users`, their preferences, and the applied (locked) versions of
    `task_ids`, in the caller's transaction."""
    erased: set[str] = set()
    found: dict[str, Preferences] = {}
    versions: dict[uuid.UUID, int] = {}
    for row in await conn.fetch(_READ, list(users), list(task_ids)):
        part = row["part"]
        if part == "erased":
            erased.add(row["user_id"])
        elif part == "prefs":
            found[row["user_id"]] = Preferences.model_validate_json(row["doc"])
        else:
            versions[row["task_id"]] = row["version"]
    prefs = {user: found.get(user) or Preferences() for user in users}
    return BatchState(erased, prefs, versions)
