"""A gateway's description: everything the rest of malipo needs to know about it.

The registry, settings validation, the ``malipo merchant`` options, callback
routing, phone rules and the README's gateway table are all built from these,
so adding a gateway means adding its package (and its simulator and tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.gateways.base import COLLECTION_FLOWS, Capability, GatewayAdapter


@dataclass(frozen=True)
class CredentialField:
    """One value of a merchant's credentials for a gateway, and the CLI option that fills it."""

    name: str
    help: str
    secret: bool = False
    required: bool = True
    choices: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class GatewaySettings:
    """A gateway's process settings (``MALIPO_<NAME>_BASE_URL`` and timeouts)."""

    base_url: str
    connect_timeout_s: float
    read_timeout_s: float
    # The gateway's own settings its description names (``MALIPO_<NAME>_<FIELD>``), if set.
    extra: Mapping[str, str] = field(default_factory=dict)


def sha256_verifier(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _no_verifiers(_: Mapping[str, Any]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class GatewayDescription:
    name: str
    title: str
    # The public path segment of its callbacks: /callbacks/<segment>/<secret>.
    callback_segment: str
    currencies: tuple[str, ...]
    # ISO 3166 regions whose phone numbers it takes, the first being the default.
    phone_regions: tuple[str, ...]
    # Base URL of its API per MALIPO_ENV (sandbox, production).
    base_urls: Mapping[str, str]
    credentials: tuple[CredentialField, ...]
    capabilities: frozenset[Capability]
    adapter_factory: Callable[[GatewaySettings], GatewayAdapter]
    # The default flow when a payment names none (one of the collection capabilities).
    default_flow: Capability = Capability.PUSH
    # Headers worth keeping with a raw callback (never Authorization or cookies).
    kept_headers: tuple[str, ...] = ("content-type", "user-agent", "x-forwarded-for")
    # Credential values that only exist in the gateway's public sandbox: production refuses them.
    sandbox_values: frozenset[str] = frozenset()
    # Named source allowlists an operator can switch on (``--ip-allowlist safaricom``).
    named_allowlists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Whether a new merchant's successes are confirmed with the status API before credit.
    confirm_before_credit: bool = False
    # Hashes of the merchant's callback proofs (IntaSend's challenge, Basic credentials),
    # stored in clear beside the encrypted credentials so the ingress can compare them.
    callback_verifiers: Callable[[Mapping[str, Any]], dict[str, str]] = _no_verifiers
    # Names it was known by before (still accepted in commands and callback paths).
    aliases: tuple[str, ...] = ()
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    # Settings of its own beyond base URL and timeouts (``MALIPO_<NAME>_<FIELD>``), with help.
    settings_fields: Mapping[str, str] = field(default_factory=dict)
    # Credentials the local simulator knows (for `make run` in the sandbox only).
    simulator_credentials: Mapping[str, str] = field(default_factory=dict)
    # Where the local simulator serves this gateway's API under the sandbox's address
    # ("" for its root; None: no simulator).
    simulator_path: str | None = None
    # The customer goes through malipo's pay page (``/pay/{id}``): the gateway's return
    # URLs point back to malipo, which shows the real state and hands over to the merchant.
    pay_page: bool = False
    # The result URL is typed into the gateway's merchant cabinet, not sent with each
    # order (Idram, Telcell): one callback URL per merchant, without an attempt reference.
    result_url_in_cabinet: bool = False
    # No refund API: a refund waits as ``requires_action`` until an operator records how
    # the money went back (``malipo refund complete``).
    manual_refunds: bool = False
    # Refunds whose lost answers are settled by the order's refunded total (no id of ours
    # at the gateway): one undecided refund per payment at a time.
    serial_refunds: bool = False
    # For the README's table: how callbacks are authenticated, and the source of truth.
    callback_authentication: str = ""
    source_of_truth: str = ""

    def __post_init__(self) -> None:
        if not self.flows:
            raise ValueError(f"{self.name}: a gateway collects by push or by a hosted page")
        if self.default_flow not in self.flows:
            raise ValueError(f"{self.name}: default flow {self.default_flow} is not a capability")
        if set(self.base_urls) != {"sandbox", "production"}:
            raise ValueError(f"{self.name}: base URLs for sandbox and production are required")

    @property
    def flows(self) -> tuple[Capability, ...]:
        return tuple(flow for flow in COLLECTION_FLOWS if flow in self.capabilities)

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def keep_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers worth keeping with a raw callback (never credentials), by lower-case name."""
        lowered = {name.lower(): value for name, value in headers.items()}
        return {name: lowered[name] for name in self.kept_headers if name in lowered}

    def env_prefix(self) -> str:
        return f"MALIPO_{self.name.upper()}_"

    def option(self, credential: CredentialField) -> str:
        """``--<gateway>-<field>`` (underscores as dashes)."""
        return f"--{self.name}-{credential.name.replace('_', '-')}"

    def envvar(self, credential: CredentialField) -> str:
        return f"{self.env_prefix()}{credential.name.upper()}"
