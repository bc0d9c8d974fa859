"""Errors with a meaning a Matrix client understands.

Spec: `content/client-server-api/_index.md`, "Standard error response" and
"Common error codes". Services raise `MatrixError`; the app turns it into the
spec's `{"errcode": ..., "error": ...}` body with the right HTTP status. Extra
response fields (`soft_logout`, `retry_after_ms`, UIA `flows`...) travel in
`extra`.
"""

from __future__ import annotations

import logging
from typing import Any


class MatrixError(Exception):
    """An error the client gets as `{"errcode": ..., "error": ...}`."""

    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"MatrixError({self.status}, {self.errcode!r}, {self.message!r})"


GATEWAY_STATUSES = frozenset({502, 504})
"""Answers that report another server's failure (down, slow, nonsense): worth a warning in
our log, not an error, since nothing on this server broke."""


def log_level_for(status: int) -> int:
    """The request log's level for an answer: 5xx of our own at error, a peer's at warning."""
    if status in GATEWAY_STATUSES:
        return logging.WARNING
    return logging.ERROR if status >= 500 else logging.INFO


def bad_json(message: str) -> MatrixError:
    """The request was JSON but not of the shape the endpoint takes."""
    return MatrixError(400, "M_BAD_JSON", message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def forbidden(message: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", message)


def not_found(message: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", message)


def missing_param(name: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"The parameter {name!r} is required.")
