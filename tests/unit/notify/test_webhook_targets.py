"""Webhook targets (SSRF): address classes, host spellings, resolve-then-vet with a fake
resolver, and the channel's pinning, redirects and bounds against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Any

import httpx
import pytest

from notify_ws.channels.base import Outgoing
from notify_ws.channels.webhook import Webhook
from notify_ws.channels.webhook_targets import (
    TargetPolicy,
    TargetRefused,
    TargetUnresolved,
    forbidden_reason,
    ip_literal,
)
from notify_ws.db.notifications import Notification
from notify_ws.exceptions import ChannelError
from notify_ws.preferences import Preferences
from notify_ws.settings import Config, NotifySettings
from webapi.auth import AuthSettings

SECRET = "webhook-secret-for-unit-tests-0123456789"
PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - a value under test
        ("0.1.2.3", "private"),  # "this network"
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("192.0.2.10", "private"),  # documentation
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.5", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback (carried in 2002:7f00:1::)"),  # 6to4 of 127.0.0.1
        ("2002:a00:5::", "private (carried in 2002:a00:5::)"),  # 6to4 of 10.0.0.5
        ("64:ff9b::a9fe:a9fe", "link-local (carried in 64:ff9b::a9fe:a9fe)"),  # NAT64
        # Teredo, client 127.0.0.1 (stored inverted in the low 32 bits).
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "loopback (carried in 2001:0:4136:e378:8000:63bf:80ff:fffe)",
        ),
    ],
)
def test_non_public_addresses_are_forbidden(address: str, reason: str) -> None:
    assert forbidden_reason(ip_address(address)) == reason


@pytest.mark.parametrize("address", ["240.0.0.1", "255.255.255.255", "198.18.0.1", "::7f00:1"])
def test_reserved_ranges_are_forbidden(address: str) -> None:
    # "reserved" or "private": Python versions file some ranges under either.
    assert forbidden_reason(ip_address(address)) in {"reserved", "private"}


@pytest.mark.parametrize(
    "address", [PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),  # decimal
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0x7f.0.0.1", "127.0.0.1"),  # hex parts
        ("0x7F000001", "127.0.0.1"),  # one hex number
        ("127.1", "127.0.0.1"),  # short
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot
        ("[::1]", "::1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("169.254.169.254", "169.254.169.254"),
    ],
)
def test_address_spellings_are_read_as_addresses(host: str, expected: str) -> None:
    assert ip_literal(host) == ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "cafe.be", "hooks.internal", "1.2.3.4.5", ""])
def test_names_are_not_addresses(host: str) -> None:
    assert ip_literal(host) is None


class FakeResolver:
    """Answers from a table; records what was asked; never touches the network."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise OSError(-2, "Name or service not known")
        return self.table[host]


def policy(table: dict[str, list[str]] | None = None, **allow: Any) -> TargetPolicy:
    return TargetPolicy.build(True, FakeResolver(table or {}), **allow)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://[::1]:8003/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://localhost:8001/",
        "http://api.localhost/",
        "http://100.64.1.1/",
    ],
)
async def test_internal_urls_are_refused_without_a_lookup(url: str) -> None:
    targets = policy()
    with pytest.raises(TargetRefused):
        await targets.vet(url)
    assert await targets.check_url(url) is not None
    assert targets.resolver.asked == []  # type: ignore[attr-defined]


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    targets = policy({"hooks.example.com": ["10.1.2.3"]})
    with pytest.raises(TargetRefused, match=r"hooks.example.com resolves to 10.1.2.3 is private"):
        await targets.vet("https://hooks.example.com/in")
    assert targets.resolver.asked == [("hooks.example.com", 443)]  # type: ignore[attr-defined]


async def test_one_forbidden_address_among_public_ones_is_enough_to_refuse() -> None:
    targets = policy({"rebind.example.com": [PUBLIC, "::1"]})
    with pytest.raises(TargetRefused, match="::1 is loopback"):
        await targets.vet("http://rebind.example.com:8080/")


async def test_public_names_give_their_vetted_addresses_in_order() -> None:
    targets = policy({"hooks.example.com": ["2606:4700:4700::1111", PUBLIC, PUBLIC]})
    got = await targets.vet("http://hooks.example.com/")
    assert got == (ip_address("2606:4700:4700::1111"), ip_address(PUBLIC))


async def test_unresolvable_names_fail_at_delivery_but_may_be_saved() -> None:
    targets = policy()
    with pytest.raises(TargetUnresolved):
        await targets.vet("http://nowhere.example.com/")
    assert await targets.check_url("http://nowhere.example.com/") is None


async def test_a_lookup_that_hangs_does_not_hold_up_saving() -> None:
    never = asyncio.Event()

    async def hangs(host: str, port: int) -> Sequence[str]:
        await never.wait()
        return []

    targets = TargetPolicy.build(True, hangs)
    assert await targets.check_url("http://slow.example.com/", timeout=0.01) is None


async def test_allow_list_admits_named_hosts_and_networks() -> None:
    targets = policy(
        {"hooks.corp.example": ["10.20.0.7"], "other.corp.example": ["10.30.0.1"]},
        hosts=["Receiver.Internal."],
        networks=[IPv4Network("10.20.0.0/16")],
    )
    assert await targets.vet("http://receiver.internal:9000/") is None  # connect by name
    assert await targets.vet("http://hooks.corp.example/") == (IPv4Address("10.20.0.7"),)
    assert await targets.vet("http://[::ffff:10.20.0.9]/") == (ip_address("::ffff:10.20.0.9"),)
    with pytest.raises(TargetRefused):
        await targets.vet("http://other.corp.example/")
    with pytest.raises(TargetRefused):
        await targets.vet("http://10.0.0.5/")


async def test_local_mode_allows_everything_and_looks_nothing_up() -> None:
    resolver = FakeResolver({})
    targets = TargetPolicy.build(False, resolver)
    assert await targets.vet("http://127.0.0.1:8001/x") is None
    assert await targets.check_url("http://10.0.0.5/") is None
    assert resolver.asked == []


def test_local_mode_needs_both_environment_switches() -> None:
    local = NotifySettings(env="local")
    prod = NotifySettings(env="production", webhook_secret=SECRET)
    assert Config(notify=local, auth=AuthSettings(env="local")).local
    assert not Config(notify=prod, auth=AuthSettings(env="local")).local
    strict_auth = AuthSettings(env="production", jwt_secret="j" * 40)
    assert not Config(notify=local, auth=strict_auth).local


def test_allow_list_settings_parse_and_reject_bad_networks() -> None:
    s = NotifySettings(
        webhook_allowed_hosts=["hooks.internal"],
        webhook_allowed_networks=["10.20.0.0/16", "fd00:1::/64"],
    )
    assert [str(n) for n in s.webhook_allowed_networks] == ["10.20.0.0/16", "fd00:1::/64"]
    with pytest.raises(ValueError, match="webhook_allowed_networks"):
        NotifySettings(webhook_allowed_networks=["10.20.0.1/16"])  # host bits set


# The channel, with httpx.MockTransport standing in for the network.

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def message(url: str) -> Outgoing:
    note = Notification(uuid.UUID(int=1), "u", 1, "task.created", "t", "b", None, "e1", T0)
    prefs = Preferences.model_validate({"channels": {"webhook": True}, "webhook_url": url})
    return Outgoing("u", [note], prefs)


def settings(**overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {"env": "production", "webhook_secret": SECRET}
    return NotifySettings(**(values | overrides))


def reply(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    """A streamed answer, as a real transport gives (MockTransport's bytes come pre-read)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    return httpx.Response(status, headers=headers, content=body())


class Seen:
    def __init__(self, answer: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response: httpx.Response = self.answer(request)
        return response


async def send(
    url: str, targets: TargetPolicy, answer: Any, **overrides: Any
) -> tuple[Seen, str | ChannelError]:
    seen = Seen(answer)
    hook = Webhook(settings(**overrides), lambda: 1_700_000_000.0, targets,
                   transport=httpx.MockTransport(seen))  # fmt: skip
    await hook.start()
    try:
        return seen, await hook.deliver(message(url))
    except ChannelError as exc:
        return seen, exc
    finally:
        await hook.close()


async def test_delivery_connects_to_the_vetted_address_by_name() -> None:
    targets = policy({"hooks.example.com": [PUBLIC]})
    seen, outcome = await send("https://hooks.example.com:8443/in?x=1", targets,
                               lambda r: reply(204))  # fmt: skip
    assert outcome == "delivered"
    (request,) = seen.requests
    assert request.url.host == PUBLIC and request.url.port == 8443
    assert request.url.path == "/in" and request.url.query == b"x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


async def test_a_name_rebound_to_loopback_is_a_permanent_failure_and_nothing_is_sent() -> None:
    targets = policy({"hooks.example.com": ["127.0.0.1"]})
    seen, outcome = await send("http://hooks.example.com/in", targets,
                               lambda r: reply(200))  # fmt: skip
    assert isinstance(outcome, ChannelError) and outcome.permanent
    assert "127.0.0.1 is loopback" in str(outcome)
    assert seen.requests == []


async def test_an_address_saved_earlier_is_checked_again_at_delivery() -> None:
    seen, outcome = await send("http://169.254.169.254/latest/meta-data/", policy(),
                               lambda r: reply(200))  # fmt: skip
    assert isinstance(outcome, ChannelError) and outcome.permanent
    assert seen.requests == []


async def test_the_next_vetted_address_is_tried_when_one_does_not_connect() -> None:
    targets = policy({"hooks.example.com": ["2606:4700:4700::1111", PUBLIC]})

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host != PUBLIC:
            raise httpx.ConnectError("no IPv6 route", request=request)
        return reply(200)

    seen, outcome = await send("http://hooks.example.com/", targets, answer)
    assert outcome == "delivered"
    assert [r.url.host for r in seen.requests] == ["2606:4700:4700::1111", PUBLIC]


async def test_redirects_are_not_followed_and_fail_permanently() -> None:
    targets = policy({"hooks.example.com": [PUBLIC]})
    redirect = {"location": "http://127.0.0.1:8001/admin"}
    seen, outcome = await send("http://hooks.example.com/", targets,
                               lambda r: reply(307, redirect))  # fmt: skip
    assert isinstance(outcome, ChannelError) and outcome.permanent
    assert "307" in str(outcome)
    assert len(seen.requests) == 1


async def test_a_huge_answer_is_read_only_up_to_the_limit() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while pulled < 100_000:  # a bound so a broken limit fails instead of hanging
            pulled += 1
            yield b"x" * 1024

    targets = policy({"hooks.example.com": [PUBLIC]})
    _, outcome = await send("http://hooks.example.com/", targets,
                            lambda r: httpx.Response(200, content=endless()),
                            webhook_max_response_bytes=8 * 1024)  # fmt: skip
    assert outcome == "delivered"
    assert pulled == 8


async def test_an_answer_that_never_ends_meets_the_overall_deadline() -> None:
    never = asyncio.Event()

    async def drip() -> AsyncIterator[bytes]:
        yield b"x"
        await never.wait()
        yield b"y"

    targets = policy({"hooks.example.com": [PUBLIC]})
    _, outcome = await send("http://hooks.example.com/", targets,
                            lambda r: httpx.Response(200, content=drip()),
                            channel_timeout=timedelta(milliseconds=50))  # fmt: skip
    assert isinstance(outcome, ChannelError) and not outcome.permanent
    assert "timed out" in str(outcome)


async def test_local_mode_posts_to_the_url_as_given() -> None:
    targets = TargetPolicy.build(False, FakeResolver({}))
    seen, outcome = await send("http://127.0.0.1:8001/x", targets,
                               lambda r: reply(201))  # fmt: skip
    assert outcome == "delivered"
    assert str(seen.requests[0].url) == "http://127.0.0.1:8001/x"
