"""Hypothesis against the MCP tools, arguments drawn from each tool's own input schema and
from arbitrary JSON: every call answers (a result or a tool error), never a crash or a 5xx.
Real PostgreSQL and Tansu, real Hypercorn.

The strategies come from the JSON schemas by `schema_strategy` below: hypothesis-jsonschema
0.23 (the latest) fails inside its object strategy with this Hypothesis (6.170).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.kafka import KafkaSettings
from task_api.app import create_app
from task_api.mcp.tools import TOOLS
from task_api.settings import Config, TaskApiSettings
from tests.fuzz.api_fuzz import NO_RATE_LIMITS, SERVER_THREAD
from tests.fuzz.served import served
from tests.integration.task_api.conftest import SECRET
from webapi.auth import AuthSettings, issue_token

pytestmark = [pytest.mark.integration, SERVER_THREAD]


def schema_strategy(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Values valid by `schema` (the subset of JSON Schema pydantic emits for our models)."""
    root = root or schema
    if "$ref" in schema:
        return schema_strategy(root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "anyOf" in schema:
        return st.one_of([schema_strategy(option, root) for option in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {name: schema_strategy(prop, root) for name, prop in props.items()}
        optional = [name for name in props if name not in required]
        return st.fixed_dictionaries(
            {name: fields[name] for name in required},
            optional={name: fields[name] for name in optional},
        )
    if kind == "array":
        items = schema_strategy(schema.get("items", {}), root)
        return st.lists(items, max_size=min(schema.get("maxItems", 4), 4))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        return FORMATS.get(
            schema.get("format", ""),
            st.text(
                min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 60), 60)
            ),
        )
    return JSON


FORMATS: dict[str, Any] = {
    "date-time": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    | st.sampled_from(["2030-01-01T09:00:00", "2030-13-01T00:00:00Z", "yesterday"]),
    "duration": st.sampled_from(["PT15M", "P1D", "PT0S", "P400D", "PT-1H", "P", "soon"]),
    "uuid": st.uuids().map(str) | st.sampled_from(["not-a-uuid", ""]),
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
ARBITRARY = st.dictionaries(st.text(max_size=20), JSON, max_size=5)
# Valid by schema, or arbitrary, or valid with one field replaced by anything.
CALLS = st.sampled_from(TOOLS).flatmap(
    lambda tool: st.tuples(
        st.just(tool.name),
        st.one_of(
            schema_strategy(tool.input_schema()),
            ARBITRARY,
            st.tuples(schema_strategy(tool.input_schema()), st.text(max_size=15), JSON).map(
                lambda t: {**t[0], t[1]: t[2]}
            ),
        ),
    )
)
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Authorization": f"Bearer {issue_token(SECRET, 'mcp-fuzz')}",
    "MCP-Protocol-Version": "2025-06-18",
}


def rpc_result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or SSE answer."""
    assert response.status_code < 500, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        # SSE lines end at CR/LF only (str.splitlines would also split at U+2028 in data).
        lines = response.text.replace("\r\n", "\n").split("\n")
        data = [line[5:].strip() for line in lines if line.startswith("data:")]
        message: dict[str, Any] = orjson.loads([d for d in data if d][-1])
    else:
        message = response.json()
    return message


def open_session(http: httpx.Client) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fuzz", "version": "0"},
        },
    }
    first = http.post("/mcp", json=init, headers=HEADERS)
    assert "result" in rpc_result(first)
    headers = {**HEADERS, "Mcp-Session-Id": first.headers["mcp-session-id"]}
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert http.post("/mcp", json=done, headers=headers).status_code == 202
    return headers


def test_tool_calls_never_crash(task_db_url: str, kafka_settings: KafkaSettings) -> None:
    config = Config(
        service=TaskApiSettings(database_url=task_db_url, db_pool_size=5),
        kafka=kafka_settings,
        auth=AuthSettings(jwt_secret=SECRET),
        security=NO_RATE_LIMITS,
    )
    outcomes: dict[str, int] = {"ok": 0, "tool_error": 0}
    with (
        served(lambda: create_app(config)) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        headers = open_session(http)

        @settings(
            max_examples=120,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(CALLS)
        def call(named: tuple[str, dict[str, Any]]) -> None:
            name, arguments = named
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
            message = rpc_result(http.post("/mcp", json=body, headers=headers))
            assert "result" in message, message
            result = message["result"]
            assert "unexpected error" not in orjson.dumps(result).decode(), result
            outcomes["tool_error" if result.get("isError") else "ok"] += 1

        call()
    assert outcomes["ok"] > 0 and outcomes["tool_error"] > 0, outcomes
