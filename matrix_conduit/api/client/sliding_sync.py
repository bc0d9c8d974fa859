"""`POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`: simplified sliding sync.

Spec: MSC4186 (the request's `pos`, `timeout` and `set_presence` are query
parameters at this unstable path, as clients send them; the body's are read
too, MSC4186's later text); the behaviour is `service/sliding_sync/`.
Advertised in `/versions` as `org.matrix.simplified_msc3575`.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from ...errors import MatrixError
from ..auth import authenticate
from ..request import json_object, services
from .routes import versioned_route

blueprint = Blueprint("sliding_sync", __name__)

PRESENCE_STATES = ("online", "offline", "unavailable")


def _parameter(body: dict[str, Any], name: str) -> Any:
    value = request.args.get(name)
    return value if value is not None else body.get(name)


@versioned_route(
    blueprint,
    "client",
    "/org.matrix.simplified_msc3575/sync",
    methods=["POST"],
    versions=("unstable",),
)
async def sliding_sync() -> dict:
    requester = authenticate()
    body = await json_object(optional=True)
    pos = _parameter(body, "pos")
    if pos is not None and not isinstance(pos, str):
        raise MatrixError(400, "M_INVALID_PARAM", "`pos` must be a string.")
    raw_timeout = _parameter(body, "timeout")
    timeout = 0
    if raw_timeout is not None:
        text = str(raw_timeout)
        if isinstance(raw_timeout, bool) or not text.isdigit() or len(text) > 12:
            raise MatrixError(
                400, "M_INVALID_PARAM", "`timeout` must be a non-negative integer (ms)."
            )
        timeout = int(text)
    set_presence = _parameter(body, "set_presence") or "online"
    if set_presence not in PRESENCE_STATES:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"`set_presence` must be one of {PRESENCE_STATES}."
        )
    return await services().sliding_sync.sync(
        requester.user_id, requester.device_id, pos, body, timeout, set_presence
    )
