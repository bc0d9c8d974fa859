"""`GET /sync`: what is new for the user, long-polling when nothing is.

Spec: `data/api/client-server/sync.yaml`; the behaviour is `service/sync.py`.
The `filter` parameter is a filter id or, when it starts with `{`, the
filter JSON itself.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.filters import Filter, InvalidFilter
from ...errors import MatrixError, bad_json
from ...service.rooms.room_events import parse_token
from ...service.sync import SyncRequest
from ..auth import authenticate
from ..query import query_bool, query_int
from ..request import parse_json, services
from .routes import client_route

blueprint = Blueprint("sync", __name__)

MAX_TIMEOUT_MS = 60_000
PRESENCE_STATES = ("online", "offline", "unavailable")


def sync_filter(user_id: str) -> Filter:
    raw = request.args.get("filter")
    if raw is None:
        return Filter()
    if raw.lstrip().startswith("{"):
        data = parse_json(raw.encode())
    else:
        data = services().filters.get(user_id, raw)
        if data is None:
            raise MatrixError(404, "M_NOT_FOUND", f"No filter with id {raw!r}.")
    try:
        return Filter.from_json(data)
    except InvalidFilter as error:
        raise bad_json(f"Invalid filter: {error}") from None


@client_route(blueprint, "/sync", methods=["GET"])
async def sync() -> dict:
    requester = authenticate(allow_guest=True)
    since = request.args.get("since")
    set_presence = request.args.get("set_presence", "online")
    if set_presence not in PRESENCE_STATES:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"`set_presence` must be one of {PRESENCE_STATES}."
        )
    sync_request = SyncRequest(
        user_id=requester.user_id,
        device_id=requester.device_id,
        since=parse_token(since, "since") if since else None,
        filter=sync_filter(requester.user_id),
        full_state=query_bool("full_state"),
        timeout_ms=max(0, min(query_int("timeout", 0), MAX_TIMEOUT_MS)),
        set_presence=set_presence,
    )
    return await services().sync.sync(sync_request)
