"""`taskflow snapshots republish` as `taskflow up` runs it: a process of its own, wired by
import (no `python -c` snippet). What it publishes is tested in
tests/integration/task_api/test_broker_reset.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable

from deploy.local import REPUBLISH
from events.kafka import KafkaSettings


def taskflow(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_the_command_taskflow_up_runs_after_an_empty_broker(
    create_database: Callable[[str], Awaitable[str]], kafka_settings: KafkaSettings
) -> None:
    env = os.environ | {
        "TASKFLOW_TASK_API_DATABASE_URL": await create_database("republish"),
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
        "OTEL_TRACES_EXPORTER": "none",
    }
    assert taskflow(["migrate", "task-api"], env).strip() == "migrated task-api"

    out = taskflow(list(REPUBLISH), env)
    assert re.fullmatch(r"republished 0 open tasks as task\.snapshot .*\n", out), out
