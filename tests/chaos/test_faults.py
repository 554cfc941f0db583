"""Chaos suite: the whole system under a steady two-user load, one fault at a time; after
each, recovery is measured and the oracle finds no lost, duplicated or unexpected effect.

Run with `.venv/bin/pytest tests/chaos` (not part of the default test paths). The faults
run in this order on one system; see docs/chaos.md.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos import faults
from tests.chaos.conftest import record
from tests.chaos.oracle import Verdict
from tests.chaos.runner import Chaos, FaultAction

pytestmark = pytest.mark.chaos

POISON = faults.PoisonFault()
FAULTS: dict[str, FaultAction] = {
    **faults.KILLS,
    "broker-freeze": faults.freeze_broker,
    "postgres-restart": faults.restart_postgres,
    "postgres-terminate-backends": faults.terminate_backends,
    "slow-consumer": faults.slow_consumer,
    "poison": POISON,
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(chaos: Chaos, name: str) -> None:
    judge_dlq: Callable[[Verdict], None]
    if name == "poison":
        judge_dlq = POISON.judge(chaos)
    else:
        judge_dlq = faults.dlq_holds_no_real_event(chaos)
    result = chaos.fault(name, FAULTS[name], judge_dlq)
    record(result.line())
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0), result.issues
