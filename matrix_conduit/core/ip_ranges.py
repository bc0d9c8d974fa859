"""Which IP addresses outgoing federation requests may reach.

A server name is chosen by whoever sends us an event or an invite, so without
a filter any remote user could make this server connect to its own LAN, its
cloud metadata service or its loopback admin ports (server-side request
forgery). Synapse's answer, kept here: a denylist of private and reserved
ranges (`federation_ip_range_denylist`) with an allowlist of exceptions
(`federation_ip_range_allowlist`), checked against the address actually
connected to, after DNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENYLIST = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
)
"""Private, loopback, link-local, shared, documentation, multicast and reserved ranges."""


def parse_network(text: str) -> IpNetwork:
    """`10.0.0.0/8`, `::1` (a single address is a /32 or /128); `ValueError` if neither."""
    return ipaddress.ip_network(text, strict=False)


@dataclass(frozen=True, slots=True)
class IpRanges:
    """A denylist with allowed exceptions: an address is allowed unless denied and not excepted."""

    denied: tuple[IpNetwork, ...]
    allowed: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, denied: Iterable[str], allowed: Iterable[str] = ()) -> IpRanges:
        return cls(
            tuple(parse_network(text) for text in denied),
            tuple(parse_network(text) for text in allowed),
        )

    def allows(self, address: str | IpAddress) -> bool:
        """May a request connect to `address`? IPv4-mapped IPv6 is judged as the IPv4 address."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed if network.version == ip.version):
            return True
        return not any(ip in network for network in self.denied if network.version == ip.version)
