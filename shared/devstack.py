"""``malipo dev``: every process of a local stack, supervised, stopped cleanly on Ctrl-C.

Each process is started as its own ``malipo`` command in its own process group,
exactly as a deployment would run it; this module only starts, watches and stops
them, and prints a ready-to-paste request.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from types import FrameType

import click
import requests

from shared.crypto import payment_id_for
from shared.settings import Settings

STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def malipo_command() -> list[str]:
    found = shutil.which("malipo", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "shared.cli"]


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[Child] = []
        self.stopping = False

    def start(self, name: str, *args: str) -> None:
        process = subprocess.Popen([*malipo_command(), *args], start_new_session=True)  # noqa: S603
        self.children.append(Child(name, process))
        click.echo(f"[malipo dev] started {name} (pid {process.pid})", err=True)

    def wait_ready(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not become ready at {url}")

    def check_alive(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise RuntimeError(f"{child.name} exited with code {code}")

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                click.echo(f"[malipo dev] {child.name} did not stop; killing it", err=True)
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        click.echo("[malipo dev] all processes stopped", err=True)


def create_demo_merchant() -> dict[str, str]:
    output = subprocess.run(  # noqa: S603
        [*malipo_command(), "merchant", "create", "demo"], check=True, capture_output=True
    ).stdout
    merchant: dict[str, str] = json.loads(output)
    return merchant


def print_demo(settings: Settings, merchant: dict[str, str]) -> None:
    base = f"http://{settings.ingress_host}:{settings.ingress_port}"
    key = f"demo-{secrets.token_hex(4)}"
    payment_id = payment_id_for(uuid.UUID(merchant["id"]), key)
    body = json.dumps(
        {"amount": 100, "currency": "KES", "phone": "0712345678", "reference": f"ORDER-{key[5:]}"}
    )
    simulator = f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    click.echo(
        f"""
malipo is running: ingress {base}, Daraja simulator {simulator}
demo merchant {merchant["id"]}, API key (shown once): {merchant["api_key"]}

Start a payment (KES 1.00 from 0712345678; the simulator answers with success):

curl -sS -X POST {base}/v1/payments \\
  -H 'Authorization: Bearer {merchant["api_key"]}' \\
  -H 'Idempotency-Key: {key}' \\
  -H 'Content-Type: application/json' \\
  -d '{body}'

Then watch it finish (the answer is held, up to 30 s, until the payment is final):

curl -sS '{base}/v1/payments/{payment_id}?wait=30&until=final' \\
  -H 'Authorization: Bearer {merchant["api_key"]}'

Ctrl-C stops everything.
"""
    )


def run_stack(settings: Settings) -> int:
    stack = Stack(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start(
            "sandbox",
            "sandbox",
            "--host",
            settings.sandbox_host,
            "--port",
            str(settings.sandbox_port),
        )
        stack.wait_ready(
            "sandbox", f"http://{settings.sandbox_host}:{settings.sandbox_port}/_sim/health"
        )
        stack.start("ingress", "ingress")
        stack.start("workers", "workers")
        stack.start("scheduler", "scheduler")
        stack.wait_ready(
            "ingress", f"http://{settings.ingress_host}:{settings.ingress_port}/readyz"
        )
        print_demo(settings, create_demo_merchant())
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("\n[malipo dev] stopping", err=True)
        return_code = 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        click.echo(f"[malipo dev] {exc}", err=True)
        return_code = 1
    finally:
        stack.stop()
    return return_code
