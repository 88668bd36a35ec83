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
from typing import Any

import click
import phonenumbers
import requests

from shared.crypto import payment_id_for
from shared.domain.money import EXPONENTS
from shared.gateways import catalogue
from shared.gateways.base import Capability
from shared.gateways.description import GatewayDescription
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


def point_gateways_at_simulators(settings: Settings) -> None:
    """In the sandbox, every gateway whose variables leave it unset talks to its simulator."""
    if settings.env != "sandbox":
        return
    simulator = f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    for description in catalogue.descriptions():
        if description.simulator_path is not None:
            variable = description.env_prefix() + "BASE_URL"
            os.environ.setdefault(variable, simulator + description.simulator_path)


def create_demo_merchant() -> dict[str, Any]:
    """A merchant with every gateway's simulator credentials (the sandbox's own accounts)."""
    options = []
    for description in catalogue.descriptions():
        for credential in description.credentials:
            value = description.simulator_credentials.get(credential.name)
            if value is not None:
                options += [description.option(credential), value]
    output = subprocess.run(  # noqa: S603
        [*malipo_command(), "merchant", "create", "demo", "--bus", *options],
        check=True,
        capture_output=True,
    ).stdout
    merchant: dict[str, Any] = json.loads(output)
    return merchant


def fresh_phone(region: str) -> str:
    """A sandbox phone no earlier demo used (per-phone prompt limits count across runs):
    the region's example mobile number with its last six digits drawn at random."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"phonenumbers knows no mobile number of {region}")
    national = phonenumbers.national_significant_number(example)
    for _ in range(100):
        digits = national[:-6] + "".join(secrets.choice("0123456789") for _ in range(6))
        number = phonenumbers.parse(f"+{example.country_code}{digits}")
        if phonenumbers.is_valid_number(number):
            return f"{example.country_code}{digits}"
    return f"{example.country_code}{national}"


def register_cabinets(settings: Settings, merchant: dict[str, Any]) -> None:
    """Type the demo merchant's URLs into the simulators' cabinets (Idram, Telcell).

    Those gateways take the result URL from the merchant's cabinet, not from each
    order: each simulator's ``POST /_sim/cabinet`` stands for that form.
    """
    simulator = f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    back = f"{settings.public_base_url}/pay/return"
    for description in catalogue.descriptions():
        callback_url = merchant.get("callback_urls", {}).get(description.name)
        if not description.result_url_in_cabinet or callback_url is None:
            continue
        # No account named: the simulator's built-in one, whose credentials the demo uses.
        cabinet = {"result_url": callback_url, "success_url": back, "fail_url": back}
        answer = requests.post(
            f"{simulator}/{description.name}/_sim/cabinet", json=cabinet, timeout=5
        )
        answer.raise_for_status()


def demo_payment(description: GatewayDescription) -> dict[str, Any]:
    """A payment the gateway's simulator answers with success, for the ready curl."""
    currency = description.currencies[0]
    exponent = EXPONENTS[currency]
    body: dict[str, Any] = {
        "amount": 100 * 10**exponent,
        "currency": currency,
        "phone": fresh_phone(description.phone_regions[0]),
        "reference": f"ORDER-{secrets.token_hex(4)}",
        "gateway": description.name,
    }
    # A push needs no browser: the simulator finishes it alone.
    if Capability.PUSH in description.flows:
        body["flow"] = Capability.PUSH.value
    else:
        body["success_url"] = "https://shop.example/paid"
        body["failure_url"] = "https://shop.example/failed"
    return body


def print_demo(settings: Settings, merchant: dict[str, Any]) -> None:
    base = f"http://{settings.ingress_host}:{settings.ingress_port}"
    simulator = f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    key_header = f"-H 'Authorization: Bearer {merchant['api_key']}'"
    click.echo(
        f"""
malipo is running: ingress {base}, gateway simulators {simulator}
demo merchant {merchant["id"]}, API key (shown once): {merchant["api_key"]}
routes: {json.dumps(merchant.get("routes", {}))}
"""
    )
    for description in catalogue.descriptions():
        if description.name not in merchant.get("callback_urls", {}):
            continue
        key = f"demo-{secrets.token_hex(4)}"
        payment_id = payment_id_for(uuid.UUID(merchant["id"]), key)
        body = json.dumps(demo_payment(description))
        outcome = (
            "it answers a pay_url: open it in a browser and press Pay on the simulator's page"
            if description.pay_page
            else "the simulator answers with success"
        )
        click.echo(
            f"""{description.title}: start a payment ({outcome})

curl -sS -X POST {base}/v1/payments {key_header} \\
  -H 'Idempotency-Key: {key}' -H 'Content-Type: application/json' \\
  -d '{body}'

and watch it finish (the answer is held, up to 30 s, until the payment is final):

curl -sS '{base}/v1/payments/{payment_id}?wait=30&until=final' {key_header}
"""
        )
    click.echo("Ctrl-C stops everything.")


def run_stack(settings: Settings) -> int:
    stack = Stack(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    point_gateways_at_simulators(settings)
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
        stack.start("bus", "bus", "consume")
        stack.wait_ready(
            "ingress", f"http://{settings.ingress_host}:{settings.ingress_port}/readyz"
        )
        merchant = create_demo_merchant()
        register_cabinets(settings, merchant)
        print_demo(settings, merchant)
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
