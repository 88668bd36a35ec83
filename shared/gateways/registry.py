"""This process's gateway adapters, built from the descriptions and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from shared.domain.errors import CAPABILITY_NOT_SUPPORTED, MalipoError
from shared.gateways import catalogue
from shared.gateways.base import (
    CallbackReader,
    Capability,
    GatewayAdapter,
    HostedCollection,
    PrecheckReader,
    PushCollection,
    SignedCallbacks,
    StatusQuery,
    StatusResult,
    TransactionList,
)
from shared.gateways.description import GatewayDescription
from shared.gateways.transfers import Payouts, Refunds, TransferResults
from shared.settings import Settings


class GatewayRegistry:
    """One adapter per gateway for this process (adapters hold token caches and sessions)."""

    def __init__(self, adapters: dict[str, GatewayAdapter]) -> None:
        self._adapters = adapters
        self._speaks: dict[tuple[str, type], bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayRegistry:
        return cls(
            {
                d.name: d.adapter_factory(settings.gateway_settings(d.name))
                for d in catalogue.descriptions()
            }
        )

    def describe(self, name: str) -> GatewayDescription:
        return catalogue.describe(name)

    def get(self, name: str) -> GatewayAdapter:
        return self._adapters[catalogue.describe(name).name]

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def require(self, name: str, capability: Capability) -> Any:
        """The adapter of ``name`` when it has ``capability``, else ``capability_not_supported``."""
        description = catalogue.describe(name)
        if not description.has(capability):
            raise MalipoError(
                CAPABILITY_NOT_SUPPORTED, f"{description.name} cannot do {capability.value}"
            )
        return self._adapters[description.name]

    def pusher(self, name: str) -> PushCollection:
        return cast(PushCollection, self.require(name, Capability.PUSH))

    def hosted(self, name: str) -> HostedCollection:
        return cast(HostedCollection, self.require(name, Capability.HOSTED))

    def status_query(self, name: str) -> StatusQuery:
        return cast(StatusQuery, self.require(name, Capability.STATUS))

    def refunder(self, name: str) -> Refunds:
        return cast(Refunds, self.require(name, Capability.REFUND))

    def payer(self, name: str) -> Payouts:
        return cast(Payouts, self.require(name, Capability.PAYOUT))

    def speaks(self, name: str, protocol: type) -> bool:
        """Whether ``name``'s adapter implements the runtime-checkable ``protocol``.

        Remembered per adapter: ``isinstance`` against a protocol walks its members every
        time, and the callback paths ask on every request.
        """
        key = (catalogue.describe(name).name, protocol)
        known = self._speaks.get(key)
        if known is None:
            known = self._speaks[key] = isinstance(self._adapters[key[0]], protocol)
        return known

    def transfer_results(self, name: str) -> TransferResults | None:
        """The reader of ``name``'s transfer results, when its callbacks carry any."""
        return cast(TransferResults | None, self._speaking(name, TransferResults))

    def signed_callbacks(self, name: str) -> SignedCallbacks | None:
        """``name``'s checker of merchant-keyed callback signatures, when it has one."""
        return cast(SignedCallbacks | None, self._speaking(name, SignedCallbacks))

    def prechecker(self, name: str) -> PrecheckReader | None:
        """``name``'s reader of prechecks (asked before paying), when it has one."""
        return cast(PrecheckReader | None, self._speaking(name, PrecheckReader))

    def _speaking(self, name: str, protocol: type) -> GatewayAdapter | None:
        return self.get(name) if self.speaks(name, protocol) else None

    def transaction_list(self, name: str) -> TransactionList:
        return cast(TransactionList, self.require(name, Capability.TRANSACTIONS))

    def reader(self, name: str) -> CallbackReader:
        return cast(CallbackReader, self.require(name, Capability.CALLBACKS))

    def query_status(self, name: str, stored: Mapping[str, Any], gateway_ref: str) -> StatusResult:
        """Ask ``name``'s status API about ``gateway_ref`` with a merchant's stored credentials."""
        credentials = self.get(name).credentials(stored)
        return self.status_query(name).query_status(credentials, gateway_ref)
