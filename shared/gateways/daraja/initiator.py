"""The initiator's SecurityCredential, and Safaricom's certificate it is encrypted under.

Every money-out call (Reversal, B2C, Transaction Status) carries the initiator's
password encrypted with RSA PKCS#1 v1.5 under the public key of Safaricom's X.509
certificate, base64-encoded. The certificate is process configuration
(``MALIPO_DARAJA_CERTIFICATE``, a PEM file): it is read on the first money-out
call, not at start-up, so a file mounted later is still found.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.gateways.base import GatewayUnavailable

CERTIFICATE_SETTING = "certificate"
CERTIFICATE_ENV = "MALIPO_DARAJA_CERTIFICATE"


def public_key_of(certificate_pem: bytes) -> RSAPublicKey:
    """The RSA public key of a PEM certificate; ValueError when it is not one."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the certificate's key is not an RSA key")
    return key


def security_credential(password: str, key: RSAPublicKey) -> str:
    """base64(RSA PKCS#1 v1.5 encrypt(password)): randomized, so new on every call."""
    encrypted = key.encrypt(password.encode("utf-8"), padding.PKCS1v15())
    return base64.b64encode(encrypted).decode("ascii")


class InitiatorCertificate:
    """Safaricom's certificate, read lazily from ``path`` and kept until the file changes
    (a renewed certificate, or a restarted simulator's new one, is picked up; thread-safe)."""

    def __init__(self, path: str | None) -> None:
        self.path = path.strip() if path else None
        self._lock = threading.Lock()
        self._key: RSAPublicKey | None = None
        self._stamp: tuple[int, int] | None = None

    def key(self) -> RSAPublicKey:
        """The public key; GatewayUnavailable (nothing was sent) when it cannot be had."""
        with self._lock:
            stamp = self._file_stamp()
            # A file gone missing keeps the key already read; a changed file replaces it.
            if self._key is None or (stamp is not None and stamp != self._stamp):
                self._key = self._load()
                self._stamp = stamp
            return self._key

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = Path(self.path).stat() if self.path else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat else None

    def credential(self, password: str) -> str:
        return security_credential(password, self.key())

    def _load(self) -> RSAPublicKey:
        if not self.path:
            raise GatewayUnavailable(
                f"{CERTIFICATE_ENV} is not set: Daraja refunds and payouts need the path of "
                "Safaricom's X.509 certificate (PEM) to encrypt the SecurityCredential"
            )
        try:
            pem = Path(self.path).read_bytes()
        except OSError as exc:
            raise GatewayUnavailable(
                f"{CERTIFICATE_ENV}={self.path} cannot be read ({type(exc).__name__})"
            ) from None
        try:
            return public_key_of(pem)
        except ValueError as exc:
            raise GatewayUnavailable(
                f"{CERTIFICATE_ENV}={self.path} is not a PEM X.509 certificate with an RSA key"
                f" ({exc})"
            ) from None
