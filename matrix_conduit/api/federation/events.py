"""Events and room state for other servers: `/event`, `/state`, `/state_ids`,
`/get_missing_events`.

Spec: `content/server-server-api.md` § Retrieving events, § Backfilling and
retrieving missing events; `data/api/server-server/events.yaml`,
`backfill.yaml`. Who may see what (history visibility, server ACLs, being in
the room) is `service/federation/served_events.py`.
"""

from __future__ import annotations

from typing import Any

from quart import request

from ...errors import bad_json, missing_param
from ..request import json_object, services
from .auth import origin, signed_blueprint

blueprint = signed_blueprint("federation_events", __name__)

DEFAULT_MISSING_EVENTS_LIMIT = 10


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
