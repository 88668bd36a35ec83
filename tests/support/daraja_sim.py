"""Money-out controls of the Daraja simulator (``/_sim/transfers…``, ``/_sim/certificate``),
beside the collection controls of ``tests/support/sim.py``."""

from __future__ import annotations

from typing import Any

from tests.support.sim import Simulator


class DarajaSim(Simulator):
    def transfers(self) -> list[dict[str, Any]]:
        """The witness: every Reversal and B2C made, with ``made`` and its result deliveries."""
        result: list[dict[str, Any]] = self._call("GET", "/transfers")["transfers"]
        return result

    def transfer(self, originator_conversation_id: str) -> dict[str, Any]:
        [found] = [
            t
            for t in self.transfers()
            if t["originator_conversation_id"] == originator_conversation_id
        ]
        return found

    def transfer_scenario(self, **scenario: Any) -> dict[str, Any]:
        """E.g. ``transfer_scenario(match={"party": "2547…"}, result_code=2040)``; the keys
        are in ``sandbox/daraja/transfer_state.py``."""
        result: dict[str, Any] = self._call("POST", "/transfers/scenarios", json=scenario)
        return result

    def certificate(self) -> bytes:
        """The PEM certificate the simulator decrypts SecurityCredentials with."""
        response = self.http.get(f"{self.base_url}/_sim/certificate", timeout=10)
        response.raise_for_status()
        return response.content
