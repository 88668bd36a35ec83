"""Configuration from the environment, the WSGI entry point and the ``sandbox`` command."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from sandbox import cli
from sandbox.config import SimulatorConfig


def test_defaults() -> None:
    config = SimulatorConfig.from_env({})

    assert config == SimulatorConfig(
        callback_delay_s=2.0, token_ttl_s=3599, query_pending_style="error", latency_s=0.0
    )


def test_values_from_env() -> None:
    config = SimulatorConfig.from_env(
        {
            "SANDBOX_CALLBACK_DELAY_S": "0.5",
            "SANDBOX_TOKEN_TTL_S": "60",
            "SANDBOX_QUERY_PENDING_STYLE": "4999",
            "SANDBOX_LATENCY_S": "0.01",
        }
    )

    assert config.callback_delay_s == 0.5
    assert config.token_ttl_s == 60
    assert config.query_pending_style == "4999"
    assert config.latency_s == 0.01


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SANDBOX_CALLBACK_DELAY_S", "soon"),
        ("SANDBOX_TOKEN_TTL_S", "-1"),
        ("SANDBOX_LATENCY_S", "inf"),
        ("SANDBOX_QUERY_PENDING_STYLE", "silent"),
    ],
)
def test_bad_env_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        SimulatorConfig.from_env({name: value})


def test_wsgi_module_builds_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CALLBACK_DELAY_S", "0.1")
    monkeypatch.delitem(sys.modules, "sandbox.wsgi", raising=False)

    from sandbox import wsgi

    assert callable(wsgi.application)


def run_cli(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]) -> list[str]:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: calls.append((file, argv)))

    result = CliRunner().invoke(cli.sandbox, args, env=env)

    assert result.exit_code == 0, result.output
    ((file, argv),) = calls
    assert file == sys.executable
    return argv


def test_cli_execs_one_gunicorn_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = run_cli(monkeypatch, [], {"MALIPO_SANDBOX_HOST": "", "MALIPO_SANDBOX_PORT": ""})

    assert argv == [
        sys.executable,
        "-m",
        "gunicorn",
        "sandbox.wsgi:application",
        "--bind",
        "127.0.0.1:8900",
        "--workers",
        "1",
        "--threads",
        "16",
        "--no-control-socket",
    ]


def test_cli_host_and_port_from_env_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"MALIPO_SANDBOX_HOST": "192.0.2.7", "MALIPO_SANDBOX_PORT": "9000"}

    assert "192.0.2.7:9000" in run_cli(monkeypatch, [], env)
    assert "192.0.2.7:9100" in run_cli(monkeypatch, ["--port", "9100"], env)
