"""Sending, reading and redacting room events.

Spec: `content/client-server-api/_index.md` ("Sending events", "Getting events
for a room", "Redactions") and the OpenAPI of `room_send.yaml` (`PUT
/rooms/{roomId}/send/{eventType}/{txnId}`), `rooms.yaml` (`GET
/rooms/{roomId}/event/{eventId}`), `message_pagination.yaml` (`GET
/rooms/{roomId}/messages`), `event_context.yaml` (`GET
/rooms/{roomId}/context/{eventId}`), `redaction.yaml` (`PUT
/rooms/{roomId}/redact/{eventId}/{txnId}`) and `room_event_by_timestamp.yaml`
(`GET /rooms/{roomId}/timestamp_to_event`).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.filters import EventFilter, InvalidFilter
from ...errors import MatrixError, bad_json
from ...service.rooms.room_events import parse_token
from ..auth import Requester, authenticate
from ..fields import optional_str
from ..query import query_int
from ..rate_limits import limit_user
from ..request import json_object, parse_json, services
from .routes import client_route

blueprint = Blueprint("messages", __name__)

DEFAULT_PAGE = 10


def query_filter() -> EventFilter:
    """The `filter` query parameter: a RoomEventFilter as JSON."""
    raw = request.args.get("filter")
    if raw is None:
        return EventFilter()
    try:
        return EventFilter.from_json(parse_json(raw.encode()))
    except InvalidFilter as error:
        raise bad_json(f"Invalid filter: {error}") from None


def client_events(requester: Requester, events: list) -> list[dict]:
    room_events = services().rooms.events
    return [room_events.for_client(e, requester.user_id, requester.device_id) for e in events]


@client_route(blueprint, "/rooms/<room_id>/send/<event_type>/<txn_id>", methods=["PUT"])
async def send_message(room_id: str, event_type: str, txn_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    limit_user("message", requester)
    content = await json_object()
    event_id = await services().rooms.events.send(
        room_id, requester.user_id, requester.device_id, event_type, content, txn_id=txn_id
    )
    return {"event_id": event_id}


@client_route(blueprint, "/rooms/<room_id>/redact/<path:event_id>/<txn_id>", methods=["PUT"])
async def redact(room_id: str, event_id: str, txn_id: str) -> dict:
    requester = authenticate()
    limit_user("message", requester)
    body = await json_object(optional=True)
    redaction_id = await services().rooms.events.redact(
        room_id,
        requester.user_id,
        requester.device_id,
        event_id,
        txn_id,
        optional_str(body, "reason"),
    )
    return {"event_id": redaction_id}


@client_route(blueprint, "/rooms/<room_id>/event/<path:event_id>", methods=["GET"])
async def get_event(room_id: str, event_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    event = services().rooms.events.event(requester.user_id, room_id, event_id)
    return client_events(requester, [event])[0]


@client_route(blueprint, "/rooms/<room_id>/messages", methods=["GET"])
async def messages(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    direction = request.args.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", '`dir` must be "b" or "f".')
    event_filter = query_filter()
    limit = query_int("limit", event_filter.limit or DEFAULT_PAGE)

    def page() -> tuple[list, str, str | None]:
        return services().rooms.events.messages(
            requester.user_id,
            room_id,
            from_token=request.args.get("from"),
            to_token=request.args.get("to"),
            direction=direction,
            limit=limit,
            event_filter=event_filter,
        )

    events, start, end = page()
    # Going back past history this server never had (before our join, or a gap
    # in the middle): fetch it from the room's other servers, then page again.
    if direction == "b" and await services().backfill.fill_before(
        room_id, parse_token(start, "from"), limit
    ):
        events, start, end = page()
    answer: dict = {"chunk": client_events(requester, events), "start": start}
    if end is not None:
        answer["end"] = end
    return answer


@client_route(blueprint, "/rooms/<room_id>/context/<path:event_id>", methods=["GET"])
async def context(room_id: str, event_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    found = services().rooms.events.context(
        requester.user_id, room_id, event_id, query_int("limit", DEFAULT_PAGE), query_filter()
    )
    return {
        "event": client_events(requester, [found["event"]])[0],
        "events_before": client_events(requester, found["events_before"]),
        "events_after": client_events(requester, found["events_after"]),
        "state": client_events(requester, found["state"]),
        "start": found["start"],
        "end": found["end"],
    }


@client_route(blueprint, "/rooms/<room_id>/timestamp_to_event", methods=["GET"], versions=("v1",))
async def timestamp_to_event(room_id: str) -> dict:
    requester = authenticate()
    direction = request.args.get("dir")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", '`dir` must be "b" or "f".')
    if request.args.get("ts") is None:
        raise MatrixError(400, "M_MISSING_PARAM", "`ts` is required.")
    event_id, timestamp = services().rooms.events.timestamp_to_event(
        requester.user_id, room_id, query_int("ts", 0), direction
    )
    return {"event_id": event_id, "origin_server_ts": timestamp}
