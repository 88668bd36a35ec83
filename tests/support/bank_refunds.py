"""Ameriabank's and ArCa's refunds as their tests need them: one case a bank, whose
wire differences (paths, amounts in drams or luma, decline codes) the case holds, so
that each behaviour is one test run for both banks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator
from shared.gateways import ameria, arca
from shared.gateways.ameria.client import AmeriaAdapter
from shared.gateways.ameria.credentials import AmeriaCredentials
from shared.gateways.arca.client import ArcaAdapter
from shared.gateways.arca.credentials import ArcaCredentials
from shared.gateways.description import GatewayDescription
from tests.support import ameria_sim, arca_sim
from tests.support.ameria_sim import AmeriaSimulator
from tests.support.arca_sim import ArcaSimulator


@dataclass(frozen=True)
class Bank:
    """One bank's refunds: its adapter, simulator and how its wire writes an amount."""

    gateway: str
    description: GatewayDescription
    adapter: Callable[..., Any]  # the adapter type, of its GatewaySettings
    credentials: Callable[[dict[str, str]], Any]  # the credentials type's from_stored
    simulator: Callable[[str], AmeriaSimulator | ArcaSimulator]
    serving: Callable[[SimulatorConfig], AbstractContextManager[tuple[MountedSimulator, str]]]
    api_path: str  # below the sandbox's root
    # What the refund request says for whole drams: (its field, its value).
    sent: Callable[[int], tuple[str, object]]
    # A refund's amount in the witness (major units, as the order's amount).
    witnessed: Callable[[int], str]
    # A scenario's ``match.amount`` for an order of whole drams (as the register call has it).
    matched: Callable[[int], int]
    decline: object  # a scenario's refund_decline: a refusal code of the bank's


AMERIA = Bank(
    gateway="ameria",
    description=ameria.DESCRIPTION,
    adapter=AmeriaAdapter,
    credentials=AmeriaCredentials.from_stored,
    simulator=AmeriaSimulator,
    serving=ameria_sim.serving,
    api_path="ameria/VPOS",
    sent=lambda drams: ("Amount", drams),
    witnessed=str,
    matched=lambda drams: drams,
    decline="0-2001",
)
ARCA = Bank(
    gateway="arca",
    description=arca.DESCRIPTION,
    adapter=ArcaAdapter,
    credentials=ArcaCredentials.from_stored,
    simulator=ArcaSimulator,
    serving=arca_sim.serving,
    api_path="arca/payment/rest",
    sent=lambda drams: ("amount", str(drams * 100)),
    witnessed=lambda drams: f"{drams}.00",
    matched=lambda drams: drams * 100,
    decline=7,
)
BANKS = [AMERIA, ARCA]
BANK_IDS = [bank.gateway for bank in BANKS]


@dataclass
class Served:
    bank: Bank
    root: str
    sim: AmeriaSimulator | ArcaSimulator


def served(bank: Bank) -> Iterator[Served]:
    """The bank's simulator on a real HTTP server, and a client of its controls."""
    with bank.serving(SimulatorConfig()) as (_, root):
        sim = bank.simulator(f"{root}/{bank.gateway}")
        yield Served(bank, root, sim)
        sim.close()
