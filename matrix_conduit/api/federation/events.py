"""Events and room state for other servers: `/event`, `/state`, `/state_ids`,
`/get_missing_events`, `/backfill`, `/event_auth`.

Spec: `content/server-server-api.md` § Retrieving events, § Backfilling and
retrieving missing events; `data/api/server-server/events.yaml`,
`backfill.yaml`. Who may see what (history visibility, server ACLs, being in
the room) is `service/federation/served_events.py`.
"""

from __future__ import annotations

from typing import Any

from quart import request

from ...errors import bad_json, invalid_param, missing_param
from ..query import query_int
from ..request import json_object, services
from .auth import origin, signed_blueprint

blueprint = signed_blueprint("federation_events", __name__)

DEFAULT_MISSING_EVENTS_LIMIT = 10
MAX_BACKFILL_FROM = 100
"""Event ids one `/backfill` may start from (`v`): a server asks from its backward
extremities, a handful; more is a request to refuse."""


def _event_id_param() -> str:
    event_id = request.args.get("event_id")
    if event_id is None:
        raise missing_param("event_id")
    return event_id


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_json(f"`{key}` must be a list of event ids.")
    return value


def _non_negative_int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_json(f"`{key}` must be a non-negative integer.")
    return value


@blueprint.get("/_matrix/federation/v1/event/<event_id>")
async def get_event(event_id: str) -> dict:
    return services().inbound.served.event(origin(), event_id)


@blueprint.get("/_matrix/federation/v1/state/<room_id>")
async def get_state(room_id: str) -> dict:
    return services().inbound.served.state(origin(), room_id, _event_id_param())


@blueprint.get("/_matrix/federation/v1/state_ids/<room_id>")
async def get_state_ids(room_id: str) -> dict:
    return services().inbound.served.state_ids(origin(), room_id, _event_id_param())


@blueprint.post("/_matrix/federation/v1/get_missing_events/<room_id>")
async def get_missing_events(room_id: str) -> dict:
    body = await json_object()
    return services().inbound.served.missing_events(
        origin(),
        room_id,
        earliest=_id_list(body, "earliest_events"),
        latest=_id_list(body, "latest_events"),
        limit=_non_negative_int(body, "limit", DEFAULT_MISSING_EVENTS_LIMIT),
        min_depth=_non_negative_int(body, "min_depth", 0),
    )


@blueprint.get("/_matrix/federation/v1/backfill/<room_id>")
async def backfill(room_id: str) -> dict:
    from_ids = request.args.getlist("v")
    if not from_ids:
        raise missing_param("v")
    if len(from_ids) > MAX_BACKFILL_FROM:
        raise invalid_param(f"`v` names more than {MAX_BACKFILL_FROM} events.")
    limit = query_int("limit", minimum=0)
    return services().inbound.served.backfill(origin(), room_id, from_ids, limit)


@blueprint.get("/_matrix/federation/v1/event_auth/<room_id>/<event_id>")
async def get_event_auth(room_id: str, event_id: str) -> dict:
    return services().inbound.served.event_auth(origin(), room_id, event_id)
