"""The registry's remembered protocol checks agree with isinstance, for every gateway."""

from __future__ import annotations

import pytest

from shared.gateways import catalogue
from shared.gateways.base import PrecheckReader, SignedCallbacks
from shared.gateways.registry import GatewayRegistry
from shared.gateways.transfers import TransferResults
from shared.settings import Settings

PROTOCOLS = (PrecheckReader, SignedCallbacks, TransferResults)


@pytest.fixture
def registry(settings: Settings) -> GatewayRegistry:
    return GatewayRegistry.from_settings(settings)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_speaks_is_isinstance_remembered(registry: GatewayRegistry, protocol: type) -> None:
    for description in catalogue.descriptions():
        adapter = registry.get(description.name)
        expected = isinstance(adapter, protocol)
        assert registry.speaks(description.name, protocol) is expected
        assert registry.speaks(description.name, protocol) is expected  # from memory


def test_idram_signs_and_prechecks_and_daraja_does_not(registry: GatewayRegistry) -> None:
    assert registry.speaks("idram", PrecheckReader)
    assert registry.speaks("idram", SignedCallbacks)
    assert not registry.speaks("daraja", PrecheckReader)
    assert not registry.speaks("daraja", SignedCallbacks)
    assert registry.speaks("daraja", TransferResults)
    assert registry.transfer_results("daraja") is registry.get("daraja")
