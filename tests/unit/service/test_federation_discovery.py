"""Server discovery in the spec's order, with DNS stubbed and `.well-known` served for real.

Spec: `content/server-server-api.md` § Resolving server names (steps 1–6 and
3.1–3.5: the address, port, `Host` header and certificate name of each) and
§ `GET /.well-known/matrix/server` (caching). DNS names come from a stub
resolver (the one mock the suite allows); `.well-known` comes from one of
our servers over HTTPS with a certificate from a test CA, because the spec
leaves `.well-known` on port 443 and a test cannot bind that, discovery is
told which port stands for 443.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rrset
import pytest
import trio

from matrix_conduit.core.ip_ranges import DEFAULT_DENYLIST, IpRanges
from matrix_conduit.service.federation.connector import Connector, ResolvedServer
from matrix_conduit.service.federation.discovery import (
    WELL_KNOWN_DEFAULT_SECONDS,
    WELL_KNOWN_FAILURE_SECONDS,
    WELL_KNOWN_MAX_SECONDS,
    WELL_KNOWN_MIN_SECONDS,
    ServerDiscovery,
    cache_seconds,
)
from matrix_conduit.service.federation.resolver import DnsResolver
from matrix_conduit.service.outgoing_http import OutgoingHttp
from tests.support.federation import FederationCa, free_port_on, trusted_ca
from tests.support.server import make_config, serving
from tests.support.service_parts import FakeClock

WELL_KNOWN_HOST = "example.test"


class StubResolver:
    """DNS for the test: fixed SRV records and addresses; records what was asked."""

    def __init__(self) -> None:
        self.srv_records: dict[str, list[tuple[str, int]]] = {}
        self.hosts: dict[str, list[str]] = {WELL_KNOWN_HOST: ["127.0.0.1"]}
        self.srv_queries: list[str] = []

    async def srv(self, name: str) -> list[tuple[str, int]]:
        self.srv_queries.append(name)
        return self.srv_records.get(name, [])

    async def addresses(self, host: str, port: int) -> list[str]:
        return self.hosts.get(host, [])


@pytest.fixture
def ca(tmp_path, monkeypatch) -> FederationCa:
    return trusted_ca(tmp_path / "ca", monkeypatch)


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()


@pytest.fixture
async def http(tmp_path) -> AsyncIterator[OutgoingHttp]:
    http = OutgoingHttp(make_config(tmp_path / "unused"))
    yield http
    await http.aclose()


def discovery(http, resolver, clock, well_known_port: int) -> ServerDiscovery:
    connector = Connector(http, resolver, IpRanges.parse(DEFAULT_DENYLIST, ["127.0.0.0/8"]))
    return ServerDiscovery(connector, resolver, clock, well_known_port=well_known_port)


def well_known_server(nursery, ca: FederationCa, tmp_path, m_server: str):
    """Our server answering `.well-known/matrix/server` for WELL_KNOWN_HOST over HTTPS."""
    leaf = ca.authority.issue_cert(WELL_KNOWN_HOST)
    certs, key = tmp_path / "wk.pem", tmp_path / "wk.key"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(certs))
    config = make_config(
        tmp_path / "wk-db",
        tls={"certs": str(certs), "key": str(key)},
        well_known={"server": m_server},
    )
    return serving(nursery, config)


def nothing_listening() -> int:
    return free_port_on("127.0.0.1")


# --- steps 1 and 2: no lookups at all ------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("1.2.3.4", ResolvedServer("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:8000", ResolvedServer("1.2.3.4", 8000, "1.2.3.4:8000", "1.2.3.4")),
        ("[2001:db8::1]", ResolvedServer("2001:db8::1", 8448, "[2001:db8::1]", "2001:db8::1")),
        ("[::1]:9", ResolvedServer("::1", 9, "[::1]:9", "::1")),
        ("m.test:8449", ResolvedServer("m.test", 8449, "m.test:8449", "m.test")),
    ],
)  # fmt: skip
async def test_ip_literals_and_explicit_ports_are_used_as_they_are(
    server_name, expected, http, resolver
):
    resolved = await discovery(http, resolver, FakeClock(), nothing_listening()).resolve(
        server_name
    )

    assert resolved == expected
    assert resolver.srv_queries == []


# --- steps 4 to 6: no .well-known ------------------------------------------------


async def test_without_well_known_srv_matrix_fed_is_used_with_the_hostname_for_host_and_tls(
    http, resolver
):
    resolver.srv_records["_matrix-fed._tcp.example.test"] = [("target.test", 8500)]
    resolver.srv_records["_matrix._tcp.example.test"] = [("old.test", 8600)]

    resolved = await discovery(http, resolver, FakeClock(), nothing_listening()).resolve(
        "example.test"
    )

    assert resolved == ResolvedServer("target.test", 8500, "example.test", "example.test")


async def test_without_well_known_or_matrix_fed_the_deprecated_srv_is_used(http, resolver):
    resolver.srv_records["_matrix._tcp.example.test"] = [("old.test", 8600)]

    resolved = await discovery(http, resolver, FakeClock(), nothing_listening()).resolve(
        "example.test"
    )

    assert resolved == ResolvedServer("old.test", 8600, "example.test", "example.test")
    assert resolver.srv_queries == ["_matrix-fed._tcp.example.test", "_matrix._tcp.example.test"]


async def test_without_well_known_or_srv_the_hostname_and_port_8448_are_used(http, resolver):
    resolved = await discovery(http, resolver, FakeClock(), nothing_listening()).resolve(
        "example.test"
    )

    assert resolved == ResolvedServer("example.test", 8448, "example.test", "example.test")


# --- step 3: .well-known over real HTTPS --------------------------------------------


async def test_a_delegation_to_an_ip_literal_is_used_as_is(nursery, ca, tmp_path, http, resolver):
    async with well_known_server(nursery, ca, tmp_path, "10.9.8.7:8500") as server:
        found = discovery(http, resolver, FakeClock(), server.config.port)
        resolved = await found.resolve(WELL_KNOWN_HOST)

    assert resolved == ResolvedServer("10.9.8.7", 8500, "10.9.8.7:8500", "10.9.8.7")
    assert resolver.srv_queries == []


async def test_a_delegation_with_a_port_uses_the_delegated_name_and_port(
    nursery, ca, tmp_path, http, resolver
):
    async with well_known_server(nursery, ca, tmp_path, "delegated.test:8500") as server:
        resolved = await discovery(http, resolver, FakeClock(), server.config.port).resolve(
            WELL_KNOWN_HOST
        )

    assert resolved == ResolvedServer(
        "delegated.test", 8500, "delegated.test:8500", "delegated.test"
    )


async def test_a_delegation_without_a_port_looks_up_srv_of_the_delegated_name(
    nursery, ca, tmp_path, http, resolver
):
    resolver.srv_records["_matrix-fed._tcp.delegated.test"] = [("target.test", 8501)]
    resolver.srv_records["_matrix-fed._tcp.example.test"] = [("ignored.test", 1)]
    async with well_known_server(nursery, ca, tmp_path, "delegated.test") as server:
        resolved = await discovery(http, resolver, FakeClock(), server.config.port).resolve(
            WELL_KNOWN_HOST
        )

    assert resolved == ResolvedServer("target.test", 8501, "delegated.test", "delegated.test")


async def test_a_delegation_without_a_port_or_srv_goes_to_port_8448_of_the_delegated_name(
    nursery, ca, tmp_path, http, resolver
):
    async with well_known_server(nursery, ca, tmp_path, "delegated.test") as server:
        resolved = await discovery(http, resolver, FakeClock(), server.config.port).resolve(
            WELL_KNOWN_HOST
        )

    assert resolved == ResolvedServer("delegated.test", 8448, "delegated.test", "delegated.test")
    assert resolver.srv_queries == [
        "_matrix-fed._tcp.delegated.test",
        "_matrix._tcp.delegated.test",
    ]


async def test_a_well_known_answer_is_cached_for_a_day_by_default(
    nursery, ca, tmp_path, http, resolver
):
    clock = FakeClock()
    async with well_known_server(nursery, ca, tmp_path, "10.9.8.7:8500") as server:
        found = discovery(http, resolver, clock, server.config.port)
        first = await found.resolve(WELL_KNOWN_HOST)
        # The .well-known host is unreachable now: answers come from the cache until it expires.
        resolver.hosts[WELL_KNOWN_HOST] = []
        clock.advance(WELL_KNOWN_DEFAULT_SECONDS * 1000 - 1)
        cached = await found.resolve(WELL_KNOWN_HOST)
        clock.advance(1)
        expired = await found.resolve(WELL_KNOWN_HOST)

    assert first == cached == ResolvedServer("10.9.8.7", 8500, "10.9.8.7:8500", "10.9.8.7")
    assert expired == ResolvedServer(WELL_KNOWN_HOST, 8448, WELL_KNOWN_HOST, WELL_KNOWN_HOST)


async def test_a_well_known_failure_is_cached_for_a_while(nursery, ca, tmp_path, http, resolver):
    clock = FakeClock()
    async with well_known_server(nursery, ca, tmp_path, "10.9.8.7:8500") as server:
        resolver.hosts[WELL_KNOWN_HOST] = []  # the first lookup fails: no address
        found = discovery(http, resolver, clock, server.config.port)
        failed = await found.resolve(WELL_KNOWN_HOST)
        resolver.hosts[WELL_KNOWN_HOST] = ["127.0.0.1"]
        still_failed = await found.resolve(WELL_KNOWN_HOST)
        clock.advance(WELL_KNOWN_FAILURE_SECONDS * 1000)
        delegated = await found.resolve(WELL_KNOWN_HOST)

    assert failed == still_failed
    assert failed.host == WELL_KNOWN_HOST and failed.port == 8448
    assert delegated.host == "10.9.8.7"


async def test_a_well_known_certificate_for_another_name_is_a_failure(
    nursery, ca, tmp_path, http, resolver
):
    resolver.hosts["other.test"] = ["127.0.0.1"]
    async with well_known_server(nursery, ca, tmp_path, "10.9.8.7:8500") as server:
        resolved = await discovery(http, resolver, FakeClock(), server.config.port).resolve(
            "other.test"
        )

    assert resolved == ResolvedServer("other.test", 8448, "other.test", "other.test")


async def test_a_well_known_host_in_a_denied_range_is_not_asked(
    nursery, ca, tmp_path, http, resolver
):
    async with well_known_server(nursery, ca, tmp_path, "10.9.8.7:8500") as server:
        connector = Connector(http, resolver, IpRanges.parse(DEFAULT_DENYLIST))
        found = ServerDiscovery(
            connector, resolver, FakeClock(), well_known_port=server.config.port
        )
        resolved = await found.resolve(WELL_KNOWN_HOST)

    assert resolved.host == WELL_KNOWN_HOST and resolved.port == 8448


# --- cache times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, WELL_KNOWN_DEFAULT_SECONDS),
        ({"cache-control": "public, max-age=7200"}, 7200),
        ({"cache-control": "max-age=999999999"}, WELL_KNOWN_MAX_SECONDS),
        ({"cache-control": "max-age=1"}, WELL_KNOWN_MIN_SECONDS),
        ({"cache-control": "no-store"}, WELL_KNOWN_MIN_SECONDS),
        ({"expires": "Thu, 01 Jan 1970 03:00:00 GMT"}, 3 * 3600),
        ({"expires": "garbage"}, WELL_KNOWN_MIN_SECONDS),
        ({"cache-control": "max-age=3600", "expires": "Thu, 01 Jan 1970 09:00:00 GMT"}, 3600),
    ],
)
def test_well_known_cache_time_follows_the_headers_within_bounds(headers, seconds):
    assert cache_seconds(headers, now_seconds=0) == seconds


async def test_the_real_resolver_finds_addresses_as_the_system_does():
    assert "127.0.0.1" in await DnsResolver().addresses("localhost", 8448)  # /etc/hosts


async def test_the_real_resolver_reads_srv_records_with_dnspython_on_trio(nursery):
    """dnspython's async resolver on trio, against a DNS server on loopback."""
    records = {
        "_matrix-fed._tcp.example.test.": ["20 1 8449 second.test.", "10 1 8448 first.test."],
        "_matrix-fed._tcp.none.test.": ["0 0 0 ."],
    }
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))

    async def answer_queries() -> None:
        with sock:
            while True:
                data, client = await sock.recvfrom(4096)
                query = dns.message.from_wire(data)
                response = dns.message.make_response(query)
                name = query.question[0].name
                if str(name) in records:
                    response.answer.append(
                        dns.rrset.from_text_list(name, 300, "IN", "SRV", records[str(name)])
                    )
                else:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                await sock.sendto(response.to_wire(), client)

    nursery.start_soon(answer_queries)
    resolver = DnsResolver(["127.0.0.1"], sock.getsockname()[1])

    assert await resolver.srv("_matrix-fed._tcp.example.test") == [
        ("first.test", 8448),
        ("second.test", 8449),
    ]
    assert await resolver.srv("_matrix-fed._tcp.none.test") == []
    assert await resolver.srv("_matrix._tcp.nothing.test") == []
