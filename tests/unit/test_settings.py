"""Start-up configuration: missing or unsafe settings stop a process, naming the variable."""

from __future__ import annotations

import base64
import os
import secrets
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import new_callback_secret
from shared.gateways import catalogue
from shared.settings import (
    CALLBACK_URL_FORBIDDEN_WORDS,
    ConfigurationError,
    Settings,
    forbidden_callback_words,
    load_settings,
    use_local_config,
)
from tests.unit.properties import PROPERTY

SANDBOX_URL = "https://sandbox.safaricom.co.ke"
PRODUCTION_URL = "https://api.safaricom.co.ke"
DB_PASSWORD = "db-pw-7f3a9c"
BROKER_PASSWORD = "mq-pw-2b8e41"
# A 32-byte key in the URL-safe alphabet ('-'/'_'), which standard base64 refuses.
URLSAFE_KEY = base64.urlsafe_b64encode(bytes([0xFB, 0xFF]) * 16).decode()


def key_b64(length: int = 32) -> str:
    return base64.b64encode(os.urandom(length)).decode()


def random_secret_key() -> str:
    # Hex only: it can never spell a sandbox marker such as "test" or "demo".
    return secrets.token_hex(24)


def base_env() -> dict[str, str]:
    """A complete, valid sandbox configuration."""
    return {
        "MALIPO_DATABASE_URL": f"postgresql+psycopg://malipo:{DB_PASSWORD}@db.internal/malipo",
        "MALIPO_BROKER_URL": f"amqp://malipo:{BROKER_PASSWORD}@mq.internal:5672/malipo",
        "MALIPO_SECRET_KEY": random_secret_key(),
        "MALIPO_CREDENTIALS_KEYS": f"k2026:{key_b64()}",
    }


def production_env() -> dict[str, str]:
    return {
        **base_env(),
        "MALIPO_ENV": "production",
        "MALIPO_PUBLIC_BASE_URL": "https://pay.malipo.co.ke",
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MALIPO_* variable from the outside (tests/conftest.py sets a whole test env)."""
    for name in list(os.environ):
        if name.upper().startswith("MALIPO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MALIPO_CONFIG_FILE", "")  # a checkout's config/local.env stays out
    return monkeypatch


def apply(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def refusal(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> str:
    apply(monkeypatch, variables)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    # The pydantic error (which holds the input values) is not chained for tracebacks.
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__
    return str(refused.value)


def assert_no_secret_in(message: str, variables: dict[str, str]) -> None:
    assert DB_PASSWORD not in message
    assert BROKER_PASSWORD not in message
    for name in ("MALIPO_SECRET_KEY", "MALIPO_CREDENTIALS_KEYS"):
        value = variables.get(name)
        if value:
            assert value not in message
            if ":" in value:
                for part in value.split(","):
                    encoded = part.partition(":")[2]
                    if encoded:
                        assert encoded not in message


# --- required variables -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "BROKER_URL", "CREDENTIALS_KEYS"])
def test_a_missing_required_variable_is_named(env: pytest.MonkeyPatch, name: str) -> None:
    # Given a complete configuration without one required variable
    variables = base_env()
    del variables[f"MALIPO_{name}"]
    # When settings are loaded
    message = refusal(env, variables)
    # Then the process stops with an error naming that variable
    assert f"MALIPO_{name}" in message
    assert_no_secret_in(message, variables)


def test_every_missing_variable_is_named_at_once(env: pytest.MonkeyPatch) -> None:
    message = refusal(env, {})
    for name in ("SECRET_KEY", "DATABASE_URL", "BROKER_URL", "CREDENTIALS_KEYS"):
        assert f"MALIPO_{name}" in message


def test_a_complete_sandbox_configuration_loads(env: pytest.MonkeyPatch) -> None:
    variables = base_env()
    apply(env, variables)
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.env == "sandbox"
    assert loaded.secret_key.get_secret_value() == variables["MALIPO_SECRET_KEY"]
    # secrets do not show in the settings' own repr
    assert variables["MALIPO_SECRET_KEY"] not in repr(loaded)
    assert DB_PASSWORD not in repr(loaded)


# --- the secret key ------------------------------------------------------------------------


@settings(PROPERTY, max_examples=50)
@given(secret=st.text(alphabet=string.ascii_letters + string.digits, min_size=0, max_size=31))
def test_a_short_secret_key_is_refused_without_echoing_it(secret: str) -> None:
    # Given a secret key shorter than 32 characters
    variables = {**base_env(), "MALIPO_SECRET_KEY": secret}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in [n for n in os.environ if n.upper().startswith("MALIPO_")]:
            monkeypatch.delenv(name)
        # When settings are loaded
        message = refusal(monkeypatch, variables)
    # Then the error names the variable but never its value
    assert "MALIPO_SECRET_KEY" in message
    if len(secret) >= 4:
        assert secret not in message


def test_a_31_character_secret_key_is_one_too_short(env: pytest.MonkeyPatch) -> None:
    message = refusal(env, {**base_env(), "MALIPO_SECRET_KEY": "k" * 31})
    assert "MALIPO_SECRET_KEY" in message
    assert "k" * 31 not in message


def test_a_32_character_secret_key_is_enough(env: pytest.MonkeyPatch) -> None:
    apply(env, {**base_env(), "MALIPO_SECRET_KEY": "k" * 32})
    assert load_settings().secret_key.get_secret_value() == "k" * 32


# --- credentials keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(f"k1:{key_b64(16)}", id="16-bytes"),
        pytest.param(f"k1:{key_b64(31)}", id="31-bytes"),
        pytest.param(f"k1:{key_b64(33)}", id="33-bytes"),
        pytest.param(f"k1:{key_b64(64)}", id="64-bytes"),
        pytest.param("k1:not*base64*at*all*not*base64*at*all*xx", id="not-base64"),
        pytest.param(f"k1:{key_b64()[:-2]}", id="bad-padding"),
        pytest.param(f"k1:{URLSAFE_KEY}", id="urlsafe"),
        pytest.param(key_b64(), id="no-id"),
        pytest.param(f":{key_b64()}", id="empty-id"),
        pytest.param(f"1k:{key_b64()}", id="id-not-identifier"),
        pytest.param(f"k1:{key_b64()},k1:{key_b64()}", id="duplicate-ids"),
        pytest.param(f"k1:{key_b64()},k2:{key_b64(16)}", id="second-key-bad"),
        pytest.param(" , ", id="no-keys"),
    ],
)
def test_bad_credentials_keys_are_refused(env: pytest.MonkeyPatch, keys: str) -> None:
    # Given credentials keys that are not 'id:base64(32 bytes)' with unique ids
    variables = {**base_env(), "MALIPO_CREDENTIALS_KEYS": keys}
    # When settings are loaded
    message = refusal(env, variables)
    # Then the variable is named and no key material is echoed
    assert "MALIPO_CREDENTIALS_KEYS" in message
    assert_no_secret_in(message, variables)


def test_several_well_formed_keys_are_accepted(env: pytest.MonkeyPatch) -> None:
    apply(env, {**base_env(), "MALIPO_CREDENTIALS_KEYS": f"new:{key_b64()}, old:{key_b64()}"})
    assert load_settings().credentials_keys.get_secret_value().startswith("new:")


# --- production -----------------------------------------------------------------------------


def test_a_proper_production_configuration_loads(env: pytest.MonkeyPatch) -> None:
    # Given an https public URL, a random secret key and a neutral key id
    apply(env, production_env())
    # When settings are loaded
    loaded = load_settings()
    # Then the process may start, against Daraja's production API
    assert loaded.env == "production"
    assert loaded.gateway_settings("daraja").base_url == PRODUCTION_URL
    assert (
        loaded.callback_url("daraja", "s3", "a1")
        == "https://pay.malipo.co.ke/callbacks/daraja/s3/a1"
    )


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        pytest.param(
            {"MALIPO_PUBLIC_BASE_URL": "http://pay.malipo.co.ke"},
            "MALIPO_PUBLIC_BASE_URL",
            id="http-public-url",
        ),
        pytest.param({}, "MALIPO_PUBLIC_BASE_URL", id="default-public-url"),
        pytest.param(
            {"MALIPO_DARAJA_BASE_URL": "http://api.safaricom.co.ke"},
            "MALIPO_DARAJA_BASE_URL",
            id="http-daraja-override",
        ),
        pytest.param(
            {"MALIPO_SECRET_KEY": "sandbox-" + "x" * 40},
            "MALIPO_SECRET_KEY",
            id="sandbox-secret-key",
        ),
        pytest.param(
            {"MALIPO_SECRET_KEY": "ChangeMe" + "x" * 40}, "MALIPO_SECRET_KEY", id="changeme-key"
        ),
        pytest.param(
            {"MALIPO_CREDENTIALS_KEYS": f"sandbox:{key_b64()}"},
            "MALIPO_CREDENTIALS_KEYS",
            id="sandbox-key-id",
        ),
        pytest.param(
            {"MALIPO_CREDENTIALS_KEYS": f"prod:{key_b64()},test_old:{key_b64()}"},
            "MALIPO_CREDENTIALS_KEYS",
            id="test-key-id-second",
        ),
    ],
)
def test_production_refuses_unsafe_settings(
    env: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    # Given a production configuration with one unsafe value
    config = production_env()
    if not variables:
        del config["MALIPO_PUBLIC_BASE_URL"]
    config.update(variables)
    # When settings are loaded
    message = refusal(env, config)
    # Then the process stops, naming the variable and not echoing secrets
    assert named in message
    assert_no_secret_in(message, config)


def test_the_same_values_are_fine_in_the_sandbox(env: pytest.MonkeyPatch) -> None:
    apply(
        env,
        {
            **base_env(),
            "MALIPO_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
            "MALIPO_SECRET_KEY": "sandbox-" + "x" * 40,
            "MALIPO_CREDENTIALS_KEYS": f"sandbox:{key_b64()}",
        },
    )
    assert load_settings().env == "sandbox"


# --- callback URLs Safaricom accepts --------------------------------------------------------


@pytest.mark.parametrize("environment", ["sandbox", "production"])
@pytest.mark.parametrize(
    "url", ["https://mpesa.shop.co.ke", "https://pay.shop.co.ke/M-PESA", "https://SQL.shop.co.ke"]
)
def test_a_public_url_safaricom_would_refuse_stops_the_process(
    env: pytest.MonkeyPatch, environment: str, url: str
) -> None:
    config = production_env() if environment == "production" else base_env()
    message = refusal(env, {**config, "MALIPO_PUBLIC_BASE_URL": url})
    assert "MALIPO_PUBLIC_BASE_URL" in message
    assert "Safaricom refuses" in message


def test_daraja_callback_urls_never_name_the_gateway(env: pytest.MonkeyPatch) -> None:
    apply(env, base_env())
    url = load_settings().callback_url("daraja", new_callback_secret(), "attempt-1")
    assert forbidden_callback_words(url) == []
    assert "/callbacks/daraja/" in url


@pytest.mark.parametrize(
    ("segment", "gateway"),
    [("daraja", "daraja"), ("mpesa", "daraja"), ("nope", None)],
)
def test_the_public_segment_a_name_or_a_former_name_lead_to_the_gateway(
    segment: str, gateway: str | None
) -> None:
    found = catalogue.for_callback_segment(segment)
    assert (found.name if found else None) == gateway


def test_callback_secrets_can_spell_no_word_safaricom_refuses() -> None:
    # Hex digits cannot spell any of the words: each has a letter outside a-f.
    assert all(set(word) - set("0123456789abcdef") for word in CALLBACK_URL_FORBIDDEN_WORDS)
    for _ in range(200):
        secret = new_callback_secret()
        assert len(secret) == 64
        assert set(secret) <= set("0123456789abcdef")  # 256 bits


# --- gateway base URLs ----------------------------------------------------------------------


def test_sandbox_uses_the_daraja_sandbox(env: pytest.MonkeyPatch) -> None:
    apply(env, base_env())
    assert load_settings().gateway_settings("daraja").base_url == SANDBOX_URL


def test_production_uses_the_daraja_production_api(env: pytest.MonkeyPatch) -> None:
    apply(env, production_env())
    assert load_settings().gateway_settings("daraja").base_url == PRODUCTION_URL


@pytest.mark.parametrize(
    ("environment", "override", "expected"),
    [
        ("sandbox", "http://127.0.0.1:8900", "http://127.0.0.1:8900"),
        ("sandbox", "http://127.0.0.1:8900/", "http://127.0.0.1:8900"),
        ("production", "https://daraja-proxy.malipo.co.ke", "https://daraja-proxy.malipo.co.ke"),
    ],
)
def test_an_override_wins_over_the_environment(
    env: pytest.MonkeyPatch, environment: str, override: str, expected: str
) -> None:
    config = production_env() if environment == "production" else base_env()
    apply(env, {**config, "MALIPO_DARAJA_BASE_URL": override})
    assert load_settings().gateway_settings("daraja").base_url == expected


@pytest.mark.parametrize("url", ["127.0.0.1:8900", "ftp://host", "not a url", "/relative"])
def test_a_malformed_override_is_refused(env: pytest.MonkeyPatch, url: str) -> None:
    message = refusal(env, {**base_env(), "MALIPO_DARAJA_BASE_URL": url})
    assert "MALIPO_DARAJA_BASE_URL" in message


def write_local_config(env: pytest.MonkeyPatch, tmp_path: Any, *lines: str) -> str:
    """A config file; what use_local_config may set from it is unset again after the test."""
    for line in lines:
        name = line.partition("=")[0]
        env.setenv(name, "")  # remembers the variable's absence (or value) for teardown
        env.delenv(name)
    path = tmp_path / "local.env"
    path.write_text("\n".join(["# local values", *lines, ""]))
    return str(path)


def test_local_config_fills_only_what_the_environment_leaves_unset(
    env: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config = write_local_config(
        env, tmp_path, "MALIPO_INGRESS_PORT=8111", "MALIPO_SANDBOX_PORT=8999", "MALIPO_ENV=sandbox"
    )
    apply(env, {**base_env(), "MALIPO_CONFIG_FILE": config, "MALIPO_SANDBOX_PORT": "8901"})

    assert use_local_config() is not None
    loaded = load_settings()

    assert (loaded.ingress_port, loaded.sandbox_port) == (8111, 8901)


@pytest.mark.parametrize("where", ["environment", "file"])
def test_local_config_is_never_read_in_production(
    env: pytest.MonkeyPatch, tmp_path: Any, where: str
) -> None:
    lines = ["MALIPO_INGRESS_PORT=8111"] + (["MALIPO_ENV=production"] if where == "file" else [])
    config = write_local_config(env, tmp_path, *lines)
    apply(env, {"MALIPO_CONFIG_FILE": config})
    if where == "environment":
        apply(env, {"MALIPO_ENV": "production"})

    assert use_local_config() is None
    assert "MALIPO_INGRESS_PORT" not in os.environ


def test_an_empty_config_file_setting_reads_nothing(env: pytest.MonkeyPatch) -> None:
    # The env fixture sets MALIPO_CONFIG_FILE="" (as the suite does): not even the checkout's
    assert use_local_config() is None
    assert "MALIPO_DATABASE_URL" not in os.environ
