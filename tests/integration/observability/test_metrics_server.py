"""A dataflow's own /metrics port serves its registry in the Prometheus text format."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import MessagingMetrics, new_registry, serve_metrics

pytestmark = pytest.mark.integration


def test_serve_metrics_on_a_port_of_its_own() -> None:
    registry = new_registry()
    MessagingMetrics(registry).event_consumed("taskflow.tasks", "task.created", 0.01)
    server = serve_metrics(registry, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    consumed = families["taskflow_events_consumed"]
    assert [s.value for s in consumed.samples if s.name.endswith("_total")] == [1.0]
    assert "process_resident_memory_bytes" in families or "python_info" in families
