"""`TASKFLOW_UP_SPLIT_PROCESSES`: the relay, the notification worker and the hub as processes
of their own (so each can fail alone), with the default layout unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local_env import COMPONENTS, Layout, UpSettings, child_specs


def test_split_runs_relay_worker_and_hub_apart_and_stops_the_api_before_its_relay() -> None:
    specs = child_specs(
        COMPONENTS, Layout(Path("/data")), {"X": "1"}, {"TASKFLOW_NOTIFY_PORT": "9802"},
        split_worker_port=9805,
    )  # fmt: skip
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == [
        "notify-worker",
        "notify-hub",
        "audit",
        "reminders",
        "audit-flow",
        "reminders-flow",
        "relay",
        "task-api",
    ]
    # Stages stop in reverse: the API first, then its relay publishes what it wrote last.
    assert [s.stage for s in specs][-2:] == ["relay", "producer"]

    worker, hub = by_name["notify-worker"], by_name["notify-hub"]
    assert worker.argv[-2:] == ["--port", "9805"] and hub.argv[-2:] == ["--port", "9802"]
    assert worker.ready_url == "http://127.0.0.1:9805/readyz"
    assert worker.env["TASKFLOW_NOTIFY_RUN_HUB"] == "false"
    assert hub.env["TASKFLOW_NOTIFY_RUN_WORKER"] == "false"
    assert hub.env["TASKFLOW_NOTIFY_RUN_DISPATCHER"] == "false"
    assert "TASKFLOW_NOTIFY_RUN_WORKER" not in worker.env

    relay, api = by_name["relay"], by_name["task-api"]
    assert relay.argv[1:] == ["-m", "deploy.cli", "relay"] and relay.ready_url is None
    assert api.env["TASKFLOW_TASK_API_RUN_RELAY"] == "false" and api.env["X"] == "1"
    assert "TASKFLOW_TASK_API_RUN_RELAY" not in relay.env


def test_split_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKFLOW_UP_SPLIT_PROCESSES", raising=False)
    assert UpSettings().split_processes is False
    names = [s.name for s in child_specs(COMPONENTS, Layout(Path("/d")), {}, {})]
    assert "relay" not in names and "notify" in names and "notify-worker" not in names
