"""Gateway adapters by name: the only place that knows which gateways exist."""

from __future__ import annotations

from shared.domain.errors import UNSUPPORTED_GATEWAY, MalipoError
from shared.gateways.base import GatewayAdapter
from shared.gateways.daraja.client import DarajaAdapter
from shared.settings import Settings

GATEWAY_NAMES = ("mpesa",)
DEFAULT_GATEWAY = "mpesa"


class GatewayRegistry:
    """One adapter per gateway for this process (adapters hold token caches and sessions)."""

    def __init__(self, adapters: dict[str, GatewayAdapter]) -> None:
        self._adapters = adapters

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayRegistry:
        timeouts = {
            "connect_timeout_s": settings.gateway_connect_timeout_s,
            "read_timeout_s": settings.gateway_read_timeout_s,
        }
        return cls({"mpesa": DarajaAdapter(settings.gateway_base_url("mpesa"), **timeouts)})

    def get(self, name: str) -> GatewayAdapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            raise MalipoError(UNSUPPORTED_GATEWAY, f"no gateway named {name!r}")
        return adapter

    def names(self) -> list[str]:
        return sorted(self._adapters)
