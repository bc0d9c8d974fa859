"""DNS for server discovery: SRV records and host addresses, behind a small interface.

Spec: `content/server-server-api.md` § Resolving server names needs SRV
lookups (`_matrix-fed._tcp`, `_matrix._tcp`) and AAAA/A lookups. The
`Resolver` protocol is what discovery calls, so tests can stand in a stub for
DNS names (the one mock the test suite allows); `DnsResolver` is the real one.

SRV goes through dnspython's async resolver, which runs natively on trio
(`dns.asyncbackend` picks the trio backend through sniffio) and caches
answers for their TTL. Addresses go through `getaddrinfo` (trio runs it in a
thread), so `/etc/hosts` and the system's resolver configuration apply, as
they do for every other program on the machine.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Protocol

import trio

if TYPE_CHECKING:
    import dns.asyncresolver

SRV_LIFETIME_SECONDS = 10.0


class Resolver(Protocol):
    async def srv(self, name: str) -> list[tuple[str, int]]:
        """`(target, port)` of the SRV records of `name`, best first; [] if there are none."""
        ...

    async def addresses(self, host: str, port: int) -> list[str]:
        """The IP addresses of `host` (AAAA and A, CNAMEs followed); [] if it has none."""
        ...


class DnsResolver:
    """The system's DNS: dnspython for SRV, getaddrinfo for addresses."""

    def __init__(self, nameservers: list[str] | None = None, port: int = 53) -> None:
        """`nameservers` replace /etc/resolv.conf's (a test's DNS server on loopback)."""
        self._nameservers = nameservers
        self._port = port
        self._dns: dns.asyncresolver.Resolver | None = None

    def _srv_resolver(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:  # reads /etc/resolv.conf: only once a lookup is needed
            # dnspython too (a few MiB): a server that never federates never loads it.
            import dns.asyncresolver
            import dns.resolver

            self._dns = dns.asyncresolver.Resolver(configure=self._nameservers is None)
            if self._nameservers is not None:
                self._dns.nameservers = self._nameservers
                self._dns.port = self._port
            self._dns.cache = dns.resolver.Cache()
            self._dns.lifetime = SRV_LIFETIME_SECONDS
        return self._dns

    async def srv(self, name: str) -> list[tuple[str, int]]:
        resolver = self._srv_resolver()
        import dns.exception
        import dns.name

        try:
            answer = await resolver.resolve(name, "SRV")
        except (dns.exception.DNSException, OSError):
            return []
        records = sorted(answer, key=lambda record: (record.priority, -record.weight))
        # A target of "." means "the service is decidedly not available here".
        return [
            (record.target.to_text(omit_final_dot=True), record.port)
            for record in records
            if record.target != dns.name.root
        ]

    async def addresses(self, host: str, port: int) -> list[str]:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
