"""The exceptions of the protocol library, and how their messages show bad input.

Every check in `core/` that rejects input raises a subclass of `ProtocolError`
(itself a `ValueError`), so a caller can tell "the peer sent something the
protocol forbids" from a bug in our own code. The API layer maps each type to
the spec's error code (`M_INVALID_PARAM`, `M_BAD_JSON`, `M_TOO_LARGE`,
`M_UNAUTHORIZED`, ...); nothing here knows about HTTP.

Input reaching these checks may be hostile (federation), so messages quote at
most a short preview of it: never megabytes, never a raw control character.
"""

from __future__ import annotations

_PREVIEW_LENGTH = 64


def preview(value: object) -> str:
    """A short, printable rendering of `value` for an error message."""
    if isinstance(value, str):
        shown = repr(value[:_PREVIEW_LENGTH])
        return shown + "…" if len(value) > _PREVIEW_LENGTH else shown
    return f"a value of type {type(value).__name__}"


class ProtocolError(ValueError):
    """Input that the Matrix protocol does not allow."""


class InvalidIdentifier(ProtocolError):
    """A user id, room id, event id, room alias or server name that breaks its grammar."""


class CanonicalJsonError(ProtocolError):
    """A value that has no Canonical JSON encoding (or not in this room version)."""


class SignatureError(ProtocolError):
    """A signature that is missing, malformed or does not verify."""


class InvalidAuthorizationHeader(SignatureError):
    """An `Authorization: X-Matrix ...` header that cannot be parsed.

    A subclass of `SignatureError` because both mean the same thing to the
    request: it is not authenticated (401).
    """


class InvalidSigningKey(ProtocolError):
    """A stored or published signing key in a form this server cannot read."""


class InvalidEvent(ProtocolError):
    """A PDU that does not have the shape of its room version's event format.

    `key` names the offending top-level key (None when the event as a whole is
    wrong), so a log line or error response can point at it.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class EventTooLarge(InvalidEvent):
    """An event over the size limits of the Client-Server API's "Size limits"."""
