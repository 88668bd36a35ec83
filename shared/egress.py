"""Where malipo may connect on a merchant's behalf: public addresses only, checked per connection.

A merchant names its webhook endpoint, so the name is the merchant's to point
anywhere, at any time (DNS rebinding). Checking the URL once is not enough: each
delivery resolves the host **once** (:func:`resolve`), refuses the delivery if
*any* address is not public (:func:`refusal`), and connects only to those checked
addresses (:func:`pinned_session`), while the Host header, TLS SNI and the
certificate check stay on the host name. So what was checked is what is
connected to, and a redirect or a proxy can take the request nowhere else.

Not public: loopback, private (RFC 1918, ULA ``fc00::/7``), link-local, multicast,
CGNAT ``100.64/10``, unspecified, and the rest of IANA's special-purpose blocks;
IPv6 forms that carry an IPv4 address (mapped ``::ffff:0:0/96``, compatible
``::/96``, NAT64 ``64:ff9b::/96``) are judged by that IPv4 address. Host names
or addresses on an allow-list (sandbox only, see ``MALIPO_WEBHOOK_ALLOW_HOSTS``)
skip the rule.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection, parse_url

IPAddress = IPv4Address | IPv6Address

LOOPBACK, PRIVATE, LINK_LOCAL, MULTICAST = "loopback", "private", "link-local", "multicast"
SHARED, UNSPECIFIED, RESERVED = "shared (CGNAT)", "unspecified", "reserved"
CATEGORIES = (LOOPBACK, PRIVATE, LINK_LOCAL, MULTICAST, SHARED, UNSPECIFIED, RESERVED)


def _v4(*rows: tuple[str, str]) -> tuple[tuple[IPv4Network, str], ...]:
    return tuple((IPv4Network(net), category) for net, category in rows)


def _v6(*rows: tuple[str, str]) -> tuple[tuple[IPv6Network, str], ...]:
    return tuple((IPv6Network(net), category) for net, category in rows)


# IANA's IPv4 special-purpose registry, the blocks that are not globally reachable
# (plus the few global ones no webhook lives at: 192.0.0.0/24, the 6to4 relay).
V4_REFUSED = _v4(
    ("0.0.0.0/8", UNSPECIFIED),
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", SHARED),
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),
    ("172.16.0.0/12", PRIVATE),
    ("192.0.0.0/24", RESERVED),
    ("192.0.2.0/24", RESERVED),
    ("192.88.99.0/24", RESERVED),
    ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", RESERVED),
    ("198.51.100.0/24", RESERVED),
    ("203.0.113.0/24", RESERVED),
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),  # and 255.255.255.255
)
# IPv6 forms whose last 32 bits are an IPv4 destination: judged as that address.
V6_CARRYING_V4 = tuple(IPv6Network(net) for net in ("::ffff:0:0/96", "::/96", "64:ff9b::/96"))
V6_REFUSED = _v6(
    ("::/128", UNSPECIFIED),
    ("::1/128", LOOPBACK),
    ("64:ff9b:1::/48", PRIVATE),  # local-use NAT64
    ("100::/64", RESERVED),  # discard-only
    ("2001::/23", RESERVED),  # IETF protocol assignments: Teredo, benchmarking, ORCHID
    ("2001:db8::/32", RESERVED),  # documentation
    ("2002::/16", RESERVED),  # 6to4 (deprecated): another route into IPv4 networks
    ("3fff::/20", RESERVED),  # documentation
    ("5f00::/16", RESERVED),  # SRv6 SIDs
    ("fc00::/7", PRIVATE),  # unique local
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", PRIVATE),  # site-local (deprecated)
    ("ff00::/8", MULTICAST),
)
V6_GLOBAL_UNICAST = IPv6Network("2000::/3")


def refusal(address: IPAddress) -> str | None:
    """Why no webhook may be sent to ``address`` (its category), or None if it is public."""
    if isinstance(address, IPv6Address):
        plain = IPv6Address(int(address))  # without a %scope
        for carrier in V6_CARRYING_V4:
            if plain in carrier and plain not in (IPv6Address("::"), IPv6Address("::1")):
                return refusal(IPv4Address(int(plain) & 0xFFFF_FFFF))
        for v6_network, category in V6_REFUSED:
            if plain in v6_network:
                return category
        if plain not in V6_GLOBAL_UNICAST or not plain.is_global:
            return RESERVED
        return None
    for v4_network, category in V4_REFUSED:
        if address in v4_network:
            return category
    return None if address.is_global else RESERVED


# --- refusals (a fixed vocabulary: stored, logged and shown to merchants as they are) ----------


def _article(category: str) -> str:
    return "an" if category[0] in "aeiou" else "a"


REFUSED = {c: f"refused: the endpoint resolves to {_article(c)} {c} address" for c in CATEGORIES}
REFUSED_ELSEWHERE = "refused: the connection was asked to go to another host"
REASONS = frozenset({*REFUSED.values(), REFUSED_ELSEWHERE})


class EgressRefused(Exception):
    """The destination is not public: ``reason`` is one of :data:`REASONS` (never an address)."""

    def __init__(self, reason: str, address: IPAddress | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.address = address


class Unresolvable(Exception):
    """The host name does not resolve (now)."""


# --- resolving and checking ----------------------------------------------------------------------


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order; the one DNS look-up of a send.

    Raises :class:`Unresolvable` when there is none.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; idna refuses some labels
        raise Unresolvable(host) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(host)
    return addresses


@dataclass(frozen=True)
class Target:
    """Where one request may go: the URL's host and port, and the checked addresses to dial."""

    host: str
    port: int
    addresses: tuple[str, ...]


def normalise_host(host: str) -> str:
    """The form allow-list entries and URL hosts are compared in."""
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ip_address(name))
    except ValueError:
        return name


def url_host_port(url: str) -> tuple[str, int]:
    """The host (no brackets, IDNA-encoded as requests sends it) and port of an http(s) URL."""
    prepared = requests.Request("POST", url).prepare().url or url
    parts = parse_url(prepared)
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ValueError("not an absolute http(s) URL")
    return parts.host.strip("[]"), parts.port or (443 if parts.scheme == "https" else 80)


def check_destination(url: str, allowed_hosts: Collection[str] = ()) -> Target:
    """Resolve the URL's host once; the addresses to connect to if every one of them is public.

    Raises :class:`EgressRefused` when one is not (an allowed host, or an allowed
    address, is not checked), :class:`Unresolvable` when there is none, ValueError
    for a URL that is not http(s).
    """
    host, port = url_host_port(url)
    addresses = resolve(host, port)
    allowed = {normalise_host(entry) for entry in allowed_hosts}
    if normalise_host(host) not in allowed:
        for address in addresses:
            category = refusal(address)
            if category is not None and normalise_host(str(address)) not in allowed:
                raise EgressRefused(REFUSED[category], address)
    return Target(host, port, tuple(str(address) for address in addresses))


# --- connecting to the checked addresses only ----------------------------------------------------


def _dial(conn: HTTPConnection, addresses: tuple[str, ...]) -> socket.socket:
    """Connect to the first checked address that answers (urllib3's ``_new_conn``, pinned).

    ``conn.host`` stays the URL's host: it is the Host header, the TLS SNI and the
    name the certificate must match.
    """
    failure: OSError | None = None
    for address in addresses:  # in the resolver's order, every one checked
        try:
            return connection.create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:  # one connect timeout per attempt, as without pinning
            raise ConnectTimeoutError(
                conn, f"connection to {conn.host} timed out (connect timeout={conn.timeout})"
            ) from exc
        except OSError as exc:
            failure = exc
    raise NewConnectionError(conn, f"failed to establish a new connection: {failure}") from failure


class PinnedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, pinned_addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pinned_addresses = pinned_addresses

    def _new_conn(self) -> socket.socket:
        return _dial(self, self.pinned_addresses)


class PinnedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, pinned_addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pinned_addresses = pinned_addresses

    def _new_conn(self) -> socket.socket:
        return _dial(self, self.pinned_addresses)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection


class PinnedPoolManager(PoolManager):
    """Pools for the target's host and port only, whose connections dial the checked addresses."""

    def __init__(self, target: Target, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        if normalise_host(host) != normalise_host(self.target.host) or port != self.target.port:
            raise EgressRefused(REFUSED_ELSEWHERE)
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["pinned_addresses"] = self.target.addresses
        return super()._new_pool(scheme, host, port, context)


class PinnedAdapter(HTTPAdapter):
    """A requests adapter for one :class:`Target`: no retries, no proxies."""

    def __init__(self, target: Target) -> None:
        self.target = target
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = PinnedPoolManager(
            self.target, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise EgressRefused(REFUSED_ELSEWHERE)  # a proxy would resolve the name itself


@contextmanager
def pinned_session(target: Target) -> Iterator[requests.Session]:
    """A session that can reach only ``target`` (on its checked addresses); closed on exit.

    Proxy variables (``HTTPS_PROXY``...) and ``.netrc`` are ignored: a proxy would
    resolve and connect on its own, past the check.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAdapter(target)
    session.adapters.clear()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        yield session
    finally:
        session.close()


# --- what may be logged of a URL -----------------------------------------------------------------

MASK = "***"
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,40}")


def redact_url(url: str) -> str:
    """The URL for a log line: query values masked (short names kept), no user info or fragment.

    ``https://shop.example/hooks?token=abc&x`` → ``https://shop.example/hooks?token=***&***``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "[unparseable URL]"
    masked = []
    for piece in filter(None, parts.query.split("&")):
        name, sep, _ = piece.partition("=")
        masked.append(f"{name}={MASK}" if sep and _PARAMETER_NAME.fullmatch(name) else MASK)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(masked), ""))
