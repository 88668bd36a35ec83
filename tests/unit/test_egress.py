"""Webhook egress: public addresses only, connected to as checked, TLS verified on the name.

The address classifier is checked against Python's own ``ipaddress`` flags (an
independent oracle) over all of IPv4 and IPv6, including the IPv6 forms that
carry an IPv4 address. The pinned session is checked against a real local TLS
server whose certificate names a host that does not resolve: only the pinned
address can reach it, and only if the certificate is verified on that name.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import ssl
import string
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import egress
from shared.egress import (
    LINK_LOCAL,
    LOOPBACK,
    MULTICAST,
    PRIVATE,
    REFUSED,
    SHARED,
    EgressRefused,
    Target,
    check_destination,
    pinned_session,
    redact_url,
    refusal,
)
from shared.settings import ConfigurationError, load_settings
from tests.unit.properties import PROPERTY

ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)
ipv6 = st.integers(min_value=0, max_value=2**128 - 1).map(IPv6Address)
CGNAT = IPv4Network("100.64.0.0/10")
# Blocks refused on purpose though Python calls (parts of) them global: no webhook lives there.
EXTRA_V4 = (IPv4Network("192.0.0.0/24"), IPv4Network("192.88.99.0/24"))


def not_public_by_python(address: IPv4Address | IPv6Address) -> bool:
    """The oracle: what ``ipaddress`` itself says is not a public unicast address."""
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
        or (isinstance(address, IPv4Address) and address in CGNAT)
        or (isinstance(address, IPv6Address) and address.is_site_local)
    )


def carried_v4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 mapped, compatible or NAT64 form stands for."""
    low = IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d, not :: or ::1
        return low
    if address in IPv6Network("64:ff9b::/96"):
        return low
    return None


# --- the address classifier ------------------------------------------------------------------


@settings(PROPERTY, max_examples=2000)
@given(address=ipv4)
def test_an_ipv4_address_is_refused_exactly_when_it_is_not_public(address: IPv4Address) -> None:
    expected = not_public_by_python(address) or any(address in n for n in EXTRA_V4)
    assert (refusal(address) is not None) == expected


@settings(PROPERTY, max_examples=500)
@given(
    address=st.one_of(
        st.integers(0, 2**24 - 1).map(lambda n: IPv4Address((127 << 24) + n)),
        st.integers(0, 2**24 - 1).map(lambda n: IPv4Address((10 << 24) + n)),
        st.integers(0, 2**20 - 1).map(lambda n: IPv4Address(int(IPv4Address("172.16.0.0")) + n)),
        st.integers(0, 2**16 - 1).map(lambda n: IPv4Address(int(IPv4Address("192.168.0.0")) + n)),
        st.integers(0, 2**16 - 1).map(lambda n: IPv4Address(int(IPv4Address("169.254.0.0")) + n)),
        st.integers(0, 2**22 - 1).map(lambda n: IPv4Address(int(IPv4Address("100.64.0.0")) + n)),
        st.integers(0, 2**28 - 1).map(lambda n: IPv4Address(int(IPv4Address("224.0.0.0")) + n)),
    )
)
def test_each_kind_of_ipv4_address_is_named(address: IPv4Address) -> None:
    first = int(address) >> 24
    expected = {127: LOOPBACK, 10: PRIVATE, 172: PRIVATE, 192: PRIVATE, 169: LINK_LOCAL}
    kind = MULTICAST if 224 <= first < 240 else SHARED if first == 100 else expected[first]
    assert refusal(address) == kind


@settings(PROPERTY, max_examples=2000)
@given(address=ipv4)
def test_ipv6_forms_carrying_an_ipv4_address_are_judged_as_that_address(
    address: IPv4Address,
) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    nat64 = IPv6Address(f"64:ff9b::{address}")
    assert refusal(mapped) == refusal(address)
    assert refusal(nat64) == refusal(address)
    if int(address) > 1:
        assert refusal(IPv6Address(int(address))) == refusal(address)  # ::a.b.c.d


@settings(PROPERTY, max_examples=3000)
@given(
    address=st.one_of(
        ipv6,
        # the interesting regions, which uniform integers would almost never hit
        st.integers(0, 2**32 - 1).map(lambda n: IPv6Address(f"::ffff:{IPv4Address(n)}")),
        st.integers(0, 2**32 - 1).map(IPv6Address),
        st.integers(0, 2**121 - 1).map(lambda n: IPv6Address(int(IPv6Address("fc00::")) + n)),
        st.integers(0, 2**118 - 1).map(lambda n: IPv6Address(int(IPv6Address("fe80::")) + n)),
        st.integers(0, 2**120 - 1).map(lambda n: IPv6Address(int(IPv6Address("ff00::")) + n)),
        st.integers(0, 2**125 - 1).map(lambda n: IPv6Address(int(IPv6Address("2000::")) + n)),
    )
)
def test_an_ipv6_address_is_refused_when_python_says_it_is_not_public(
    address: IPv6Address,
) -> None:
    v4 = carried_v4(address)
    if v4 is not None:
        assert refusal(address) == refusal(v4)
    elif not_public_by_python(address) or address not in IPv6Network("2000::/3"):
        assert refusal(address) is not None
    if address in IPv6Network("fc00::/7"):
        assert refusal(address) == PRIVATE
    if address in IPv6Network("fe80::/10"):
        assert refusal(address) == LINK_LOCAL
    if address in IPv6Network("ff00::/8"):
        assert refusal(address) == MULTICAST


@pytest.mark.parametrize(
    "text",
    [
        "::1",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "0:0:0:0:0:ffff:7f00:0001",
        "::127.0.0.1",
        "64:ff9b::127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "::ffff:10.0.0.1",
        "::ffff:100.64.0.1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "::",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "255.255.255.255",
        "239.255.255.250",
    ],
)
def test_well_known_internal_addresses_in_any_spelling_are_refused(text: str) -> None:
    assert refusal(ip_address(text)) is not None


@pytest.mark.parametrize(
    "text", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(text: str) -> None:
    assert refusal(ip_address(text)) is None


# --- resolving and checking every address ----------------------------------------------------


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Fake the one resolver egress uses; returns the names it was asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[IPv4Address | IPv6Address]:
        asked.append(host)
        return [ip_address(a) for a in addresses]

    monkeypatch.setattr(egress, "resolve", resolve)
    return asked


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = resolving_to(monkeypatch, "93.184.216.34", "10.0.0.7")
    with pytest.raises(EgressRefused) as refused:
        check_destination("https://hooks.shop.example/malipo")
    assert refused.value.reason == REFUSED[PRIVATE]
    assert "10.0.0.7" not in refused.value.reason
    assert asked == ["hooks.shop.example"]


def test_a_public_name_is_checked_once_and_its_addresses_are_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = resolving_to(monkeypatch, "93.184.216.34", "2606:2800:220:1::1")
    target = check_destination("https://Hooks.Shop.example:8443/malipo?token=x")
    assert target == Target("hooks.shop.example", 8443, ("93.184.216.34", "2606:2800:220:1::1"))
    assert asked == ["hooks.shop.example"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_internal_urls_are_refused_by_the_real_resolver(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_destination(url)


def test_the_allow_list_lets_named_hosts_and_addresses_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert check_destination("http://localhost:9/", ["localhost"]).host == "localhost"
    assert check_destination("http://127.0.0.1:9/", ["127.0.0.1"]).addresses == ("127.0.0.1",)
    assert check_destination("http://[::1]:9/", ["[::1]"]).addresses == ("::1",)
    resolving_to(monkeypatch, "127.0.0.1", "10.0.0.7")
    with pytest.raises(EgressRefused):  # an allowed address does not allow another
        check_destination("http://rebind.example/", ["127.0.0.1"])


def test_a_name_that_does_not_resolve_is_unresolvable() -> None:
    with pytest.raises(egress.Unresolvable):
        check_destination("https://no-such-host.invalid/hooks")


# --- the setting -----------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("MALIPO_"):
            monkeypatch.delenv(name)
    for name, value in {
        "MALIPO_CONFIG_FILE": "",
        "MALIPO_DATABASE_URL": "postgresql+psycopg://malipo:pw@db.internal/malipo",
        "MALIPO_BROKER_URL": "amqp://malipo:pw@mq.internal:5672/malipo",
        "MALIPO_SECRET_KEY": secrets.token_hex(24),
        "MALIPO_CREDENTIALS_KEYS": f"k2026:{base64.b64encode(os.urandom(32)).decode()}",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_sandbox_may_allow_local_hosts(env: pytest.MonkeyPatch) -> None:
    env.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", " 127.0.0.1, localhost ,")
    assert load_settings().webhook_allowed_hosts() == {"127.0.0.1", "localhost"}


def test_production_refuses_an_allow_list_naming_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("MALIPO_ENV", "production")
    env.setenv("MALIPO_PUBLIC_BASE_URL", "https://pay.malipo.co.ke")
    assert load_settings().webhook_allowed_hosts() == frozenset()
    env.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    with pytest.raises(ConfigurationError, match="MALIPO_WEBHOOK_ALLOW_HOSTS must be empty"):
        load_settings()


def test_an_allow_list_entry_is_a_host_not_a_url(env: pytest.MonkeyPatch) -> None:
    env.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", "http://127.0.0.1/")
    with pytest.raises(ConfigurationError, match="MALIPO_WEBHOOK_ALLOW_HOSTS"):
        load_settings()


# --- the pinned connection: TLS on the name, the checked address only ------------------------

NAME = "hooks.shop.invalid"  # does not resolve: only a pinned connection can reach it


def certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A CA (its PEM file) and a server certificate+key for ``name`` signed by it (one PEM)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName(subject)])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "malipo test CA")])
    ca = build("malipo test CA", ca_key, ca_name, ca_key, ca=True)
    server = build(name, server_key, ca_name, ca_key, ca=False)
    ca_file, server_file = tmp / "ca.pem", tmp / f"{name}.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, server_file


class TlsReceiver:
    """An HTTPS server on 127.0.0.1 that notes each request's SNI name and Host header."""

    def __init__(self, server_pem: Path) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.seen.append(
                    (receiver.sni[-1] if receiver.sni else None, self.headers["Host"])
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_pem)
        context.sni_callback = self._note_sni
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _note_sni(self, sock: Any, name: str | None, context: Any) -> None:
        self.sni.append(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsReceiver, Path, Path]]:
    ca_file, server_pem = certificate(tmp_path, NAME)
    receiver = TlsReceiver(server_pem)
    yield receiver, ca_file, tmp_path
    receiver.close()


def test_a_pinned_https_post_verifies_the_certificate_on_the_host_name(
    tls: tuple[TlsReceiver, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, ca_file, _ = tls
    # A proxy in the environment is not used: it would resolve the name itself.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    target = Target(NAME, receiver.port, ("127.0.0.1",))
    url = f"https://{NAME}:{receiver.port}/hook"
    with pinned_session(target) as session:
        answer = session.post(url, data=b"{}", verify=str(ca_file), timeout=5)
    assert answer.status_code == 200
    assert receiver.seen == [(NAME, f"{NAME}:{receiver.port}")]


def test_a_certificate_for_another_name_fails_even_on_the_right_address(
    tmp_path: Path,
) -> None:
    ca_file, wrong_pem = certificate(tmp_path, "other.invalid")
    receiver = TlsReceiver(wrong_pem)
    try:
        target = Target(NAME, receiver.port, ("127.0.0.1",))
        with pinned_session(target) as session, pytest.raises(requests.exceptions.SSLError):
            session.post(f"https://{NAME}:{receiver.port}/hook", verify=str(ca_file), timeout=5)
        assert receiver.seen == []
    finally:
        receiver.close()


def test_a_pinned_session_goes_to_no_other_host(tls: tuple[TlsReceiver, Path, Path]) -> None:
    receiver, ca_file, _ = tls
    target = Target(NAME, receiver.port, ("127.0.0.1",))
    with pinned_session(target) as session:
        with pytest.raises(EgressRefused):
            session.post(f"https://elsewhere.invalid:{receiver.port}/", verify=str(ca_file))
        with pytest.raises(EgressRefused):
            session.post(f"https://{NAME}:{receiver.port + 1}/", verify=str(ca_file))
    assert receiver.seen == []


def test_a_pinned_plain_http_connection_dials_the_checked_address_with_the_name_as_host() -> None:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = int(server.server_address[1])
    try:
        # The first address refuses connections (nothing listens there): the next is tried.
        target = Target(NAME, port, ("127.0.0.2", "127.0.0.1"))
        with pinned_session(target) as session:
            assert session.post(f"http://{NAME}:{port}/h", timeout=5).status_code == 204
        assert seen == [f"{NAME}:{port}"]
    finally:
        server.shutdown()
        server.server_close()


# --- URLs in logs ----------------------------------------------------------------------------

tokens = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=40)


@settings(PROPERTY, max_examples=300)
@given(first=tokens, second=tokens, password=tokens)
def test_a_redacted_url_keeps_no_query_value_nor_password(
    first: str, second: str, password: str
) -> None:
    url = (
        f"https://merchant:{password}@shop.example:8443/hooks/malipo?token={first}&{second}#{first}"
    )
    redacted = redact_url(url)
    for value in (first, second, password):
        assert value not in redacted.removeprefix("https://shop.example:8443/hooks/malipo")
    assert redacted == "https://shop.example:8443/hooks/malipo?token=***&***"


def test_a_url_without_a_query_is_unchanged() -> None:
    assert redact_url("https://shop.example/hooks") == "https://shop.example/hooks"
    assert redact_url("http://[::1]:8000/h?a=1") == "http://[::1]:8000/h?a=***"
