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


CASES: list[HostedCase] = [
    HostedCase("fastshift", with_fresh_account("fastshift", FastShiftSimulator)),
    HostedCase("ameria", with_fresh_account("ameria", AmeriaSimulator)),
    HostedCase("arca", with_fresh_account("arca", ArcaSimulator)),
]
