"""A background part that dies takes the notification process down (to be restarted)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from notify_ws.service import Service


async def test_a_crashed_background_task_calls_on_fatal() -> None:
    service = Service(cast(Any, object()))
    fatal = asyncio.Event()
    service.on_fatal = fatal.set

    async def crash() -> None:
        raise RuntimeError("boom")

    service._spawn("worker", crash())
    await asyncio.wait_for(fatal.wait(), 5)
    assert fatal.is_set()


async def test_a_crash_while_stopping_is_not_fatal() -> None:
    service = Service(cast(Any, object()))
    calls: list[str] = []
    service.on_fatal = lambda: calls.append("fatal")
    service.stop_event.set()

    async def crash() -> None:
        raise RuntimeError("late")

    service._spawn("worker", crash())
    await asyncio.gather(*service._tasks, return_exceptions=True)
    await asyncio.sleep(0)  # let the done-callback run
    assert calls == []
