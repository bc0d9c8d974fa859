"""Which addresses outgoing federation may reach: the denylist and its exceptions.

Spec: none (server-side request forgery protection, as Synapse's
`ip_range_blacklist`/`ip_range_whitelist`); the lists are the
`federation_ip_range_*` config keys.
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.ip_ranges import DEFAULT_DENYLIST, IpRanges, parse_network

DEFAULT = IpRanges.parse(DEFAULT_DENYLIST)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_private_loopback_and_reserved_addresses_are_denied_by_default(address):
    assert not DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed_by_default(address):
    assert DEFAULT.allows(address)


def test_the_allowlist_makes_exceptions_to_the_denylist():
    ranges = IpRanges.parse(DEFAULT_DENYLIST, ["127.0.0.0/8"])

    assert ranges.allows("127.0.0.2") and ranges.allows("::ffff:127.0.0.3")
    assert not ranges.allows("::1") and not ranges.allows("10.0.0.1")


def test_a_single_address_is_a_network_of_one_and_garbage_is_refused():
    assert parse_network("10.0.0.1").num_addresses == 1
    assert parse_network("10.0.0.1/8").prefixlen == 8
    with pytest.raises(ValueError):
        parse_network("localhost")
