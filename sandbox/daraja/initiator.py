"""The simulator's stand-in for Safaricom's certificate, and its API initiators.

Daraja's SecurityCredential is the initiator password encrypted under the public key
of Safaricom's X.509 certificate. The simulator makes its own RSA key pair and a
self-signed certificate, hands the certificate out (``GET /_sim/certificate``, and
the file ``SANDBOX_DARAJA_CERTIFICATE_OUT`` names) and decrypts every credential it
is sent with the private key.

With ``SANDBOX_DARAJA_CERTIFICATE_OUT`` set, the private key is kept beside the
certificate (``<file>.key``) and reused by every later simulator process: a
restarted sandbox (or a second one in a test run) keeps the certificate the
workers already read. Without it, the pair lives and dies with the process.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import fcntl
import functools
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERTIFICATE_OUT_ENV: Final = "SANDBOX_DARAJA_CERTIFICATE_OUT"
# The built-in API initiator (name: password); shared/gateways/daraja/__init__.py names
# it as the simulator's credentials for `make run`.
BUILTIN_INITIATORS: Final[Mapping[str, str]] = {"testapi": "malipo-sandbox-initiator-1"}


class InitiatorKeys:
    """A private RSA key and the self-signed certificate of its public half."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def generate(cls) -> InitiatorKeys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "KE"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "malipo Daraja simulator"),
                x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.daraja.simulator"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def kept_at(cls, certificate_path: str) -> InitiatorKeys:
        """The pair kept at ``certificate_path`` (+ ``.key``), made and written if missing."""
        certificate_file = Path(certificate_path)
        key_file = certificate_file.with_name(certificate_file.name + ".key")
        certificate_file.parent.mkdir(parents=True, exist_ok=True)
        lock_file = certificate_file.with_name(certificate_file.name + ".lock")
        with lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two simulators starting at once make one pair
            kept = cls._read(certificate_file, key_file)
            if kept is not None:
                return kept
            keys = cls.generate()
            _write(key_file, keys.private_pem(), mode=0o600)
            keys.write_certificate(certificate_path)
            return keys

    @classmethod
    def _read(cls, certificate_file: Path, key_file: Path) -> InitiatorKeys | None:
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        except (OSError, ValueError):
            return None
        public = certificate.public_key()
        if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
            return None
        if public.public_numbers() != key.public_key().public_numbers():
            return None
        return cls(key, certificate)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def decrypt(self, credential: str) -> str | None:
        """The password a SecurityCredential carries; None when it is not one of ours."""
        try:
            encrypted = base64.b64decode(credential, validate=True)
            return self._key.decrypt(encrypted, padding.PKCS1v15()).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None

    def write_certificate(self, path: str) -> None:
        """Write the certificate PEM to ``path`` (parent directories made), atomically."""
        _write(Path(path), self.certificate_pem)


def _write(target: Path, content: bytes, mode: int = 0o644) -> None:
    """Write ``content`` to ``target`` atomically (parent directories made)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(content)
    partial.replace(target)


@functools.cache
def process_keys() -> InitiatorKeys:
    """This process's key pair and certificate, made on first use."""
    return InitiatorKeys.generate()


def credential_matches(
    keys: InitiatorKeys, initiators: Mapping[str, str], name: str, credential: str
) -> bool:
    """Whether ``credential`` decrypts to the password of initiator ``name``."""
    expected = initiators.get(name)
    password = keys.decrypt(credential)
    if expected is None or password is None:
        return False
    return hmac.compare_digest(password.encode(), expected.encode())
