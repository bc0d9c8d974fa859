"""The deprecated but still specified sync endpoints older clients and bots use.

Spec: `data/api/client-server/old_sync.yaml` (`GET /events`,
`GET /initialSync`, `GET /events/{eventId}`), `peeking_events.yaml`
(`GET /events?room_id=`, peeking into world-readable rooms) and
`room_initial_sync.yaml` (`GET /rooms/{roomId}/initialSync`). The behaviour
is `service/event_stream.py` and `service/initial_sync.py`; the tokens are
`/sync`'s.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.errors import InvalidIdentifier
from ...core.ids import RoomId
from ...errors import invalid_param, not_found
from ...service.event_stream import EventStreamRequest
from ...service.initial_sync import DEFAULT_LIMIT, Requester
from ...service.rooms.room_events import parse_token
from ..auth import authenticate
from ..query import query_bool, query_int
from ..request import services
from .routes import client_route

blueprint = Blueprint("legacy_sync", __name__)

MAX_TIMEOUT_MS = 60_000


@client_route(blueprint, "/events", methods=["GET"])
async def events() -> dict:
    requester = authenticate(allow_guest=True)
    since = request.args.get("from")
    room_id = request.args.get("room_id")
    if room_id is not None:
        _check_room_id(room_id)
    stream_request = EventStreamRequest(
        user_id=requester.user_id,
        device_id=requester.device_id,
        since=parse_token(since, "from") if since else None,
        timeout_ms=max(0, min(query_int("timeout", 0), MAX_TIMEOUT_MS)),
        room_id=room_id,
    )
    return await services().event_stream.events(stream_request)


@client_route(blueprint, "/initialSync", methods=["GET"])
async def initial_sync() -> dict:
    requester = authenticate(allow_guest=True)
    return services().initial_sync.snapshot(
        Requester(requester.user_id, requester.device_id),
        query_int("limit", DEFAULT_LIMIT, minimum=0),
        query_bool("archived"),
    )


@client_route(blueprint, "/rooms/<room_id>/initialSync", methods=["GET"])
async def room_initial_sync(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    _check_room_id(room_id)
    return services().initial_sync.room_snapshot(
        Requester(requester.user_id, requester.device_id),
        room_id,
        query_int("limit", DEFAULT_LIMIT, minimum=0),
    )


@client_route(blueprint, "/events/<event_id>", methods=["GET"])
async def event_by_id(event_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    rooms = services().rooms
    event = rooms.timeline.get_event(event_id)
    if event is None:
        raise not_found("Event not found.")
    visible = rooms.events.event(requester.user_id, event["room_id"], event_id)
    return rooms.events.for_client(visible, requester.user_id, requester.device_id)


def _check_room_id(room_id: str) -> None:
    try:
        RoomId.parse(room_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"{room_id[:300]!r} is not a room id: {error}") from None
