"""A service that is not there is one plain line and exit code 2, never a traceback.

Each case runs the real ``malipo`` command in a process of its own, with the
suite's environment but one URL pointing somewhere wrong: a port nothing listens
on, a wrong password, an unknown vhost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.env import free_port

# The suite's own database and vhost exist (so only the URL under test is wrong).
pytestmark = pytest.mark.usefixtures("db", "broker")
MALIPO = [sys.executable, "-c", "from shared.cli import main; main()"]


def env_with(test_env: dict[str, str], **wrong: str) -> dict[str, str]:
    """The suite's environment with ports of its own (the suite's ingress and sandbox hold
    the test environment's), then the values under test."""
    ports = {"MALIPO_INGRESS_PORT": str(free_port()), "MALIPO_SANDBOX_PORT": str(free_port())}
    return {**test_env, **ports, **wrong}


def run(env: dict[str, str], *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MALIPO, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def with_netloc(url: str, netloc: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc))


def assert_one_plain_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_db_upgrade_against_a_closed_port_names_the_setting_and_the_cause(
    test_env: dict[str, str],
) -> None:
    url = with_netloc(test_env["MALIPO_DATABASE_URL"], f"postgres:pw@127.0.0.1:{free_port()}")
    line = assert_one_plain_line(
        run(env_with(test_env, MALIPO_DATABASE_URL=url), "db", "upgrade"),
        "MALIPO_DATABASE_URL=",
        "refused",
        "pg_ctlcluster",
        "brew services start postgresql",
        "docker compose up -d postgres",
    )
    assert ":pw@" not in line
    assert ":***@" in line


def test_db_upgrade_with_a_wrong_password_says_authentication(test_env: dict[str, str]) -> None:
    url = with_netloc(test_env["MALIPO_DATABASE_URL"], "malipo_nobody:wrong@127.0.0.1:5432")
    line = assert_one_plain_line(
        run(env_with(test_env, MALIPO_DATABASE_URL=url), "db", "upgrade"),
        "MALIPO_DATABASE_URL=",
        "authentication",
    )
    assert "wrong" not in line


def test_debug_shows_the_traceback(test_env: dict[str, str]) -> None:
    url = with_netloc(test_env["MALIPO_DATABASE_URL"], f"postgres@127.0.0.1:{free_port()}")
    result = run(env_with(test_env, MALIPO_DATABASE_URL=url), "--debug", "db", "upgrade")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(
    ("netloc", "path", "cause"),
    [
        ("guest:guest@127.0.0.1:{port}", "/", "refused"),
        ("guest:wrong@127.0.0.1:5672", "/", "authentication"),
        ("guest:guest@127.0.0.1:5672", "/malipo-no-such-vhost", "unknown vhost"),
    ],
)
def test_the_broker_s_problem_is_one_line_before_anything_starts(
    test_env: dict[str, str], netloc: str, path: str, cause: str
) -> None:
    parts = urlsplit(test_env["MALIPO_BROKER_URL"])
    url = urlunsplit(parts._replace(netloc=netloc.format(port=free_port()), path=path))
    started = time.monotonic()
    result = run(env_with(test_env, MALIPO_BROKER_URL=url), "dev")
    assert time.monotonic() - started < 10
    line = assert_one_plain_line(result, "MALIPO_BROKER_URL=", cause)
    assert ":guest@" not in line
    assert ":wrong@" not in line


def test_a_port_in_use_is_named_before_anything_starts(test_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(env_with(test_env, MALIPO_INGRESS_PORT=str(port)), "preflight")
    assert_one_plain_line(result, f"MALIPO_INGRESS_PORT=127.0.0.1:{port}", "port already in use")


def test_preflight_passes_when_everything_is_there(test_env: dict[str, str]) -> None:
    result = run(env_with(test_env), "preflight")
    assert result.returncode == 0, result.stderr
    assert "reachable" in result.stderr
