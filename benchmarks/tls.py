"""A throwaway certificate authority and the trust bundle both contenders load.

The bundle is the system trust store with the throwaway CA appended. A client that
builds a TLS context per request pays for parsing the whole store every time, as it
would in production; with the CA alone that cost would vanish from the comparison.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs
import trustme


@attrs.frozen
class TlsFiles:
    """Paths of the server's certificate chain, its key, and the client trust bundle."""

    cert_chain: Path
    private_key: Path
    ca_bundle: Path
    system_certs: int


def _system_store() -> Path | None:
    cafile = ssl.get_default_verify_paths().openssl_cafile
    path = Path(cafile) if cafile else None
    return path if path is not None and path.is_file() else None


def make_tls_files(directory: Path) -> TlsFiles:
    """Issue a certificate for 127.0.0.1 and write the files the servers and clients need."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_chain = directory / "server-chain.pem"
    private_key = directory / "server-key.pem"
    ca_bundle = directory / "ca-bundle.pem"
    leaf.private_key_pem.write_to_path(str(private_key))
    cert_chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    system = _system_store()
    system_pem = system.read_bytes() if system is not None else b""
    ca_bundle.write_bytes(system_pem.rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    return TlsFiles(cert_chain, private_key, ca_bundle, system_pem.count(b"BEGIN CERTIFICATE"))
