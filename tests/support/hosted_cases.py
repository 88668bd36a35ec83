"""Each hosted-page gateway as the pay page suites need it: a merchant with a fresh
account at the gateway's simulator, its cabinet filled in where the gateway has one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.support.ameria_sim import AmeriaSimulator
from tests.support.arca_sim import ArcaSimulator
from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.hosted import HostedMerchant, hosted_merchant
from tests.support.idram_sim import IdramSimulator
from tests.support.telcell_sim import TelcellSimulator

MerchantFactory = Callable[
    [str, Database, Settings, CredentialCipher], contextlib.AbstractContextManager[HostedMerchant]
]


class AccountSimulator(Protocol):
    def new_account(self) -> dict[str, str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class HostedCase:
    gateway: str
    merchant: MerchantFactory
    # An amount no simulator scenario of another test matches.
    amount_drams: int = 2500


def with_fresh_account(
    gateway: str, simulator_type: Callable[[str], AccountSimulator]
) -> MerchantFactory:
    """A merchant whose credentials are a new account at the gateway's simulator."""

    @contextlib.contextmanager
    def factory(
        sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
    ) -> Iterator[HostedMerchant]:
        simulator = simulator_type(f"{sandbox}/{gateway}")
        try:
            yield hosted_merchant(db, settings, cipher, gateway, simulator.new_account())
        finally:
            simulator.close()

    return factory


@contextlib.contextmanager
def idram_merchant(
    sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
) -> Iterator[HostedMerchant]:
    """A fresh Idram account whose cabinet names the merchant's result URL and the pay page."""
    simulator = IdramSimulator(f"{sandbox}/idram")
    try:
        merchant = hosted_merchant(db, settings, cipher, "idram", simulator.new_account())
        back = f"{settings.public_base_url}/pay/return"
        simulator.cabinet(
            merchant.credentials["rec_account"],
            result_url=merchant.callback_url,
            success_url=back,
            fail_url=back,
        )
        yield merchant
    finally:
        simulator.close()


@contextlib.contextmanager
def telcell_merchant(
    sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
) -> Iterator[HostedMerchant]:
    """A fresh Telcell shop whose cabinet names the merchant's result URL and the pay page."""
    simulator = TelcellSimulator(f"{sandbox}/telcell")
    try:
        merchant = hosted_merchant(db, settings, cipher, "telcell", simulator.new_shop())
        back = f"{settings.public_base_url}/pay/return"
        simulator.cabinet(
            merchant.credentials["shop_id"],
            result_url=merchant.callback_url,
            success_url=back,
            fail_url=back,
        )
        yield merchant
    finally:
        simulator.close()


CASES: list[HostedCase] = [
    HostedCase("idram", idram_merchant),
    HostedCase("telcell", telcell_merchant),
    HostedCase("fastshift", with_fresh_account("fastshift", FastShiftSimulator)),
    HostedCase("ameria", with_fresh_account("ameria", AmeriaSimulator)),
    HostedCase("arca", with_fresh_account("arca", ArcaSimulator)),
]
