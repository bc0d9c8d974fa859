"""Server ACLs: may this server take part in the room, by its `m.room.server_acl`?

Spec: `data/event-schemas/schema/m.room.server_acl.yaml` (the order of the
checks), `content/server-server-api.md` § Server Access Control Lists (which
requests they protect), `content/appendices.md` § Glob-style matching. The
server name is compared without its port, case-insensitively; `allow` and
`deny` that are not lists of strings count as empty, a non-boolean
`allow_ip_literals` as true (both as the schema's defaults say).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any


def _host(server_name: str) -> str:
    """The server name without its port (an IPv6 literal keeps its brackets)."""
    if server_name.startswith("["):
        return server_name[: server_name.find("]") + 1] or server_name
    return server_name.partition(":")[0]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _pattern(glob: str) -> re.Pattern[str]:
    """`*` any run of characters, `?` exactly one; everything else literal."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in glob)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _globs(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list):
        return []
    return [glob for glob in value if isinstance(glob, str)]


def server_allowed(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """Whether `server_name` passes the ACL whose content is given (None: no ACL, allow)."""
    if acl_content is None:
        return True
    host = _host(server_name)
    if acl_content.get("allow_ip_literals") is False and _is_ip_literal(host):
        return False
    if any(_pattern(glob).fullmatch(host) for glob in _globs(acl_content, "deny")):
        return False
    return any(_pattern(glob).fullmatch(host) for glob in _globs(acl_content, "allow"))
