"""`make run`'s demo: a fresh sandbox phone per curl, and a payment each gateway accepts."""

from __future__ import annotations

import pytest

from ingress.validation import fit_gateway, payment_command
from shared.devstack import demo_payment, fresh_phone
from shared.domain.phone import normalise_phone
from shared.gateways import catalogue
from shared.gateways.registry import GatewayRegistry
from shared.settings import load_settings

REGIONS = sorted({r for d in catalogue.descriptions() for r in d.phone_regions})


@pytest.mark.parametrize("region", REGIONS)
def test_a_fresh_phone_is_a_valid_mobile_number_of_its_country(region: str) -> None:
    phones = {fresh_phone(region) for _ in range(20)}

    assert all(normalise_phone(phone, (region,)) == phone for phone in phones)
    assert len(phones) > 1  # not the same phone every run: per-phone limits never bite


@pytest.mark.parametrize("gateway", [d.name for d in catalogue.descriptions()])
def test_every_gateways_demo_payment_passes_the_ingress_checks(gateway: str) -> None:
    gateways = GatewayRegistry.from_settings(load_settings())
    description = catalogue.describe(gateway)

    command = payment_command(demo_payment(description), gateways)

    assert fit_gateway(gateways, description, command)["gateway"] == gateway
