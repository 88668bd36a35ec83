"""``python -m tests.support.chaos_report FILE``: the chaos runs' reports as a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(lines: list[str]) -> str:
    rows = [json.loads(line) for line in lines if line.strip()]
    head = (
        "| run | payments | succeeded | prompts per payment (min–max) "
        "| credits per success (min–max) | events delivered | settled in |\n"
        "|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r['run']} | {r['payments']} | {r['statuses'].get('succeeded', 0)} "
        f"| {r['pushes'][0]}–{r['pushes'][1]} | {r['credits'][0]}–{r['credits'][1]} "
        f"| {r['events_delivered']} | {r['settle_s']:.0f} s |"
        for r in rows
    ]
    return "\n".join([head, *body])


def main(path: str) -> int:
    report = Path(path)
    if not report.exists():
        print(f"no chaos report at {path} (no batch run finished)")
        return 0
    print(table(report.read_text().splitlines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else ".chaos-report.jsonl"))
