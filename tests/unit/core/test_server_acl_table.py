"""Server ACL decisions, case by case (spec: `data/event-schemas/schema/m.room.server_acl.yaml`:
the order of the checks and the defaults of invalid fields; `appendices.md` § Glob-style
matching). `test_server_acl.py` has the schema's order in brief; this is the full table."""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.server_acl import server_allowed

ALLOW_ALL = {"allow": ["*"]}
NO_IP = {"allow": ["*"], "allow_ip_literals": False}

CASES: list[tuple[str, dict[str, Any] | None, str, bool]] = [
    # (why, ACL content or None for no ACL event, server name, allowed?)
    ("no ACL event in the room: allow", None, "evil.com", True),
    ("allow everyone", ALLOW_ALL, "example.org", True),
    ("an ACL without allow entries denies everyone", {}, "example.org", False),
    ("an empty allow list denies everyone", {"allow": [], "deny": []}, "example.org", False),
    ("deny wins over allow", {"allow": ["*"], "deny": ["evil.com"]}, "evil.com", False),
    ("neither denied nor allowed: deny", {"allow": ["good.org"]}, "other.org", False),
    # The port is never considered.
    ("deny ignores the port", {"allow": ["*"], "deny": ["evil.com"]}, "evil.com:8448", False),
    ("allow ignores the port", {"allow": ["good.org"]}, "good.org:1234", True),
    ("a glob naming a port matches nothing", {"allow": ["good.org:8448"]}, "good.org:8448", False),
    # Globs: `*` zero or more characters, `?` exactly one, everything else literal.
    ("`*` matches a run of characters", {"allow": ["*.example.org"]}, "a.b.example.org", True),
    ("`*` matches zero characters", {"allow": ["example*"]}, "example", True),
    ("`*.x` needs the dot", {"allow": ["*.example.org"]}, "example.org", False),
    ("`?` matches exactly one character", {"allow": ["ma?rix.org"]}, "matrix.org", True),
    ("`?` never matches zero characters", {"allow": ["matrix?.org"]}, "matrix.org", False),
    ("`?` never matches two characters", {"allow": ["m?rix.org"]}, "matrix.org", False),
    ("a dot is literal", {"allow": ["a.b"]}, "axb", False),
    ("regex syntax is literal", {"allow": ["[a-z]+.org"]}, "abc.org", False),
    ("the whole name must match, not a suffix", {"allow": ["example.org"]}, "xexample.org", False),
    ("the whole name must match, not a prefix", {"allow": ["example"]}, "example.org", False),
    # Case-insensitive, both ways.
    ("allow is case-insensitive", {"allow": ["Example.ORG"]}, "example.org", True),
    ("deny is case-insensitive", {"allow": ["*"], "deny": ["EVIL.*"]}, "evil.Com", False),
    # IP literals.
    ("IP literals are allowed by default", ALLOW_ALL, "127.0.0.2:8448", True),
    ("allow_ip_literals true", {**ALLOW_ALL, "allow_ip_literals": True}, "1.2.3.4", True),
    ("allow_ip_literals false: IPv4", NO_IP, "1.2.3.4", False),
    ("allow_ip_literals false: IPv4 and a port", NO_IP, "1.2.3.4:8448", False),
    ("allow_ip_literals false: IPv6", NO_IP, "[2001:db8::1]:8448", False),
    ("allow_ip_literals false leaves names alone", NO_IP, "example.org", True),
    ("a numeric-looking name is no IP literal", NO_IP, "1.2.3.4.example.org", True),
    (
        "an IP literal denied by a glob",
        {"allow": ["*"], "deny": ["127.0.0.*"]},
        "127.0.0.2:1",
        False,
    ),
    ("an IPv6 literal keeps its brackets", {"allow": ["[2001:db8::1]"]}, "[2001:db8::1]:1", True),
    # Invalid fields count as their defaults.
    (
        "allow_ip_literals 0 is not a boolean: true",
        {**NO_IP, "allow_ip_literals": 0},
        "1.2.3.4",
        True,
    ),
    ("allow_ip_literals 'false': true", {**NO_IP, "allow_ip_literals": "false"}, "1.2.3.4", True),
    ("allow not a list: empty, deny all", {"allow": "*"}, "example.org", False),
    ("deny not a list: empty", {"allow": ["*"], "deny": "example.org"}, "example.org", True),
    ("non-string allow entries are skipped", {"allow": [1, None, ["*"], "a.org"]}, "a.org", True),
    ("non-string allow entries never match", {"allow": [1, None, {"*": 1}]}, "a.org", False),
    ("non-string deny entries are skipped", {"allow": ["*"], "deny": [7, "b.org"]}, "a.org", True),
]


@pytest.mark.parametrize(
    ("acl", "server_name", "allowed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_server_acl_decision(acl: dict[str, Any] | None, server_name: str, allowed: bool) -> None:
    assert server_allowed(acl, server_name) is allowed
