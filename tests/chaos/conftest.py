"""The chaos session: one system for all faults, its JSON lines printed at the end of the
run (and written to test-artifacts/chaos/results.jsonl as they come)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosSystem
from tests.chaos.runner import Chaos, ChaosSettings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"
RESULTS = ARTIFACTS / "results.jsonl"
LINES: list[str] = []
STARTED = time.monotonic()


def record(line: dict[str, object]) -> None:
    """Keep a fault's JSON line for the summary and append it to the results file."""
    text = json.dumps(line, sort_keys=False)
    LINES.append(text)
    with open(RESULTS, "a") as out:
        out.write(text + "\n")


@pytest.fixture(scope="session")
def chaos() -> Iterator[Chaos]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    # Outside pytest's basetemp: another session may chmod /tmp/pytest-of-root to 0700, and
    # the embedded server runs as its own user, which must reach its data dir.
    root = Path(tempfile.mkdtemp(prefix="taskflow-chaos-"))
    root.chmod(0o755)
    system = ChaosSystem(root / "data")
    session = Chaos(system, ChaosSettings())
    try:
        session.start()
        yield session
    finally:
        try:
            session.close()
            if system.process is not None:
                system.stop()
        finally:
            system.stop_postgres_if_left()
            system.kill_everything()
            system.keep_logs(ARTIFACTS / "logs")
            if not session.settings.keep:
                shutil.rmtree(root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LINES:
        return
    terminalreporter.section("chaos results (one JSON line per fault)")
    for line in LINES:
        terminalreporter.write_line(line)
    total = time.monotonic() - STARTED
    terminalreporter.write_line(json.dumps({"total_s": round(total, 1), "results": str(RESULTS)}))
