"""Settings of the Daraja simulator, read once from the environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

QueryPendingStyle = Literal["error", "4999"]
QUERY_PENDING_STYLES: tuple[QueryPendingStyle, ...] = ("error", "4999")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator times and phrases its answers.

    - ``callback_delay_s``: seconds from an accepted push to its outcome being due
      (the callback is POSTed and the query answers with the result from then on).
    - ``token_ttl_s``: lifetime of an OAuth token, also reported as ``expires_in``.
    - ``query_pending_style``: how a query for an outcome not yet due is answered:
      ``"error"`` (HTTP 500, 500.001.1001) or ``"4999"`` (HTTP 200, ResultCode "4999").
    - ``latency_s``: extra delay before every gateway (non ``/_sim``) response.
    - ``callback_timeout_s``: how long one callback POST may take.
    """

    callback_delay_s: float = 2.0
    token_ttl_s: float = 3599.0
    query_pending_style: QueryPendingStyle = "error"
    latency_s: float = 0.0
    callback_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("callback_delay_s", "token_ttl_s", "latency_s", "callback_timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.query_pending_style not in QUERY_PENDING_STYLES:
            raise ValueError(
                f"query_pending_style must be one of {QUERY_PENDING_STYLES}, "
                f"got {self.query_pending_style!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        """Build a config from ``SANDBOX_*`` variables; unset ones keep their defaults.

        Raises ``ValueError`` naming the variable when a value cannot be used.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        style = env.get("SANDBOX_QUERY_PENDING_STYLE", defaults.query_pending_style).strip()
        if style not in QUERY_PENDING_STYLES:
            raise ValueError(f"SANDBOX_QUERY_PENDING_STYLE must be one of {QUERY_PENDING_STYLES}")
        return cls(
            callback_delay_s=_seconds(env, "SANDBOX_CALLBACK_DELAY_S", defaults.callback_delay_s),
            token_ttl_s=_seconds(env, "SANDBOX_TOKEN_TTL_S", defaults.token_ttl_s),
            query_pending_style=style,
            latency_s=_seconds(env, "SANDBOX_LATENCY_S", defaults.latency_s),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value
