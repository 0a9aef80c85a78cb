"""Test-time TLS material made with the ``cryptography`` package.

A CA, a server certificate valid for ``localhost`` and ``127.0.0.1`` (so the
client checks host names as in production), a client certificate for mutual
TLS, and a second CA that signed nothing (for verification failures). Keys are
EC P-256: quick to make. Certificates are valid for two days.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _certificate(subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool = False,
                 server: bool = False) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]) if issuer else name
    signing_key = issuer[1] if issuer else key
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_tls_files(directory: Path) -> dict[str, str]:
    """Create the files in ``directory``; return their paths.

    Keys: ``ca``, ``other_ca``, ``server_cert``, ``server_key``, ``cert`` and
    ``key`` (the client's).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    def save(label: str, filename: str, cert: Any) -> None:
        path = directory / filename
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[label] = str(path)

    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    save("ca", "ca.crt", _certificate("rdzv test CA", ca_key, None, ca=True))
    save("other_ca", "other_ca.crt", _certificate("rdzv other CA", other_key, None, ca=True))
    for label, subject, server in (("server", "localhost", True), ("client", "rdzv-client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(directory / f"{label}.key", key)
        cert = _certificate(subject, key, ("rdzv test CA", ca_key), server=server)
        save("server_cert" if server else "cert", f"{label}.crt", cert)
        files["server_key" if server else "key"] = str(directory / f"{label}.key")
    return files
