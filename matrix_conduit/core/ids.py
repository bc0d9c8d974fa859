"""Matrix identifiers: server names, user ids, room ids, event ids, room aliases.

Spec: `content/appendices.md` § Identifier Grammar (Server Name, Common
Identifier Format, User Identifiers, Historical User IDs, Room IDs, Room
Aliases, Event IDs), and the event id formats of the room versions
(`rooms/fragments/v1-event-ids.md`, `v4-event-ids.md`; room version 3 uses
standard base64, `rooms/v3.md`; room version 12 room ids, `rooms/v12.md`).

Identifiers arrive from clients and from other servers, so every parser here
accepts any Python value, checks the cheap limits (type, length) before
anything else, raises only `InvalidIdentifier`, and quotes at most a short
preview of the input in its message. An identifier object, once built, is
valid: the dataclasses check themselves on construction.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from matrix_conduit.core.errors import InvalidIdentifier, preview

MAX_IDENTIFIER_BYTES = 255
"""User ids, room ids, event ids and room aliases: at most 255 bytes of UTF-8."""

MAX_HOSTNAME_LENGTH = 255
"""`dns-name = 1*255dns-char` in the server name grammar."""

_MAX_SERVER_NAME_LENGTH = MAX_HOSTNAME_LENGTH + len(":65535")

_DNS_NAME = re.compile(r"[A-Za-z0-9.\-]{1,255}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_PORT = 65535

_STRICT_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
"""User id localparts for new users (spec 1.8+): `a-z`, `0-9`, `.`, `_`, `=`, `-`, `/`, `+`."""

_OPAQUE_LOCALPART = re.compile(r"[^\x00:\ud800-\udfff]*")
"""Historical user ids, room id and alias localparts: any non-surrogate code point
except `:` and NUL."""

_REFERENCE_HASH_LENGTH = 43
"""A sha256 digest in unpadded base64."""

_STANDARD_BASE64_HASH = re.compile(r"[A-Za-z0-9+/]{43}")
_URL_SAFE_BASE64_HASH = re.compile(r"[A-Za-z0-9\-_]{43}")


def _require_str(value: object, kind: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{kind} must be a string, not {preview(value)}")
    return value


def _check_ipv6_literal(address: str, server_name: str) -> None:
    """RFC 3513 § 2.2 text form, restricted to the grammar's `IPv6char`s (no zone ids)."""
    if _IPV6_CHARS.fullmatch(address):
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            pass
        else:
            return
    raise InvalidIdentifier(
        f"server name {preview(server_name)}: {preview(address)} is not an IPv6 address"
    )


def parse_server_name(server_name: object) -> tuple[str, int | None]:
    """Split a server name into (hostname, port), checking the spec grammar.

    The hostname of an IPv6 literal keeps its brackets (`[1234:5678::abcd]`),
    so `f"{host}:{port}"` is again a server name. The grammar's `dns-name`
    also covers dotted quads, so `1.2.3.4` parses as a hostname whatever its
    numbers; the port must be 1–5 digits and at most 65535.
    """
    text = _require_str(server_name, "server name")
    if not text:
        raise InvalidIdentifier("server name is empty")
    if len(text) > _MAX_SERVER_NAME_LENGTH:
        raise InvalidIdentifier(f"server name {preview(text)} is too long ({len(text)} chars)")
    if text.startswith("["):
        closing = text.find("]")
        if closing == -1:
            raise InvalidIdentifier(f"server name {preview(text)}: IPv6 literal has no ']'")
        _check_ipv6_literal(text[1:closing], text)
        host, after_host = text[: closing + 1], text[closing + 1 :]
    else:
        host, colon, port_text = text.partition(":")
        after_host = colon + port_text
        if not _DNS_NAME.fullmatch(host):
            raise InvalidIdentifier(
                f"server name {preview(text)}: hostname must be an IPv4 address, an [IPv6] "
                "literal, or a DNS name of 1-255 letters, digits, '-' and '.'"
            )
    if not after_host:
        return host, None
    port_text = after_host[1:]
    if not after_host.startswith(":") or not _PORT.fullmatch(port_text):
        raise InvalidIdentifier(f"server name {preview(text)}: port must be ':' and 1-5 digits")
    port = int(port_text)
    if port > _MAX_PORT:
        raise InvalidIdentifier(f"server name {preview(text)}: port {port} is above 65535")
    return host, port


def is_valid_server_name(server_name: object) -> bool:
    return _is_valid(parse_server_name, server_name)


def is_valid_localpart(localpart: object) -> bool:
    """The strict localpart grammar that new local users must follow (lower-case only)."""
    return (
        isinstance(localpart, str)
        and len(localpart) <= MAX_IDENTIFIER_BYTES
        and _STRICT_LOCALPART.fullmatch(localpart) is not None
    )


def _check_length(identifier: str, kind: str) -> None:
    """The 255-byte limit, without encoding megabytes first."""
    if len(identifier) > MAX_IDENTIFIER_BYTES or (
        len(identifier.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES
    ):
        raise InvalidIdentifier(f"{kind} {preview(identifier)} is longer than 255 bytes")


def _check_opaque_localpart(localpart: str, kind: str, *, allow_empty: bool) -> None:
    if not localpart and not allow_empty:
        raise InvalidIdentifier(f"{kind} has an empty localpart")
    if not _OPAQUE_LOCALPART.fullmatch(localpart):
        raise InvalidIdentifier(
            f"{kind} localpart {preview(localpart)} contains NUL, ':' or a lone surrogate"
        )


def _split(identifier: object, sigil: str, kind: str) -> tuple[str, str | None]:
    """`&opaque:server` → (opaque, server); `&opaque` → (opaque, None)."""
    text = _require_str(identifier, kind)
    _check_length(text, kind)
    if not text.startswith(sigil):
        raise InvalidIdentifier(f"{kind} {preview(text)} does not start with {sigil!r}")
    opaque, colon, server_name = text[1:].partition(":")
    return opaque, server_name if colon else None


def _require_server_name(server_name: str | None, identifier: object, kind: str) -> str:
    if server_name is None:
        raise InvalidIdentifier(f"{kind} {preview(identifier)} has no ':server' part")
    return server_name


@dataclass(frozen=True, slots=True)
class UserId:
    """`@localpart:server_name`.

    Construction accepts the historical grammar, which servers MUST accept over
    federation: any non-surrogate code point but `:` and NUL, even an empty
    localpart. `parse(..., historical=False)` applies the strict grammar used
    for new users.
    """

    localpart: str
    server_name: str

    def __post_init__(self) -> None:
        _check_opaque_localpart(
            _require_str(self.localpart, "user id"), "user id", allow_empty=True
        )
        parse_server_name(self.server_name)
        _check_length(str(self), "user id")

    @classmethod
    def parse(cls, user_id: object, *, historical: bool = True) -> UserId:
        localpart, server_name = _split(user_id, "@", "user id")
        parsed = cls(localpart, _require_server_name(server_name, user_id, "user id"))
        if not historical and not _STRICT_LOCALPART.fullmatch(localpart):
            raise InvalidIdentifier(
                f"user id {preview(user_id)}: localpart may only contain a-z, 0-9, "
                "'.', '_', '=', '-', '/' and '+'"
            )
        return parsed

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.server_name}"


def _check_hash_or_local(
    opaque_id: str, server_name: str | None, kind: str, hash_forms: tuple[re.Pattern[str], ...]
) -> None:
    """Shared by room and event ids: `opaque:server`, or a bare reference hash."""
    _require_str(opaque_id, kind)
    if server_name is None:
        if not any(form.fullmatch(opaque_id) for form in hash_forms):
            raise InvalidIdentifier(
                f"{kind} {preview(opaque_id)} has no ':server' part and is not a "
                f"{_REFERENCE_HASH_LENGTH}-character base64 reference hash"
            )
        return
    _check_opaque_localpart(opaque_id, kind, allow_empty=False)
    parse_server_name(server_name)


@dataclass(frozen=True, slots=True)
class RoomId:
    """`!opaque_id:server_name` (rooms v1–v11) or `!reference_hash` (v12+).

    In room version 12 the room id is the create event's id with `!` for `$`:
    URL-safe unpadded base64 of a sha256, and `server_name` is None.
    """

    opaque_id: str
    server_name: str | None = None

    def __post_init__(self) -> None:
        _check_hash_or_local(self.opaque_id, self.server_name, "room id", (_URL_SAFE_BASE64_HASH,))
        _check_length(str(self), "room id")

    @classmethod
    def parse(cls, room_id: object) -> RoomId:
        return cls(*_split(room_id, "!", "room id"))

    def __str__(self) -> str:
        return f"!{self.opaque_id}" + ("" if self.server_name is None else f":{self.server_name}")


@dataclass(frozen=True, slots=True)
class EventId:
    """`$opaque_id:server_name` (rooms v1, v2) or `$reference_hash` (v3+).

    The hash is standard base64 in room version 3 and URL-safe base64 from
    version 4 on; both are accepted (a room's version decides which it makes).
    """

    opaque_id: str
    server_name: str | None = None

    def __post_init__(self) -> None:
        _check_hash_or_local(
            self.opaque_id,
            self.server_name,
            "event id",
            (_URL_SAFE_BASE64_HASH, _STANDARD_BASE64_HASH),
        )
        _check_length(str(self), "event id")

    @classmethod
    def parse(cls, event_id: object) -> EventId:
        return cls(*_split(event_id, "$", "event id"))

    def __str__(self) -> str:
        return f"${self.opaque_id}" + ("" if self.server_name is None else f":{self.server_name}")


@dataclass(frozen=True, slots=True)
class RoomAlias:
    """`#localpart:server_name`; the localpart is any non-surrogate code point but `:` and NUL."""

    localpart: str
    server_name: str

    def __post_init__(self) -> None:
        _check_opaque_localpart(
            _require_str(self.localpart, "room alias"), "room alias", allow_empty=False
        )
        parse_server_name(self.server_name)
        _check_length(str(self), "room alias")

    @classmethod
    def parse(cls, room_alias: object) -> RoomAlias:
        localpart, server_name = _split(room_alias, "#", "room alias")
        return cls(localpart, _require_server_name(server_name, room_alias, "room alias"))

    def __str__(self) -> str:
        return f"#{self.localpart}:{self.server_name}"


def _is_valid(parse: Callable[[object], object], value: object) -> bool:
    try:
        parse(value)
    except InvalidIdentifier:
        return False
    return True


def is_valid_user_id(user_id: object, *, historical: bool = True) -> bool:
    return _is_valid(partial(UserId.parse, historical=historical), user_id)


def is_valid_room_id(room_id: object) -> bool:
    return _is_valid(RoomId.parse, room_id)


def is_valid_event_id(event_id: object) -> bool:
    return _is_valid(EventId.parse, event_id)


def is_valid_room_alias(room_alias: object) -> bool:
    return _is_valid(RoomAlias.parse, room_alias)


_PARSERS_BY_SIGIL: dict[str, Callable[[object], UserId | RoomId | EventId | RoomAlias]] = {
    "@": UserId.parse,
    "!": RoomId.parse,
    "$": EventId.parse,
    "#": RoomAlias.parse,
}


def server_name_of(identifier: object) -> str:
    """The server part of a user id, room id, event id or alias (by its sigil).

    Raises `InvalidIdentifier` for ids that have none: room ids of room
    version 12 and event ids of room version 3 and later.
    """
    text = _require_str(identifier, "identifier")
    parse = _PARSERS_BY_SIGIL.get(text[:1])
    if parse is None:
        raise InvalidIdentifier(f"identifier {preview(text)} does not start with @, !, $ or #")
    server_name = parse(text).server_name
    if server_name is None:
        raise InvalidIdentifier(f"identifier {preview(text)} has no server name")
    return server_name


def is_on_server(identifier: str, server_name: str) -> bool:
    """Whether `identifier` belongs to `server_name`.

    A user id, room alias, room id or event id belongs to the server named
    after its first colon; anything else is taken as a server name itself
    (an event's `origin`, a media or key server). Textual, like the spec's
    "the domain of a user ID": it does not validate (callers that must
    refuse malformed ids parse them first), and ids without a server part
    (v12 room ids, v3+ event ids) belong to no server. The one rule behind
    `Globals.is_ours`.
    """
    if identifier[:1] in ("@", "!", "$", "#"):
        _, colon, server = identifier.partition(":")
        return bool(colon) and server == server_name
    return identifier == server_name
