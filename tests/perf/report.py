"""The run's outputs: one Markdown table, a JSON file, a chart, and the machine they ran on."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    stage: str
    figure: str
    malipo: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


def verdict(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "yes" if ok else "**no**"


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def markdown_table(rows: Sequence[Row]) -> str:
    header = "| stage | figure | malipo | baseline | ratio | target | met? |"
    lines = [header, "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.stage} | {r.figure} | {r.malipo} | {r.baseline} | {r.ratio} | {r.target} "
            f"| {r.met} |"
        )
    return "\n".join(lines)


# -- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def machine_info(libpq_url: str, rabbitmq_version: str) -> dict[str, Any]:
    with psycopg.connect(libpq_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        postgres = str(row[0]) if row else "unknown"
        settings = {
            name: str(value)
            for name, value in conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (
                    [
                        "max_connections",
                        "shared_buffers",
                        "synchronous_commit",
                        "fsync",
                        "wal_sync_method",
                    ],
                ),
            ).fetchall()
        }
    packages = {}
    for name in ("gunicorn", "falcon", "dramatiq", "pika", "psycopg", "sqlalchemy", "aiohttp"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "postgresql_settings": settings,
        "rabbitmq": rabbitmq_version,
        "wrk": _wrk_version(),
        "packages": packages,
    }


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM; "
        f"{machine['os']}, kernel {machine['kernel']}; Python {machine['python']}; "
        f"PostgreSQL {machine['postgresql']}; {machine['rabbitmq']}; {machine['wrk']}"
    )


def parameters_line(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in parameters.items())


# -- files -----------------------------------------------------------------------------------


def write_outputs(
    results_dir: Path, stamp: str, document: dict[str, Any], rows: Sequence[Row]
) -> list[Path]:
    """``<stamp>.json``, ``latest.json``, ``latest.md`` and ``latest.png`` in ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {**document, "table": [asdict(r) for r in rows]}
    text = json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"
    stamped = results_dir / f"{stamp}.json"
    latest_json = results_dir / "latest.json"
    _atomic_write(stamped, text)
    _atomic_write(latest_json, text)
    latest_md = results_dir / "latest.md"
    _atomic_write(latest_md, markdown_document(document, rows))
    written = [stamped, latest_json, latest_md]
    chart = results_dir / "latest.png"
    if write_chart(chart, document):
        written.append(chart)
    return written


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def markdown_document(document: dict[str, Any], rows: Sequence[Row]) -> str:
    run = document["run"]
    notes = document.get("notes", [])
    parts = [
        f"# malipo benchmark, {run['started_at']}",
        "",
        f"- Machine: {machine_line(document['machine'])}",
        f"- Parameters: {parameters_line(run['parameters'])}",
        f"- Run time: {run['duration_s']:.0f} s"
        + (" (profiled: py-spy was sampling)" if run.get("profiled") else ""),
        "",
        markdown_table(rows),
        "",
    ]
    if notes:
        parts += ["Notes:", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(parts)


def write_chart(path: Path, document: dict[str, Any]) -> bool:
    """Latency percentiles per stage (log scale) and throughput against the baselines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] matplotlib not installed: no chart")
        return False
    stages = document["stages"]
    latency_series: list[tuple[str, dict[str, float]]] = []

    def add(label: str, figures: dict[str, Any] | None) -> None:
        if figures:
            latency_series.append((label, figures))

    intake = stages.get("callback_intake", {})
    add("intake\nmalipo", _pcts(intake.get("malipo")))
    add("intake\nbaseline", _pcts(intake.get("baseline")))
    add("commands\nmalipo", _pcts(stages.get("payment_commands", {}).get("malipo")))
    add("e2e burst\narrival→commit", stages.get("end_to_end", {}).get("arrival_to_commit_ms"))
    at_rate = stages.get("end_to_end_at_rate", {})
    add(f"e2e {at_rate.get('rate', 0):.0f}/s\narrival→commit", at_rate.get("arrival_to_commit_ms"))
    loaded = stages.get("latency_under_load", {}).get("accept") or {}
    add(f"accept\n@{loaded.get('offered_rps') or 0:.0f}/s", _pcts(loaded))

    throughput: list[tuple[str, float, float | None]] = []
    if intake:
        throughput.append(
            (
                "callback intake\n(req/s)",
                intake["malipo"]["accepted_rps"],
                intake["baseline"]["accepted_rps"],
            )
        )
    commands = stages.get("payment_commands")
    if commands:
        throughput.append(
            (
                "payment commands\n(req/s)",
                commands["malipo"]["accepted_rps"],
                commands["baseline_rps"],
            )
        )
    e2e = stages.get("end_to_end")
    if e2e:
        same = e2e.get("same_statements_baseline")
        commits = (e2e.get("baseline") or {}).get("commits_per_s")
        floor = same["callbacks_per_s"] if same else commits
        label = "end to end\n(applied/s;\nbaseline: same statements)" if same else "end to end"
        throughput.append((label, e2e["applied_per_s"], floor))
    initiation = stages.get("initiation")
    if initiation:
        throughput.append(("initiation\n(pushes/s)", initiation["pushes_per_s"], None))

    scaling = stages.get("scaling")
    if scaling:
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(21, 5.5))
        _scaling_panel(ax3, scaling)
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5))
    names = ("p50", "p90", "p99")
    width = 0.26
    for k, name in enumerate(names):
        values = [max(series.get(name) or 0.0, 0.01) for _, series in latency_series]
        xs = [i + (k - 1) * width for i in range(len(latency_series))]
        bars = ax1.bar(xs, values, width, label=name)
        ax1.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=1)
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(latency_series)), [label for label, _ in latency_series], fontsize=8)
    ax1.set_ylabel("milliseconds (log scale)")
    ax1.set_title("Latency percentiles per stage")
    ax1.legend()
    for target, label in ((50, "accept p99 target"), (250, "arrival→commit p99 target")):
        ax1.axhline(target, linestyle="--", linewidth=0.8, color="grey")
        ax1.text(len(latency_series) - 0.5, target * 1.05, label, fontsize=7, ha="right")

    xs = list(range(len(throughput)))
    malipo_values = [m for _, m, _ in throughput]
    baseline_values = [b or 0.0 for _, _, b in throughput]
    bars = ax2.bar([x - 0.2 for x in xs], malipo_values, 0.4, label="malipo")
    ax2.bar_label(bars, labels=[f"{v:,.0f}" for v in malipo_values], fontsize=8)
    bars = ax2.bar([x + 0.2 for x in xs], baseline_values, 0.4, label="baseline")
    ax2.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in baseline_values], fontsize=8)
    ax2.set_xticks(xs, [label for label, _, _ in throughput], fontsize=8)
    ax2.set_ylabel("per second")
    ax2.set_title("Throughput against the baselines")
    ax2.legend()
    fig.suptitle(
        f"malipo bench {document['run']['started_at']} — {document['machine']['cpu_model']}, "
        f"{document['machine']['cores']} cores",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _scaling_panel(ax: Any, scaling: dict[str, Any]) -> None:
    """Callbacks applied/s by worker processes, and by payments already stored (median of
    the runs, the bar's whisker their spread); worker CPU per callback on each bar."""
    labels, values, spreads, cpu = [], [], [], []
    for entry in scaling["by_workers"]:
        labels.append(f"{entry['worker_processes']} worker\nprocess(es)")
        values.append(entry["applied_per_s"])
        spreads.append(0.0)
        cpu.append(entry["worker_cpu_ms"])
    for entry in scaling["by_rows"]:
        labels.append(f"{entry['rows']:,}\npayments stored")
        values.append(entry["applied_per_s"]["median"])
        spreads.append(entry["applied_per_s"]["spread"] / 2)
        cpu.append(entry["worker_cpu_ms"]["median"])
    xs = list(range(len(labels)))
    bars = ax.bar(xs, values, 0.6, yerr=spreads, capsize=4, color="tab:green")
    ax.bar_label(
        bars, labels=[f"{v:,.0f}/s\n{c:.1f} ms" for v, c in zip(values, cpu, strict=True)],
        fontsize=7, padding=2,
    )  # fmt: skip
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("callbacks applied per second")
    ax.set_title("How cost grows (label: worker CPU per callback)")


def _pcts(result: dict[str, Any] | None) -> dict[str, float] | None:
    if not result:
        return None
    return {"p50": result["p50_ms"], "p90": result["p90_ms"], "p99": result["p99_ms"]}
