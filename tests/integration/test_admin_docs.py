"""The admin docs say what the server does: TURN, `make run`, federation.

Issue #17 ("Docs and defaults that mislead today"). The snippets an admin
copies from README.Debian and etc/conduit.toml are taken from those files
and run: coturn's denied-peer-ip list covers the private, carrier-grade NAT,
link-local and IPv6 private ranges; the `turns:` example is what the real
server hands out on `/voip/turnServer` (spec: client-server-api, "Voice over
IP", `GET /voip/turnServer`); the development config `make run` writes is
one `check-config` finds nothing to warn about, and its `.well-known` points
clients at the plain-HTTP address the README tells them to use.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path

import httpx
import tomlkit

from tests.support.matrix import ok, register
from tests.support.process import run_command, server_process
from tests.support.server import free_port, make_config, serving

ROOT = Path(__file__).resolve().parents[2]
README_DEBIAN = (ROOT / "README.Debian").read_text()
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "etc" / "conduit.toml").read_text()
MUST_BE_DENIED = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
]


def _denied_ranges() -> list[tuple[ipaddress._BaseAddress, ipaddress._BaseAddress]]:
    ranges = []
    for line in re.findall(r"^\s*denied-peer-ip=(\S+)$", README_DEBIAN, re.MULTILINE):
        first, _, last = line.partition("-")
        ranges.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return ranges


def test_the_coturn_denied_peer_ip_list_covers_every_private_range():
    ranges = _denied_ranges()

    def covered(network: ipaddress._BaseNetwork) -> bool:
        return any(
            first.version == network.version and first <= network[0] and network[-1] <= last
            for first, last in ranges
        )

    assert [net for net in MUST_BE_DENIED if not covered(ipaddress.ip_network(net))] == []


def _readme_debian_turn_uris() -> list[str]:
    block = re.search(r"turn_uris = (\[[^\]]*\])", README_DEBIAN).group(1)
    return json.loads(block)


async def test_the_documented_turns_uri_is_what_clients_get(nursery, tmp_path):
    uris = _readme_debian_turn_uris()
    assert any(uri.startswith("turns:") for uri in uris)
    config = make_config(tmp_path / "db", turn_uris=uris, turn_secret="the secret")
    async with serving(nursery, config) as server:
        alice = await register(server)
        answer = ok(await alice.get("/voip/turnServer"))
    assert answer["uris"] == uris


def test_the_example_config_shows_a_turns_uri():
    line = next(line for line in EXAMPLE.splitlines() if line.startswith("#turn_uris"))
    assert any(uri.startswith("turns:") for uri in json.loads(line.split("=", 1)[1]))


def test_the_make_run_config_warns_about_nothing_and_sends_clients_to_plain_http(tmp_path):
    dev = tmp_path / "dev"
    subprocess.run(
        ["make", "--no-print-directory", f"DEV={dev}", f"{dev}/conduit.toml"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    path = dev / "conduit.toml"
    checked = run_command("check-config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "WARNING" not in checked.stderr
    values = tomlkit.parse(path.read_text())["global"]
    homeserver = values["well_known"]["client"]
    assert homeserver == f"http://127.0.0.1:{values['port']}"
    assert f"`{homeserver}`" in README and "`@NAME:localhost`" in README
    assert "registration token" in README

    document = tomlkit.parse(path.read_text())
    document["global"]["port"] = free_port()  # the file as written, on a free port
    document["global"]["well_known"]["client"] = f"http://127.0.0.1:{document['global']['port']}"
    path.write_text(tomlkit.dumps(document))
    with server_process(path) as server, httpx.Client(base_url=server.base_url) as client:
        answer = client.get("/.well-known/matrix/client").json()
    assert answer["m.homeserver"]["base_url"] == server.base_url


def test_the_docs_no_longer_call_open_federation_features_missing():
    assert "Not yet (Federation II)" not in README
    for done in ("backfill", "knocking", "restricted joins", "media", "room directories"):
        assert done in README_DEBIAN.lower() or done in README.lower()
