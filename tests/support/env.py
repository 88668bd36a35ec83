"""The environment every test process shares: its own database, vhost, ports and fast timings."""

from __future__ import annotations

import base64
import random
import socket
from pathlib import Path

from tests.support.services import broker_url, database_url

TEST_SECRET_KEY = "sandbox-test-secret-key-0123456789abcdef"
TEST_CREDENTIALS_KEY = base64.b64encode(b"sandbox-test-credentials-key-32b").decode()
DARAJA_APP = {"consumer_key": "malipo-sandbox-key", "consumer_secret": "malipo-sandbox-secret"}
DARAJA_SHORTCODE = "174379"
DARAJA_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
# The SMS simulator's built-in account (sandbox/sms/state.py).
SMS_USERNAME = "sandbox"
SMS_API_KEY = "malipo-sandbox-sms-key"
SMS_SENDER_ID = "MALIPO"
SMTP_FROM = "payments@malipo.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_outside_ephemeral_range() -> int:
    """A free port the kernel never hands out as a client's source port.

    A port that is down for a while (an outage a test stages) must not be an
    ephemeral one: a client retrying a connection to 127.0.0.1:P can be given P
    itself as its source port, and Linux then connects the socket to itself (a
    TCP simultaneous open), so the port is taken when the test wants it back.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10000, low), k=200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below the ephemeral range (starts at {low})")


def build_test_env(spool_dir: str) -> dict[str, str]:
    ingress_port, sandbox_port, smtp_port = free_port(), free_port(), free_port()
    # The Daraja simulator writes its certificate here; malipo encrypts initiator passwords
    # for it with the certificate's key (SecurityCredential).
    certificate = str(Path(spool_dir).parent / "daraja-certificate.pem")
    return {
        "MALIPO_ENV": "sandbox",
        "MALIPO_DATABASE_URL": database_url(),
        "MALIPO_BROKER_URL": broker_url(),
        "MALIPO_SECRET_KEY": TEST_SECRET_KEY,
        "MALIPO_CREDENTIALS_KEYS": f"sandbox:{TEST_CREDENTIALS_KEY}",
        "MALIPO_INGRESS_HOST": "127.0.0.1",
        "MALIPO_INGRESS_PORT": str(ingress_port),
        "MALIPO_INGRESS_WORKERS": "1",
        "MALIPO_INGRESS_THREADS": "8",
        "MALIPO_PUBLIC_BASE_URL": f"http://127.0.0.1:{ingress_port}",
        "MALIPO_SPOOL_DIR": spool_dir,
        "MALIPO_CALLBACK_SIGNING_SECRET": "sandbox-test-callback-signing-secret",
        "MALIPO_SANDBOX_HOST": "127.0.0.1",
        "MALIPO_SANDBOX_PORT": str(sandbox_port),
        "MALIPO_DARAJA_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "MALIPO_DARAJA_CERTIFICATE": certificate,
        "SANDBOX_DARAJA_CERTIFICATE_OUT": certificate,
        # Gateways mounted under the sandbox's /<name>/ prefix (sandbox/mounts.py).
        "MALIPO_INTASEND_BASE_URL": f"http://127.0.0.1:{sandbox_port}/intasend/api/v1",
        "MALIPO_INTOUCH_BASE_URL": f"http://127.0.0.1:{sandbox_port}/intouch/apidist/sec",
        "MALIPO_IDRAM_BASE_URL": f"http://127.0.0.1:{sandbox_port}/idram",
        "MALIPO_TELCELL_BASE_URL": f"http://127.0.0.1:{sandbox_port}/telcell",
        "MALIPO_FASTSHIFT_BASE_URL": f"http://127.0.0.1:{sandbox_port}/fastshift/api/en/vpos",
        "MALIPO_AMERIA_BASE_URL": f"http://127.0.0.1:{sandbox_port}/ameria/VPOS",
        "MALIPO_ARCA_BASE_URL": f"http://127.0.0.1:{sandbox_port}/arca/payment/rest",
        # No checkout configuration (config/local.env) leaks into the suite.
        "MALIPO_CONFIG_FILE": "",
        "MALIPO_WORKER_PROCESSES": "1",
        "MALIPO_WORKER_THREADS": "4",
        "MALIPO_GATEWAY_READ_TIMEOUT_S": "3",
        "MALIPO_POLL_DELAY_S": "2",
        "MALIPO_POLL_MIN_INTERVAL_S": "0.5",
        "MALIPO_POLL_MAX_INTERVAL_S": "2",
        "MALIPO_PAYMENT_EXPIRY_S": "12",
        "MALIPO_HOSTED_PAYMENT_EXPIRY_S": "20",
        "MALIPO_ORPHAN_RECHECKS": "1",
        "MALIPO_SCHEDULER_SWEEP_INTERVAL_S": "1",
        # No scheduled reconciliation unless a test asks: a run touches every merchant.
        "MALIPO_RECONCILE_GATEWAYS": "",
        "MALIPO_RECONCILE_QUERIES_PER_S": "100",
        # Money out: results awaited briefly, then asked for; the sweep runs every second.
        "MALIPO_TRANSFER_RESULT_WAIT_S": "3",
        "MALIPO_TRANSFER_CHECK_S": "1",
        "MALIPO_TRANSFER_CHECK_MAX_S": "4",
        "MALIPO_TRANSFER_DISPATCH_AFTER_S": "5",
        "MALIPO_TRANSFER_SWEEP_INTERVAL_S": "1",
        # Generous limits for the suite; the rate-limit tests set their own.
        "MALIPO_MERCHANT_COMMANDS_PER_MINUTE": "100000",
        "MALIPO_PHONE_PUSH_LIMIT": "100000",
        "MALIPO_PHONE_PUSH_GLOBAL_LIMIT": "100000",
        "MALIPO_CALLBACK_REFUSALS_PER_SOURCE_PER_MIN": "100000",
        "MALIPO_CALLBACK_REFUSALS_GLOBAL_PER_MIN": "100000",
        # Refused callbacks are counted and reported often, so tests see the counts soon.
        "MALIPO_CALLBACK_REFUSAL_REPORT_S": "0.5",
        # The suite's webhook receivers listen on loopback (refused outside the sandbox).
        "MALIPO_WEBHOOK_ALLOW_HOSTS": "127.0.0.1,localhost",
        "MALIPO_CONFIRM_RECHECKS": "3",
        "MALIPO_CALLBACK_POLICY_CACHE_S": "0",
        "MALIPO_LOG_FORMAT": "json",
        "MALIPO_LOG_LEVEL": "INFO",
        "SANDBOX_CALLBACK_DELAY_S": "0.3",
        # Customer notifications: the sandbox's SMS simulator and the ``smtp_sink`` fixture.
        "MALIPO_SMS_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "MALIPO_SMS_USERNAME": SMS_USERNAME,
        "MALIPO_SMS_API_KEY": SMS_API_KEY,
        "MALIPO_SMS_SENDER_ID": SMS_SENDER_ID,
        "MALIPO_SMTP_HOST": "127.0.0.1",
        "MALIPO_SMTP_PORT": str(smtp_port),
        "MALIPO_SMTP_STARTTLS": "false",
        "MALIPO_SMTP_FROM": SMTP_FROM,
        # Dead letters are archived by malipo; RabbitMQ keeps its own copy only briefly in tests.
        "dramatiq_dead_message_ttl": str(3_600_000),
    }
