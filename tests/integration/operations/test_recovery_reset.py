"""`taskflow recovery reset`: refused while the flow runs or `taskflow up` holds the data
dir; otherwise the store starts afresh with as many partitions, the old one kept beside it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from deploy.cli import main
from deploy.local_env import Layout
from deploy.local_steps import exclusive
from events.kafka import KafkaSettings
from tests.integration.audit.support import flow_env, init_recovery, start_flow


def stores(directory: Path) -> list[str]:
    """The partition files; a running flow adds SQLite's -wal/-shm beside them."""
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".sqlite3")


def reset(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["recovery", "reset", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_refused_while_the_flow_runs_then_reset_keeping_the_old_store(
    kafka_settings: KafkaSettings,
    audit_db_session: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recovery = tmp_path / "recovery" / "audit"
    init_recovery(recovery, partitions=2)
    flow = start_flow(flow_env(kafka_settings, audit_db_session, tail=True), recovery, workers=1)
    try:
        code, _, err = reset(["audit", "--recovery-dir", str(recovery)], capsys)
        assert code == 1
        assert f"a dataflow (pid {flow.pid}) uses {recovery}" in err
        assert stores(recovery) == ["part-0.sqlite3", "part-1.sqlite3"]
    finally:
        flow.send_signal(signal.SIGINT)
        try:
            flow.wait(30)
        except subprocess.TimeoutExpired:
            flow.kill()
            flow.wait()

    code, out, err = reset(["audit", "--recovery-dir", str(recovery)], capsys)
    assert code == 0, err
    (backup,) = (p for p in recovery.parent.iterdir() if p.name.startswith("audit.before-reset-"))
    assert f"(2 partitions); the old store is in {backup}" in out
    assert stores(backup) == ["part-0.sqlite3", "part-1.sqlite3"]
    assert sorted(p.name for p in recovery.iterdir()) == ["part-0.sqlite3", "part-1.sqlite3"]


def test_refused_while_taskflow_up_holds_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKFLOW_RECOVERY_DIR", raising=False)
    layout = Layout(tmp_path / "data")
    store = tmp_path / "data" / "recovery" / "reminders"
    init_recovery(store)
    with exclusive(layout.lock) as mine:
        assert mine
        code, _, err = reset(["reminders", "--data-dir", str(layout.root)], capsys)
    assert code == 1 and "`taskflow up` (pid" in err

    code, out, _ = reset(["reminders", "--data-dir", str(layout.root), "--no-backup"], capsys)
    assert code == 0
    assert f"reset reminders recovery in {store} (1 partitions)" in out
    assert "taskflow snapshots republish" in out
    assert [p.name for p in (tmp_path / "data" / "recovery").iterdir()] == ["reminders"]
