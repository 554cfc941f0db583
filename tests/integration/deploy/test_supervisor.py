"""The supervisor with small fake children (`python -c` scripts), not the real services."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from deploy.supervisor import Backoff, ChildSpec, NotReady, Supervisor

PY = sys.executable

pytestmark = pytest.mark.integration


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def script(code: str) -> list[str]:
    return [PY, "-c", code]


# Writes "<name>" to the record file when it gets SIGTERM, then exits.
ON_TERM = """
import signal, sys, time
name, record = sys.argv[1], sys.argv[2]
def bye(*_):
    with open(record, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open(record + "." + name + ".up", "w").close()
while True:
    time.sleep(0.05)
"""


def test_a_dead_child_is_restarted_with_growing_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    reports: list[str] = []
    counter = tmp_path / "starts"
    crash = f"open({str(counter)!r}, 'a').write('x'); print('boom'); raise SystemExit(3)"
    sup = Supervisor(
        [ChildSpec("crashy", script(crash))],
        tmp_path / "logs",
        report=reports.append,
        backoff=Backoff(initial=1.0, maximum=3.0, stable_after=60.0),
        clock=clock,
    )
    child = sup.child("crashy")
    sup.start_all()
    try:
        expected_delays = [1.0, 2.0, 3.0, 3.0]
        for attempt, delay in enumerate(expected_delays, start=1):
            assert child.process is not None
            child.process.wait(10)
            sup.poll()
            assert child.restart_at == clock.now + delay
            assert f"exited with code 3; restarting in {delay:.1f}s" in reports[-1]
            clock.now += delay - 0.01
            sup.poll()
            assert child.restarts == attempt - 1, "restarted before its backoff elapsed"
            clock.now += 0.01
            sup.poll()
            assert child.restarts == attempt
            assert reports[-1] == f"restarting crashy (restart #{attempt})"
        assert child.process is not None
        child.process.wait(10)
        assert counter.read_text() == "x" * (len(expected_delays) + 1)
        assert "boom" in (tmp_path / "logs" / "crashy.log").read_text()
    finally:
        sup.stop()


def test_backoff_resets_once_a_child_has_been_stable(tmp_path: Path) -> None:
    clock = FakeClock()
    flag = tmp_path / "crash-now"
    # Crashes only while the flag file exists, so the test decides when it dies.
    code = (
        "import os, time, sys\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.02)\n"
        "sys.exit(1)"
    )
    sup = Supervisor(
        [ChildSpec("flaky", script(code))],
        tmp_path / "logs",
        report=lambda _: None,
        backoff=Backoff(initial=1.0, maximum=30.0, stable_after=5.0),
        clock=clock,
    )
    child = sup.child("flaky")
    sup.start_all()
    try:
        flag.touch()
        assert child.process is not None
        child.process.wait(10)
        sup.poll()
        assert child.failures_in_a_row == 1
        flag.unlink()
        clock.now += 1.0
        sup.poll()  # restarted; now stays up
        clock.now += 5.0
        sup.poll()  # stable for `stable_after`: the backoff starts over
        assert child.failures_in_a_row == 0
        flag.touch()
        child.process.wait(10)
        sup.poll()
        assert child.restart_at == clock.now + 1.0
    finally:
        sup.stop()


def test_stop_goes_in_reverse_order_and_kills_the_stubborn(tmp_path: Path) -> None:
    record = tmp_path / "record"
    stubborn = (
        "import signal, time, subprocess, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        # A grandchild in the same process group must not outlive the stop either.
        "subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)'])\n"
        f"open({str(record)!r} + '.stubborn.up', 'w').close()\n"
        "while True: time.sleep(0.05)"
    )
    specs = [
        ChildSpec("first", [PY, "-c", ON_TERM, "first", str(record)]),
        ChildSpec("stubborn", script(stubborn)),
        ChildSpec("third", [PY, "-c", ON_TERM, "third", str(record)]),
    ]
    reports: list[str] = []
    sup = Supervisor(specs, tmp_path / "logs", report=reports.append, stop_timeout=1.0)
    sup.start_all()
    for name in ("first", "stubborn", "third"):
        until(Path(f"{record}.{name}.up").exists)
    stubborn_proc = psutil.Process(sup.child("stubborn").pid)
    until(lambda: len(stubborn_proc.children()) == 1)
    grandchild = stubborn_proc.children()[0]
    pids = list(sup.pids().values())
    began = time.monotonic()
    sup.stop()
    assert time.monotonic() - began >= 1.0, "the stubborn child was not given its timeout"
    assert record.read_text().splitlines() == ["third", "first"]
    assert [r.split(" (")[0] for r in reports] == [
        "stopped third",
        "stopped stubborn",
        "stopped first",
    ]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE)
    assert sup.pids() == {}


def test_wait_ready_polls_until_every_probe_answers(tmp_path: Path) -> None:
    answers = {"http://svc/readyz": iter([False, False, True])}
    sleeper = script("import time\nwhile True: time.sleep(0.05)")
    sup = Supervisor(
        [ChildSpec("svc", sleeper, ready_url="http://svc/readyz"), ChildSpec("flow", sleeper)],
        tmp_path / "logs",
        probe=lambda url: next(answers[url]),
    )
    seen: list[list[str]] = []
    sup.start_all()
    try:
        sup.wait_ready(10, interval=0.01, progress=lambda pending, _: seen.append(pending))
        assert seen == [["svc"], ["svc"], []]
    finally:
        sup.stop()


def test_not_ready_names_the_laggard_and_shows_its_log(tmp_path: Path) -> None:
    sleeper = script("print('cannot reach the database', flush=True)\nimport time\ntime.sleep(30)")
    sup = Supervisor(
        [ChildSpec("svc", sleeper, ready_url="http://svc/readyz")],
        tmp_path / "logs",
        probe=lambda url: False,
    )
    sup.start_all()
    log = tmp_path / "logs" / "svc.log"
    until(lambda: "cannot reach" in log.read_text())
    try:
        with pytest.raises(NotReady) as caught:
            sup.wait_ready(0.3, interval=0.01)
        assert caught.value.names == ["svc"]
        assert "not ready in time: svc" in str(caught.value)
        assert "cannot reach the database" in caught.value.tails["svc"]
    finally:
        sup.stop()


# On SIGTERM, waits until its partner got SIGTERM too, then records itself and exits: both
# records appear only if the two were signalled together, not one after the other.
PARTNERS = """
import os, signal, sys, time
name, partner, record = sys.argv[1], sys.argv[2], sys.argv[3]
def bye(*_):
    open(record + "." + name + ".term", "w").close()
    while not os.path.exists(record + "." + partner + ".term"):
        time.sleep(0.01)
    with open(record, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open(record + "." + name + ".up", "w").close()
while True:
    time.sleep(0.05)
"""


def test_a_stage_is_stopped_together_after_the_later_stage(tmp_path: Path) -> None:
    record = tmp_path / "record"
    specs = [
        ChildSpec("api-1", [PY, "-c", PARTNERS, "api-1", "api-2", str(record)], stage="apis"),
        ChildSpec("api-2", [PY, "-c", PARTNERS, "api-2", "api-1", str(record)], stage="apis"),
        ChildSpec("flow", [PY, "-c", ON_TERM, "flow", str(record)], stage="flows"),
    ]
    sup = Supervisor(specs, tmp_path / "logs", report=lambda _: None, stop_timeout=5.0)
    assert [[c.spec.name for c in stage] for stage in sup.stages()] == [
        ["api-1", "api-2"],
        ["flow"],
    ]
    sup.start_all()
    for name in ("api-1", "api-2", "flow"):
        until(Path(f"{record}.{name}.up").exists)
    sup.stop()
    lines = record.read_text().splitlines()
    assert lines[0] == "flow"
    assert sorted(lines[1:]) == ["api-1", "api-2"], "the two APIs were not stopped together"
