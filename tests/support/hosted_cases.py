"""Each hosted-page gateway as the pay page suites need it: a merchant with a fresh
account at the gateway's simulator, its cabinet filled in where the gateway has one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.hosted import HostedMerchant, hosted_merchant

MerchantFactory = Callable[
    [str, Database, Settings, CredentialCipher], contextlib.AbstractContextManager[HostedMerchant]
]


@dataclass(frozen=True)
class HostedCase:
    gateway: str
    merchant: MerchantFactory
    # An amount no simulator scenario of another test matches.
    amount_drams: int = 2500


@contextlib.contextmanager
def fastshift_merchant(
    sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
) -> Iterator[HostedMerchant]:
    simulator = FastShiftSimulator(f"{sandbox}/fastshift")
    try:
        yield hosted_merchant(db, settings, cipher, "fastshift", simulator.new_account())
    finally:
        simulator.close()


CASES: list[HostedCase] = [HostedCase("fastshift", fastshift_merchant)]
