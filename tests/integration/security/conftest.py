"""A Tansu broker behind a TLS terminator, and a PKI made for this test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.broker import LocalBroker, free_port, start_broker
from tests.integration.security.pki import Pki, make_pki
from tests.integration.security.tls_proxy import TlsTerminator


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTerminator]:
    """Tansu on a plaintext port that advertises the TLS port, so every connection a
    client makes after bootstrap goes through TLS too."""
    plain_port = free_port()
    proxy = TlsTerminator(pki.server_cert, pki.server_key, plain_port).start()
    log = tmp_path_factory.mktemp("tls-broker") / "tansu.log"
    broker: LocalBroker | None = None
    try:
        broker = start_broker(
            plain_port, log_file=log, die_with_parent=True, advertised_port=proxy.port
        )
        yield proxy
    finally:
        if broker is not None:
            broker.stop()
        proxy.stop()
