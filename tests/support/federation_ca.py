"""A throwaway CA for servers federating over real TLS on loopback, without pytest.

Shared by `tests/support/federation.py` (our servers in a test),
`tests/support/synapse.py` (Synapse as a peer) and `bench/federation.py`
(which must not import pytest). Facts from
`../shared/notes/federation-testing.md`: a certificate for an IP-literal
server name needs an IP SAN, which trustme issues for an address; the CA's
own certificate is what `SSL_CERT_FILE` (our servers) or
`federation_custom_ca_list` (Synapse) names.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import trustme


def free_port_on(address: str) -> int:
    """A TCP port free on `address` right now."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@dataclass
class FederationCa:
    """A throwaway CA that every server of a test (or benchmark) trusts."""

    authority: trustme.CA
    directory: Path

    @property
    def certificate_path(self) -> Path:
        """The CA's own certificate (PEM): what a peer lists as the CA it trusts."""
        return self.directory / "ca.pem"

    def certificate_for(self, address: str) -> tuple[str, str]:
        """(chain path, key path) of a fresh certificate with an IP SAN for `address`."""
        leaf = self.authority.issue_cert(address)
        certs = self.directory / f"{address}.chain.pem"
        key = self.directory / f"{address}.key.pem"
        leaf.private_key_pem.write_to_path(str(key))
        leaf.cert_chain_pems[0].write_to_path(str(certs))
        for blob in leaf.cert_chain_pems[1:]:
            blob.write_to_path(str(certs), append=True)
        return str(certs), str(key)


def new_ca(directory: Path) -> FederationCa:
    """A new CA, its certificate in `directory/ca.pem` (trusted by nothing yet)."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    return FederationCa(authority, directory)
