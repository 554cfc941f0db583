"""Which webhook targets the service may reach (SSRF, OWASP API7): address classification
and the resolve-then-vet rule. Pure: the resolver is passed in, nothing here opens a socket."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# (host, port) -> the addresses it resolves to, as text ("10.0.0.5", "::1").
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

CGNAT = IPv4Network("100.64.0.0/10")  # RFC 6598 shared space: not global, not "private"
NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix, IPv4 in the low 32 bits
# The numeric spellings inet_aton accepts: 2130706433, 0177.0.0.1, 0x7f.1, 127.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+)){0,3}$", re.IGNORECASE)
# At PUT time a name that does not answer quickly is let through: delivery checks again.
PUT_RESOLVE_TIMEOUT = 2.0


class TargetRefused(Exception):
    """The URL points somewhere the service must not send to."""


class TargetUnresolved(Exception):
    """The host name did not resolve (maybe for now)."""


def ip_literal(host: str) -> Address | None:
    """`host` as an address when it spells one ("[::1]", "10.0.0.5", "2130706433", ...)."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.removesuffix(".")
    try:
        return ip_address(text)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(text):
        try:
            return IPv4Address(socket.inet_aton(text))  # pure parsing, no lookup
        except OSError:
            return None
    return None


def embedded_ipv4(addr: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries (6to4, Teredo client, NAT64), if any."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in NAT64:
        return IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _own_reason(addr: Address) -> str | None:
    if addr.is_loopback:
        return "loopback"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if isinstance(addr, IPv4Address) and addr in CGNAT:
        return "shared (CGNAT)"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "not globally routable"
    return None


def forbidden_reason(addr: Address) -> str | None:
    """Why `addr` is no webhook target (loopback, private, ...), or None for a public one."""
    if isinstance(addr, IPv6Address):
        if addr.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket: judge the IPv4 address.
            return _own_reason(addr.ipv4_mapped)
        inner = embedded_ipv4(addr)
        if inner is not None and (why := _own_reason(inner)) is not None:
            return f"{why} (carried in {addr})"
    return _own_reason(addr)


def _parse(raw: str) -> Address:
    return ip_address(raw.split("%", 1)[0])  # drop a zone id (fe80::1%eth0)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removesuffix(".")
    return host, parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class TargetPolicy:
    """Outside local mode only public addresses, plus the operator's allow-list."""

    enforce: bool
    resolver: Resolver
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def build(
        cls,
        enforce: bool,
        resolver: Resolver,
        hosts: Iterable[str] = (),
        networks: Iterable[Network] = (),
    ) -> TargetPolicy:
        names = frozenset(h.strip().lower().removesuffix(".") for h in hosts)
        return cls(enforce, resolver, names, tuple(networks))

    def _allowed(self, addr: Address) -> bool:
        mapped = addr.ipv4_mapped if isinstance(addr, IPv6Address) else None
        return any(a in net for net in self.allowed_networks for a in (addr, mapped) if a)

    def refusal(self, host: str, addr: Address) -> str | None:
        """Why `host` (at `addr`) is refused, or None when it may be reached."""
        if not self.enforce or self._allowed(addr):
            return None
        why = forbidden_reason(addr)
        if why is None:
            return None
        shown = "" if ip_literal(host) is not None else f"{host} resolves to "
        return f"{shown}{addr} is {why}"

    async def addresses(self, host: str, port: int) -> list[Address]:
        """What `host` stands for: itself when it spells an address, else the resolver's."""
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            found = [_parse(raw) for raw in await self.resolver(host, port)]
        except (OSError, ValueError) as exc:
            raise TargetUnresolved(f"{host} does not resolve: {exc}") from None
        if not found:
            raise TargetUnresolved(f"{host} does not resolve")
        return found

    async def vet(self, url: str) -> tuple[Address, ...] | None:
        """The addresses to connect to for `url`, in order, each one checked (DNS rebinding:
        call it for each delivery); None when not enforcing (connect as the URL says)."""
        host, port = _host_port(url)
        if not self.enforce or host in self.allowed_hosts:
            return None  # an allow-listed name: the operator vouches for its DNS
        if host == "localhost" or host.endswith(".localhost"):
            # RFC 6761: always loopback, whatever a resolver says.
            found: list[Address] = [IPv4Address("127.0.0.1")]
        else:
            found = await self.addresses(host, port)
        for addr in found:
            if (why := self.refusal(host, addr)) is not None:
                raise TargetRefused(why)
        return tuple(dict.fromkeys(found))

    async def check_url(self, url: str, timeout: float = PUT_RESOLVE_TIMEOUT) -> str | None:
        """Why a user may not save `url` as a webhook, or None. A name that does not
        resolve now is accepted: the delivery-time check is the one that counts."""
        try:
            async with asyncio.timeout(timeout):
                await self.vet(url)
        except TargetRefused as exc:
            return str(exc)
        except (TargetUnresolved, TimeoutError):
            return None
        return None


__all__ = [
    "Address",
    "Network",
    "Resolver",
    "TargetPolicy",
    "TargetRefused",
    "TargetUnresolved",
    "embedded_ipv4",
    "forbidden_reason",
    "ip_literal",
]
