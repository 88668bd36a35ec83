"""The spool's settings: an absolute directory checked at start-up, and the key that seals it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ConfigurationError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_a_relative_spool_directory_is_refused_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the old default written out: a directory relative to wherever the process runs
    monkeypatch.setenv("MALIPO_SPOOL_DIR", "var/spool")

    # When the settings are read, Then the process may not start, and is told why
    with pytest.raises(ConfigurationError, match=r"MALIPO_SPOOL_DIR .*must be an absolute path"):
        load_settings()


def test_the_default_spool_directory_is_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALIPO_SPOOL_DIR", raising=False)

    spool_dir = load_settings().spool_dir

    assert os.path.isabs(spool_dir)
    assert spool_dir == str(REPO / "var" / "spool")  # where `make run` always spooled


def test_the_seal_key_is_derived_from_the_secret_key_under_its_own_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALIPO_SPOOL_KEY", raising=False)
    settings = load_settings()
    secret = settings.secret_key.get_secret_value()

    key = settings.spool_seal_key()

    # 32 bytes, stable across processes, never the pepper itself, and another secret's is other
    assert len(key) == 32
    assert key == load_settings().spool_seal_key()
    assert secret.encode() not in key
    assert key != secret.encode()[:32]
    other = settings.model_copy(update={"secret_key": type(settings.secret_key)("x" * 40)})
    assert other.spool_seal_key() != key


def test_a_spool_key_of_its_own_wins_and_must_be_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALIPO_SPOOL_KEY", "s" * 40)
    assert load_settings().spool_seal_key() == b"s" * 40

    monkeypatch.setenv("MALIPO_SPOOL_KEY", "short")
    with pytest.raises(ConfigurationError, match=r"MALIPO_SPOOL_KEY .*at least 32 characters"):
        load_settings()


def test_the_spool_key_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALIPO_SPOOL_KEY", "s" * 40)
    settings: Settings = load_settings()
    assert "s" * 40 not in repr(settings)


def start_gunicorn_config(spool_dir: str) -> subprocess.CompletedProcess[str]:
    """What gunicorn's arbiter does first: load ingress/gunicorn_conf.py."""
    env = {**os.environ, "MALIPO_SPOOL_DIR": spool_dir}
    return subprocess.run(
        [sys.executable, "-c", "import ingress.gunicorn_conf"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_ingress_does_not_start_on_a_spool_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    started = start_gunicorn_config(str(blocker / "spool"))

    assert started.returncode == 2, started.stderr
    assert "malipo ingress: MALIPO_SPOOL_DIR=" in started.stderr
    assert "cannot be created or written" in started.stderr


def test_the_ingress_does_not_start_on_a_relative_spool(tmp_path: Path) -> None:
    started = start_gunicorn_config("spool")

    assert started.returncode == 2, started.stderr
    assert "MALIPO_SPOOL_DIR" in started.stderr
    assert "absolute" in started.stderr


def test_the_ingress_creates_a_missing_spool_private_at_start_up(tmp_path: Path) -> None:
    started = start_gunicorn_config(str(tmp_path / "new" / "spool"))

    assert started.returncode == 0, started.stderr
    assert (tmp_path / "new" / "spool").stat().st_mode & 0o777 == 0o700
