"""Runs Schemathesis over every operation of a served OpenAPI document, both generation modes.

One bounded Hypothesis run per (operation, mode); every failure is collected, then
reported. In CI the fuzz conftest makes runs derandomized, without an example database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.specs.openapi import checks as oa

from webapi.hardening import WebSecuritySettings

# Every response check that applies to these APIs. Not here, with the reason:
# - positive/negative data acceptance: they judge by status alone, and a 404 or 409 for a
#   well-formed request about something that is not there is right, not a bug;
# - the stateful-only checks (use_after_free, ensure_resource_availability) run in the
#   state machine tests.
RESPONSE_CHECKS: tuple[CheckFunction, ...] = (
    schemathesis.checks.not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_headers_conformance,
    oa.response_schema_conformance,
)

# The served app runs in this process (its own thread), and its libraries (backoff jitter,
# librdkafka callbacks) draw from the global `random` while Hypothesis generates a case;
# Hypothesis cannot tell that thread from the strategy and warns. The strategies here are
# Schemathesis's, which take their randomness from Hypothesis.
SERVER_THREAD = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)


# Rate limits off: a fuzz run is one user calling as fast as it can, and a 429 tells
# nothing about the schema. (The limiter has its own tests.)
NO_RATE_LIMITS = WebSecuritySettings(rate_limit_enabled=False)


@dataclass
class FuzzReport:
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def api_successes(self) -> int:
        """2xx answers from `/api/` operations: proof that the token was taken."""
        return sum(
            n for (label, status), n in self.statuses.items() if "/api/" in label and status < 300
        )


def fuzz_api(
    base_url: str,
    headers: dict[str, str] | None,
    max_examples: int,
    modes: Sequence[GenerationMode] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    checks: Sequence[CheckFunction] = RESPONSE_CHECKS,
    skip: Sequence[str] = (),
) -> FuzzReport:
    """Fuzz every operation of `{base_url}/openapi.json`; returns what failed, per operation."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    session = requests.Session()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"invalid operation in the schema: {result}"
        operation = result.ok()
        if operation.label in skip:
            continue
        for mode in modes:

            @settings(
                max_examples=max_examples,
                deadline=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Case) -> None:
                report.calls += 1
                response = case.call_and_validate(
                    base_url=base_url, session=session, headers=headers, checks=list(checks)
                )
                report.statuses[(case.operation.label, response.status_code)] += 1

            try:
                one()
            except Unsatisfiable:
                # Nothing about this operation can be made invalid (no parameters, no body).
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid input"
            except (AssertionError, BaseExceptionGroup) as exc:  # every operation gets its turn
                report.failures.append(f"{operation.label} [{mode}]: {describe(exc)}")
    return report


def describe(exc: BaseException) -> str:
    """The message of an exception and of everything grouped inside it (flaky runs too)."""
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join("\n  " + describe(inner).replace("\n", "\n  ") for inner in exc.exceptions)
    return text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_clean(signed_in: FuzzReport, *others: FuzzReport) -> None:
    """Fail with every finding (not just the first), so one run shows all of them."""
    reports = (signed_in, *others)
    failures = [failure for report in reports for failure in report.failures]
    assert not failures, f"{len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)
    assert all(report.calls > 0 for report in reports), "a run made no request"
    assert signed_in.api_successes() > 0, f"no API call succeeded: {signed_in.statuses}"


def run_state_machine(
    base_url: str, headers: dict[str, str], max_examples: int, max_steps: int = 8
) -> int:
    """Schemathesis's stateful run: chains of calls along the (inferred) OpenAPI links.

    Returns how many responses feed links, so a test can insist the run was stateful.
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    machine = schema.as_state_machine()

    checks = [*RESPONSE_CHECKS, oa.use_after_free, oa.ensure_resource_availability]

    class Calls(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, object]:
            return {"base_url": base_url, "headers": headers}

        def validate_response(
            self, response: Response, case: Case, additional_checks: object = None, **kw: object
        ) -> None:
            case.validate_response(
                response, checks=checks, transport_kwargs=kw or None, recorder=self.recorder
            )

    Calls.run(
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=max_steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    return len(machine.bundles)
