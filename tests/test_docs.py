"""The README stays true: its settings, error codes and retry policies are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

from shared.domain.errors import catalogue
from shared.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"MALIPO_{name.upper()}"
        for name, field in Settings.model_fields.items()
        # exclude=True: not a variable itself (the per-gateway MALIPO_<GATEWAY>_* ones)
        if not field.exclude and f"MALIPO_{name.upper()}" not in README
    ]
    assert missing == []


def test_the_error_table_is_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (.+) \|$", README, flags=re.MULTILINE)
    assert rows == [(e.code, str(e.http_status), e.message) for e in catalogue()]


def test_the_retry_table_is_the_policies() -> None:
    from workers.policies import DEFAULT_POLICIES as POLICIES

    for actor, policy in POLICIES.items():
        row = re.search(rf"^\| `{actor}` \| (\d+) \|", README, flags=re.MULTILINE)
        assert row is not None, actor
        assert int(row.group(1)) == policy.max_retries, actor
