"""Mutual TLS between raftpy servers: the two SSL contexts, and whom a certificate names.

May import: the standard library, raftpy.errors.

What a ``Tls`` gives TcpTransport (and ``Server(tls=...)``):

* ``server``: the context for accepted connections.  It must require a
  client certificate (``verify_mode == CERT_REQUIRED``): mutual TLS is the
  point, so a context that would let an anonymous peer in is refused here.
* ``client``: the context for our connections to peers.  It must check the
  peer's certificate against the host of the address we dial
  (``check_hostname``), so a certificate of the right CA issued to another
  server does not pass for the one configured at that address.

An accepted peer is checked the other way round by TcpTransport: the address
it announces in its handshake (where replies go) must have its host named in
its certificate (``names_host``), or the connection is closed.

libraft peers speak plain TCP and cannot join a cluster whose raftpy servers
use TLS (the README says so).  ``Tls.from_files`` builds both contexts from
PEM files (TLS 1.2 at least; one CA for both sides).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from typing import Any

from raftpy.errors import InvalidError

__all__ = ["Tls", "names_host"]


@dataclass(frozen=True)
class Tls:
    """The SSL contexts of one server: ``server`` for accepted connections,
    ``client`` for the ones it makes (see the module docstring)."""

    server: ssl.SSLContext
    client: ssl.SSLContext

    def __post_init__(self) -> None:
        if self.server.verify_mode != ssl.CERT_REQUIRED:
            raise InvalidError("Tls.server must require client certificates "
                               "(verify_mode = ssl.CERT_REQUIRED): mutual TLS")
        if not self.client.check_hostname or self.client.verify_mode != ssl.CERT_REQUIRED:
            raise InvalidError("Tls.client must verify the peer's certificate and its "
                               "host name (check_hostname = True)")

    @classmethod
    def from_files(cls, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str],
                   ca_file: str | os.PathLike[str]) -> Tls:
        """Contexts from this server's certificate and key and the cluster's CA (PEM)."""
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        for context in (server, client):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(cert_file, key_file)
                context.load_verify_locations(ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidError(f"TLS files: {exc}") from exc
            context.verify_mode = ssl.CERT_REQUIRED
        client.check_hostname = True
        return cls(server, client)


def names_host(certificate: dict[str, Any] | None, host: str) -> bool:
    """Whether a verified peer certificate (``getpeercert()``'s dict) names host:
    an IP address among its IP subjectAltNames, or a DNS name among its DNS ones
    (exact, case-insensitive; a "*." wildcard covers one leftmost label)."""
    if not certificate:
        return False
    names = certificate.get("subjectAltName", ())
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for kind, value in names:
        if kind == "IP Address" and ip is not None:
            try:
                if ipaddress.ip_address(value.strip()) == ip:
                    return True
            except ValueError:
                continue
        elif kind == "DNS" and ip is None and _dns_match(value, host):
            return True
    return False


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host
