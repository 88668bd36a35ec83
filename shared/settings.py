"""One settings object for every malipo process, validated at start-up.

Every value comes from an environment variable named ``MALIPO_<FIELD>``. Secrets
have no default: a process that lacks one stops before doing anything, naming
the variable. Nothing here is read at import time; call :func:`load_settings`
from a process entry point (``wsgi.py``, ``workers/main.py``, the CLI) and pass
the object on.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.gateways import catalogue
from shared.gateways.description import GatewaySettings

# Safaricom refuses a CallBackURL containing any of these words (case-insensitive), so a
# gateway's public callback path never spells its own name: Daraja's is /callbacks/daraja/.
CALLBACK_URL_FORBIDDEN_WORDS = (
    "m-pesa",
    "mpesa",
    "safaricom",
    "exe",
    "exec",
    "cmd",
    "sql",
    "query",
)

# Values that only make sense against a gateway's public sandbox or a laptop.
# Production refuses credentials and keys containing any of them.
SANDBOX_MARKERS = ("sandbox", "test", "demo", "example", "changeme", "dummy")
# A checkout's local configuration (what `make run` uses), read by the CLI too.
LOCAL_CONFIG = Path(__file__).resolve().parents[1] / "config" / "local.env"


def looks_like_sandbox(value: str, known_sandbox_values: frozenset[str] = frozenset()) -> bool:
    """True when a credential or key is one of a gateway's public sandbox values or says so."""
    lowered = value.lower()
    return value in known_sandbox_values or any(marker in lowered for marker in SANDBOX_MARKERS)


def _gateway_environment() -> tuple[tuple[str, str], ...]:
    """The MALIPO_<GATEWAY>_* variables: per-gateway settings are read from these.

    A tuple, not a dict: settings are frozen and hashable (processes cache on them).
    """
    prefixes = tuple(d.env_prefix() for d in catalogue.descriptions())
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(prefixes)))


class ConfigurationError(Exception):
    """The environment does not describe a process that may start."""


class Settings(BaseSettings):
    """Everything a malipo process is configured with (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="MALIPO_", extra="ignore", frozen=True)

    env: Literal["sandbox", "production"] = "sandbox"

    # Connections (they carry passwords, so no defaults). The broker URL may list a
    # cluster's nodes separated by ';' (each connection tries them in order).
    database_url: SecretStr
    broker_url: SecretStr
    # How malipo declares its queues: classic (one node) or quorum (a cluster).
    queue_type: Literal["classic", "quorum"] = "classic"

    # Secrets.
    secret_key: SecretStr = Field(description="pepper for API-key hashes; at least 32 characters")
    credentials_keys: SecretStr = Field(
        description="AES-256-GCM keys for gateway credentials: 'id:base64key,...', first is active"
    )

    # Where things listen and how the outside world reaches the ingress.
    ingress_host: str = "127.0.0.1"
    ingress_port: int = Field(default=8000, ge=1, le=65535)
    ingress_workers: int = Field(default=2, ge=1, le=64)
    ingress_threads: int = Field(default=16, ge=1, le=256)
    public_base_url: str = "http://127.0.0.1:8000"
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8900, ge=1, le=65535)
    # MALIPO_<GATEWAY>_BASE_URL, _CONNECT_TIMEOUT_S and _READ_TIMEOUT_S for each gateway.
    gateway_env: tuple[tuple[str, str], ...] = Field(
        default_factory=_gateway_environment, exclude=True
    )

    # Workers.
    worker_processes: int = Field(default=2, ge=1, le=64)
    worker_threads: int = Field(default=8, ge=1, le=256)
    gateway_connect_timeout_s: float = Field(default=5.0, gt=0)
    gateway_read_timeout_s: float = Field(default=30.0, gt=0)
    db_lock_timeout_ms: int = Field(default=10_000, ge=0, description="0: wait for locks forever")
    db_statement_timeout_ms: int = Field(default=60_000, ge=0, description="0: no limit")
    initiation_window_s: int = Field(
        default=120, ge=5, description="a push not sent within this time of acceptance fails"
    )
    poll_delay_s: float = Field(
        default=30.0, ge=0, description="wait for a callback before polling"
    )
    poll_max_interval_s: float = Field(default=30.0, gt=0)
    payment_expiry_s: int = Field(default=180, ge=10, description="pending window, then expired")
    hosted_payment_expiry_s: int = Field(
        default=1800, ge=10, description="a hosted page's pending window (the bill's validity)"
    )
    pay_link_ttl_s: int = Field(
        default=86_400, ge=60, description="how long a pay page link (its token) works"
    )
    poll_min_interval_s: float = Field(default=5.0, gt=0)
    # Money out (refunds and payouts).
    transfer_result_wait_s: float = Field(
        default=120.0, gt=0, description="wait for a transfer's result before asking the gateway"
    )
    transfer_check_s: float = Field(
        default=10.0, gt=0, description="first check of a transfer whose outcome is unknown"
    )
    transfer_check_max_s: float = Field(default=600.0, gt=0)
    transfer_dispatch_after_s: float = Field(
        default=30.0, gt=0, description="re-enqueue a pending transfer nobody picked up"
    )
    transfer_sweep_interval_s: float = Field(default=15.0, gt=0)
    orphan_rechecks: int = Field(
        default=3,
        ge=0,
        le=10,
        description="re-checks of an unmatched callback before it is an orphan",
    )
    audit_seal_interval_s: float = Field(
        default=5.0, gt=0, description="how often audit rows are chained"
    )
    scheduler_sweep_interval_s: float = Field(default=15.0, gt=0)

    # Reconciliation (see workers/reconcile.py).
    reconcile_cron: str = Field(
        default="0 23 * * *",
        description="when scheduled runs start: five cron fields, or six with seconds first",
    )
    reconcile_timezone: str = Field(default="Africa/Nairobi")
    reconcile_window_h: float = Field(
        default=24.0, gt=0, le=24 * 31, description="a scheduled run covers this many hours"
    )
    reconcile_lag_s: float = Field(
        default=1800.0,
        ge=0,
        description="a scheduled window ends this long before the run, so callbacks can land",
    )
    reconcile_slack_s: float = Field(
        default=900.0, ge=0, description="the gateway's list is read this much wider each side"
    )
    reconcile_queries_per_s: float = Field(
        default=5.0, gt=0, le=100, description="status queries per gateway during a run"
    )
    reconcile_gateways: str = Field(
        default="daraja,intasend", description="gateways the scheduled run reconciles"
    )

    # Ingress behaviour.
    max_wait_s: int = Field(default=30, ge=0, le=30)
    # Long-polls (GET ?wait=) waiting at once: per ingress process (default: half its
    # threads, so waits never take the threads callbacks need) and per API key.
    max_waiting_requests: int | None = Field(default=None, ge=1, le=256)
    max_waits_per_key: int = Field(default=4, ge=1, le=256)
    max_body_bytes: int = Field(default=16_384, ge=1024)
    max_json_depth: int = Field(default=10, ge=2, le=100)
    max_header_bytes: int = Field(default=8_192, ge=256, description="per header line")
    max_headers: int = Field(default=64, ge=8)
    trusted_proxies: str = Field(
        default="", description="CIDRs whose X-Forwarded-For is believed, comma-separated"
    )
    callback_policy_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="how often each ingress process asks which callback policies changed",
    )
    callback_policy_cache_entries: int = Field(
        default=10_000, ge=1, description="merchant callback policies each ingress process keeps"
    )
    # Refused callbacks (ingress/refusals.py), per ingress process: a source, and the whole
    # process, may cost this many refusals a minute before being answered 429 without I/O.
    callback_refusals_per_source_per_min: int = Field(
        default=60, ge=1, description="refused callbacks a minute from one source address"
    )
    callback_refusals_global_per_min: int = Field(
        default=1_200, ge=1, description="refused callbacks a minute, all sources together"
    )
    callback_refusal_report_s: float = Field(
        default=5.0, gt=0, le=60, description="how often refusal counts are sent to be stored"
    )
    # The callback spool (ingress/spool.py): an absolute directory, entries sealed with an HMAC.
    spool_dir: str = Field(
        default=str(LOCAL_CONFIG.parents[1] / "var" / "spool"),
        description="durable callback spool directory (absolute; default: the checkout's)",
    )
    spool_key: SecretStr | None = Field(
        default=None,
        description="HMAC key sealing spool entries; unset: derived from MALIPO_SECRET_KEY",
    )

    @model_validator(mode="after")
    def _operator_webhook_is_signed(self) -> Self:
        if not self.operator_webhook_url:
            return self
        if not self.operator_webhook_url.startswith(("https://", "http://")):
            raise ValueError("MALIPO_OPERATOR_WEBHOOK_URL must be an http(s) URL")
        if self.operator_webhook_secret is None:
            raise ValueError("MALIPO_OPERATOR_WEBHOOK_URL needs MALIPO_OPERATOR_WEBHOOK_SECRET")
        from shared.webhooks import secret_key

        try:
            secret_key(self.operator_webhook_secret.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"MALIPO_OPERATOR_WEBHOOK_SECRET: {exc}") from None
        return self

    @field_validator("reconcile_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Africa/Nairobi)"
            ) from None
        return value

    @model_validator(mode="after")
    def _reconcile_cron_parses(self) -> Self:
        from shared.schedule import cron_trigger

        try:
            cron_trigger(self.reconcile_cron, self.reconcile_timezone)
        except ValueError as exc:
            raise ValueError(f"MALIPO_RECONCILE_CRON: {exc}") from None
        return self

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir_is_absolute(cls, value: str) -> str:
        # Relative to what? The working directory differs between make run, gunicorn and
        # a container: a relative spool could be drained by nobody.
        if not value or not os.path.isabs(value):
            raise ValueError(f"must be an absolute path (got {value!r})")
        return os.path.normpath(value)

    @field_validator("spool_key")
    @classmethod
    def _spool_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _production_spool_key_is_real(self) -> Settings:
        key = self.spool_key
        if self.env == "production" and key and looks_like_sandbox(key.get_secret_value()):
            raise ValueError("MALIPO_SPOOL_KEY looks like a sandbox value")
        return self

    def spool_seal_key(self) -> bytes:
        """The spool's HMAC key: MALIPO_SPOOL_KEY, else HKDF-SHA256 of MALIPO_SECRET_KEY under
        a label of its own (so no new secret is required, and the pepper is never reused as is)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if self.spool_key is not None:
            return self.spool_key.get_secret_value().encode()
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"malipo/spool-seal/v1"
        ).derive(self.secret_key.get_secret_value().encode())

    # Callback signatures (the generic HMAC scheme; see the README).
    callback_signing_secret: SecretStr | None = None
    callback_signature_tolerance_s: int = Field(default=300, ge=1, le=3600)
    confirm_rechecks: int = Field(
        default=10, ge=0, le=100, description="re-checks of an unconfirmable callback"
    )

    # Rate limits.
    merchant_commands_per_minute: int = Field(default=600, ge=1)
    phone_push_limit: int = Field(
        default=3, ge=1, description="pushes per merchant and phone per window"
    )
    phone_push_global_limit: int = Field(
        default=10, ge=1, description="pushes per phone per window, all merchants together"
    )
    phone_push_window_s: int = Field(default=600, ge=10)

    # Redemptions (invoice use-once verification).
    redeem_window_s: int = Field(default=7 * 86_400, ge=60)
    redeem_tolerance_minor: int = Field(default=0, ge=0)

    # Retry policies: JSON overrides of workers/policies.py, e.g.
    # {"apply_callback": {"max_retries": 30, "max_backoff_ms": 600000}}.
    retry_policies: str = Field(default="{}", description="per-actor retry policy overrides (JSON)")

    # The outbox and merchant webhooks (Standard Webhooks).
    outbox_relay_after_s: float = Field(
        default=120.0, gt=0, description="re-publish outbox rows not picked up after this long"
    )
    outbox_relay_interval_s: float = Field(default=10.0, gt=0)
    event_stream_interval_s: float = Field(
        default=2.0, gt=0, description="how often the scheduler asks for malipo.events to catch up"
    )
    dead_letter_drain_interval_s: float = Field(default=60.0, gt=0)
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=30)
    webhook_retry_schedule_s: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="delays between a failed delivery and the next attempt",
    )
    webhook_disable_after_s: int = Field(default=5 * 86_400, ge=60)
    # Webhooks go to public addresses only (shared/egress.py); a laptop or the test suite
    # names the local hosts its receivers listen on. Production refuses any.
    webhook_allow_hosts: str = Field(
        default="",
        description="sandbox only: host names or IPs webhooks may reach though not public",
    )

    @model_validator(mode="after")
    def _webhook_allow_hosts_sandbox_only(self) -> Settings:
        entries = self.webhook_allowed_hosts()
        if any("/" in entry or "@" in entry for entry in entries):
            raise ValueError(
                "MALIPO_WEBHOOK_ALLOW_HOSTS lists host names or IP addresses, comma-separated"
            )
        if entries and self.env == "production":
            raise ValueError(
                "MALIPO_WEBHOOK_ALLOW_HOSTS must be empty in production: it lets merchant "
                "webhooks reach loopback and private addresses"
            )
        return self

    def webhook_allowed_hosts(self) -> frozenset[str]:
        """The hosts and addresses webhooks may reach despite the address rules (sandbox)."""
        return frozenset(
            part.strip() for part in self.webhook_allow_hosts.split(",") if part.strip()
        )

    # Customer notifications: SMS through an Africa's Talking-style HTTP API, e-mail over SMTP.
    sms_base_url: str | None = Field(default=None, description="overrides the SMS API base URL")
    sms_username: str | None = None
    sms_api_key: SecretStr | None = None
    sms_sender_id: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_from: str | None = None

    # Operators' alerts (shared/operator_alerts.py): a signed webhook and/or e-mail.
    operator_webhook_url: str | None = None
    operator_webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_ + base64 (24-64 bytes), signs operator webhooks"
    )
    operator_emails: str | None = Field(default=None, description="comma-separated addresses")

    # Logs.
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("secret_key")
    @classmethod
    def _secret_key_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("credentials_keys")
    @classmethod
    def _credentials_keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_credentials_keys(value.get_secret_value())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("retry_policies")
    @classmethod
    def _policies_are_json(cls, value: str) -> str:
        parsed = json.loads(value or "{}")
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise ValueError('must be a JSON object of objects: {"actor": {"max_retries": 3}}')
        return value or "{}"

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _schedule_is_delays(cls, value: str) -> str:
        delays = [float(part) for part in value.split(",") if part.strip()]
        if not delays or any(delay <= 0 for delay in delays):
            raise ValueError("must be positive delays in seconds, comma-separated")
        return value

    @field_validator("public_base_url", "sms_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _callback_urls_are_acceptable(self) -> Settings:
        words = forbidden_callback_words(self.public_base_url)
        if words:
            raise ValueError(
                f"MALIPO_PUBLIC_BASE_URL contains {', '.join(map(repr, words))}: Safaricom "
                "refuses callback URLs with these words"
            )
        return self

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if not self.public_base_url.startswith("https://"):
            problems.append("MALIPO_PUBLIC_BASE_URL must be https:// in production")
        for description in catalogue.descriptions():
            variable = description.env_prefix() + "BASE_URL"
            if not self.gateway_settings(description.name).base_url.startswith("https://"):
                problems.append(f"{variable} must be https:// in production")
        signing = self.callback_signing_secret
        if signing is not None and looks_like_sandbox(signing.get_secret_value()):
            problems.append("MALIPO_CALLBACK_SIGNING_SECRET looks like a sandbox value")
        if looks_like_sandbox(self.secret_key.get_secret_value()):
            problems.append("MALIPO_SECRET_KEY looks like a sandbox value")
        for key_id, _ in parse_credentials_keys(self.credentials_keys.get_secret_value()):
            if looks_like_sandbox(key_id):
                problems.append("MALIPO_CREDENTIALS_KEYS has a sandbox-looking key id")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _gateway_settings_are_usable(self) -> Settings:
        for description in catalogue.descriptions():
            self.gateway_settings(description.name)
        return self

    def gateway_settings(self, gateway: str) -> GatewaySettings:
        """A gateway's base URL (its own for MALIPO_ENV unless overridden) and timeouts."""
        description = catalogue.describe(gateway)
        prefix = description.env_prefix()
        env = dict(self.gateway_env)
        base_url = env.get(prefix + "BASE_URL") or description.base_urls[self.env]
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{prefix}BASE_URL must be an absolute http(s) URL")
        timeouts = []
        for name, default in (
            ("CONNECT_TIMEOUT_S", self.gateway_connect_timeout_s),
            ("READ_TIMEOUT_S", self.gateway_read_timeout_s),
        ):
            raw = env.get(prefix + name)
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{prefix}{name} must be a number of seconds") from None
            if not 0 < value < 3600:
                raise ValueError(f"{prefix}{name} must be between 0 and 3600 seconds")
            timeouts.append(value)
        extra = {
            name: env[prefix + name.upper()]
            for name in description.settings_fields
            if env.get(prefix + name.upper())
        }
        return GatewaySettings(base_url.rstrip("/"), timeouts[0], timeouts[1], extra)

    def waiting_requests_limit(self) -> int:
        """How many ``?wait=`` requests one ingress process holds at once."""
        if self.max_waiting_requests is not None:
            return min(self.max_waiting_requests, max(1, self.ingress_threads - 1))
        return max(1, self.ingress_threads // 2)

    def webhook_retry_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule_s.split(",") if part.strip()]

    def sms_api_base_url(self) -> str:
        if self.sms_base_url:
            return self.sms_base_url
        live = self.env == "production"
        return (
            "https://api.africastalking.com" if live else "https://api.sandbox.africastalking.com"
        )

    def merchant_callback_url(self, gateway: str, secret: str) -> str:
        """A merchant's callback URL for a gateway (what ``malipo merchant create`` shows)."""
        segment = catalogue.describe(gateway).callback_segment
        return f"{self.public_base_url}/callbacks/{segment}/{secret}"

    def callback_url(self, gateway: str, secret: str, attempt_ref: str) -> str:
        """Where a gateway should POST the result of one attempt."""
        return f"{self.merchant_callback_url(gateway, secret)}/{attempt_ref}"


def forbidden_callback_words(url: str) -> list[str]:
    """The words in ``url`` that make Safaricom refuse it as a CallBackURL."""
    lowered = url.lower()
    return [word for word in CALLBACK_URL_FORBIDDEN_WORDS if word in lowered]


def parse_networks(raw: str) -> list[IPv4Network | IPv6Network]:
    """``"10.0.0.0/8, 192.0.2.7"`` → networks; a bad entry raises ValueError naming it."""
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return networks


def parse_credentials_keys(raw: str) -> list[tuple[str, bytes]]:
    """Parse ``id:base64key,id:base64key``; every key must decode to 32 bytes."""
    keys: list[tuple[str, bytes]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id.isidentifier():
            raise ValueError("each key must be written 'id:base64key' with a simple id")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"key {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"key {key_id!r} must decode to 32 bytes (AES-256)")
        keys.append((key_id, key))
    if not keys:
        raise ValueError("at least one key is required")
    if len({key_id for key_id, _ in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return keys


def settings_or_exit(process: str) -> Settings:
    """For process entry points: the settings, or exit 2 with the reason on stderr."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        sys.stderr.write(f"malipo {process}: {exc}\n")
        raise SystemExit(2) from None


def use_local_config() -> Path | None:
    """Fill unset variables from the checkout's local configuration; never in production.

    For process entry points only (the ``malipo`` command): it sets ``os.environ``,
    which child processes inherit.

    ``MALIPO_CONFIG_FILE`` names another file (empty: none). Variables already set win,
    as with ``config/with-local-env``, so the README's commands work in a checkout as written.
    """
    if os.environ.get("MALIPO_ENV", "sandbox") == "production":
        return None
    named = os.environ.get("MALIPO_CONFIG_FILE")
    path = Path(named) if named else (LOCAL_CONFIG if named is None else None)
    if path is None or not path.is_file():
        return None
    values = dotenv_values(path)
    if values.get("MALIPO_ENV", "sandbox") == "production":
        return None
    for name, value in values.items():
        if value is not None:
            os.environ.setdefault(name, value)
    return path


def load_settings() -> Settings:
    """Read and validate the environment, or raise ConfigurationError naming each variable.

    A checkout's local configuration is the ``malipo`` command's business
    (:func:`use_local_config`, called once at its start), never a library's.
    """
    try:
        return Settings()  # values come from the environment
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            variable = f"MALIPO_{field.upper()}" if error["loc"] else "settings"
            reason = "is required" if error["type"] == "missing" else error["msg"]
            lines.append(f"{variable} {reason}")
        raise ConfigurationError("invalid configuration: " + "; ".join(lines)) from None
