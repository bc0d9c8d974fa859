"""The EDUs other servers send us: one handler per EDU type.

Spec: `content/server-server-api.md`, "EDUs" (`edu_type` + `content`, carried
in the `edus` of a transaction; `data/api/server-server/definitions/edu.yaml`).
The `/send` endpoint hands each EDU of a transaction to `EduHandlers.handle`
with the authenticated origin; which services it reaches is registered here
(`register`), so the endpoint knows nothing about typing or device lists.

An EDU of a type nobody handles is ignored, as the spec lets servers do with
types they do not know; a malformed one (`MalformedEdu`) is logged and
dropped. Neither fails the transaction: its PDUs are judged on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

EduHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""(origin, content) → None; raises `MalformedEdu` for content it cannot use."""


class MalformedEdu(Exception):
    """The EDU's content is not what its type requires; the message says what."""


class EduHandlers:
    def __init__(self) -> None:
        self._handlers: dict[str, EduHandler] = {}

    def register(self, edu_type: str, handler: EduHandler) -> None:
        self._handlers[edu_type] = handler

    async def handle(self, origin: str, edu_type: str, content: dict[str, Any]) -> None:
        """Apply one EDU from `origin` (already authenticated); never raises for bad input."""
        handler = self._handlers.get(edu_type)
        if handler is None:
            return
        if not isinstance(content, dict):
            log.info("dropping a %s EDU from %s: its content is not an object", edu_type, origin)
            return
        try:
            await handler(origin, content)
        except MalformedEdu as error:
            log.info("dropping a %s EDU from %s: %s", edu_type, origin, error)
