"""Why a request to another server did not produce an answer.

Callers tell these apart: a disabled or forbidden destination is a local
policy (never retried), `NotReadyForRetry` is our own backoff, `Unreachable`
counts as a failure of the destination, and `RemoteError` is the remote's own
Matrix error answer (it is up; the request was refused).
"""

from __future__ import annotations


class FederationError(Exception):
    """A federation request to `destination` failed; the message says why."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination


class FederationDisabled(FederationError):
    """`allow_federation = false`: nothing goes out."""

    def __init__(self, destination: str) -> None:
        super().__init__(destination, "federation is disabled on this server")


class DestinationForbidden(FederationError):
    """Policy forbids this destination: this server itself, or a denied IP range."""


class NotReadyForRetry(FederationError):
    """The destination failed recently and is backed off until `retry_at_ms`."""

    def __init__(self, destination: str, retry_at_ms: int) -> None:
        super().__init__(destination, f"backed off after failures, until {retry_at_ms} (ms)")
        self.retry_at_ms = retry_at_ms


class Unreachable(FederationError):
    """No usable answer: discovery, connection, TLS, timeout, size or an unparsable body."""


class AnswerTooLarge(Unreachable):
    """The answer was larger than the caller's limit: not read further. The destination
    is up (it answered), so this does not count as its failure."""


class RemoteError(FederationError):
    """The destination answered with an error status (and, usually, a Matrix error body)."""

    def __init__(self, destination: str, status: int, errcode: str, error: str) -> None:
        super().__init__(destination, f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
