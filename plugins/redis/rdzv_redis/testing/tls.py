"""Test-time TLS material: a CA, a server and a client certificate (openssl CLI).

The server certificate is valid for ``localhost`` and ``127.0.0.1`` so that
clients verify host names as in production. Keys are EC P-256: fast to make.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the openssl command is needed to make test certificates (apt-get install -y openssl)")
    result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)  # noqa: S603
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _key(cwd: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=cwd)


def _signed(cwd: Path, name: str, subject: str, extensions: str) -> None:
    _key(cwd, f"{name}.key")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)


def make_tls_files(directory: Path) -> dict[str, str]:
    """Create CA, server and client certificates in ``directory``; return their paths.

    Keys of the result: ``ca``, ``server_cert``, ``server_key``, ``cert``,
    ``key`` (the client's), and ``other_ca`` (a CA that signed nothing here,
    for verification-failure tests).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other_ca"):
        _key(directory, f"{ca}.key")
        _openssl("req", "-x509", "-new", "-key", f"{ca}.key", "-subj", f"/CN=rdzv test {ca}", "-days", "2",
                 "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", f"{ca}.crt", cwd=directory)
    _signed(directory, "server", "/CN=localhost",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _signed(directory, "client", "/CN=rdzv-client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    path = str(directory)
    return {
        "ca": f"{path}/ca.crt",
        "other_ca": f"{path}/other_ca.crt",
        "server_cert": f"{path}/server.crt",
        "server_key": f"{path}/server.key",
        "cert": f"{path}/client.crt",
        "key": f"{path}/client.key",
    }
