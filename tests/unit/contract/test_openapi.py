"""The committed OpenAPI documents are what the services serve (apps built in-process,
never started: no database, broker or socket)."""

from __future__ import annotations

import pytest

from tests.contract.documents import (
    OPENAPI_DIR,
    REGENERATE,
    SERVICES,
    Service,
    differences,
    load_json,
    served_openapi,
)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
async def test_the_committed_openapi_is_what_the_service_serves(service: Service) -> None:
    served = await served_openapi(service)
    assert service.path.exists(), f"{service.path} is missing: run `{REGENERATE}`"
    committed = load_json(service.path)
    assert committed == served, (
        f"{service.path.name} differs from {service.name}'s GET /openapi.json: "
        f"run `{REGENERATE}` and commit docs/api/ (a changed shape must stay compatible "
        "with the v1 contract: add, never rename or remove); differing: "
        + ", ".join(differences(committed, served))
    )


def test_every_committed_openapi_document_belongs_to_a_service() -> None:
    expected = {s.path.name for s in SERVICES}
    assert {p.name for p in OPENAPI_DIR.glob("*.json")} == expected
