"""Server ACLs decided from `m.room.server_acl` content.

Spec: `data/event-schemas/schema/m.room.server_acl.yaml` (no ACL allows; IP
literals denied by `allow_ip_literals: false`; deny before allow; otherwise
deny; ports ignored; globs case-insensitive), `content/appendices.md`
§ Glob-style matching.
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.server_acl import server_allowed

ACL = {"allow": ["*"], "deny": ["evil.com", "*.evil.com"], "allow_ip_literals": False}


@pytest.mark.parametrize(
    ("content", "server", "allowed"),
    [
        (None, "anything.example", True),
        (ACL, "good.example", True),
        (ACL, "evil.com", False),
        (ACL, "EVIL.com:8448", False),
        (ACL, "sub.evil.com", False),
        (ACL, "notevil.com", True),
        (ACL, "1.2.3.4:8448", False),
        (ACL, "[::1]:8448", False),
        ({"allow": ["*"]}, "1.2.3.4", True),
        ({"allow": ["*"], "allow_ip_literals": "no"}, "1.2.3.4", True),
        ({}, "good.example", False),
        ({"allow": "*"}, "good.example", False),
        ({"allow": ["matrix.?rg"]}, "matrix.org", True),
        ({"allow": ["matrix.?rg"]}, "matrix.oorg", False),
        ({"allow": ["*.example"], "deny": [7]}, "a.example", True),
    ],
)
def test_the_acl_decides_in_the_schemas_order(content, server, allowed):
    assert server_allowed(content, server) is allowed
