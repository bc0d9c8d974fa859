"""`make_join`/`send_join`, `make_leave`/`send_leave`, `make_knock`/`send_knock`, `/invite`
and `exchange_third_party_invite`, as other servers call them.

Spec: `content/server-server-api.md` ("Joining Rooms", "Leaving Rooms
(Rejecting Invites)", "Knocking upon a room", "Inviting to a room",
"Third-party invites"); OpenAPI `data/api/server-server/joins-v1.yaml`,
`joins-v2.yaml` (with `omit_members`), `leaving-v1.yaml`, `leaving-v2.yaml`,
`knocks.yaml`, `invites-v1.yaml`, `invites-v2.yaml`, `third_party_invite.yaml`.
The v1 answers of `send_join`, `send_leave` and `/invite` are wrapped as
`[200, {...}]`; v2 answers are the object alone. Every route is behind the
X-Matrix gate; what is checked and stored is `service/federation/membership.py`;
each route first applies the room's server ACL (§ Server Access Control Lists).
"""

from __future__ import annotations

from typing import Any

from quart import request

from ...errors import bad_json
from ..query import query_bool
from ..request import json_object, parse_json, services
from .auth import origin, require_server_allowed, signed_blueprint

blueprint = signed_blueprint("federation_membership", __name__)

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


async def _json_body() -> Any:
    return parse_json(await request.get_data(cache=True))


@blueprint.get(f"{V1}/make_join/<room_id>/<user_id>")
async def make_join(room_id: str, user_id: str) -> dict:
    require_server_allowed(room_id)
    versions = request.args.getlist("ver") or ["1"]
    return services().resident_membership.make_join(origin(), room_id, user_id, versions)


@blueprint.put(f"{V1}/send_join/<room_id>/<event_id>")
async def send_join_v1(room_id: str, event_id: str) -> Any:
    require_server_allowed(room_id)
    answer = await services().resident_membership.send_join(
        origin(), room_id, event_id, await _json_body()
    )
    v1_keys = ("origin", "state", "auth_chain")
    return [200, {key: answer[key] for key in v1_keys}]


@blueprint.put(f"{V2}/send_join/<room_id>/<event_id>")
async def send_join_v2(room_id: str, event_id: str) -> dict:
    require_server_allowed(room_id)
    return await services().resident_membership.send_join(
        origin(),
        room_id,
        event_id,
        await _json_body(),
        query_bool("omit_members"),
    )


@blueprint.get(f"{V1}/make_knock/<room_id>/<user_id>")
async def make_knock(room_id: str, user_id: str) -> dict:
    require_server_allowed(room_id)
    versions = request.args.getlist("ver")
    return services().resident_membership.make_knock(origin(), room_id, user_id, versions)


@blueprint.put(f"{V1}/send_knock/<room_id>/<event_id>")
async def send_knock(room_id: str, event_id: str) -> dict:
    require_server_allowed(room_id)
    knock_room_state = await services().resident_membership.send_knock(
        origin(), room_id, event_id, await _json_body()
    )
    return {"knock_room_state": knock_room_state}


@blueprint.get(f"{V1}/make_leave/<room_id>/<user_id>")
async def make_leave(room_id: str, user_id: str) -> dict:
    require_server_allowed(room_id)
    return services().resident_membership.make_leave(origin(), room_id, user_id)


@blueprint.put(f"{V1}/send_leave/<room_id>/<event_id>")
async def send_leave_v1(room_id: str, event_id: str) -> Any:
    require_server_allowed(room_id)
    await services().resident_membership.send_leave(origin(), room_id, event_id, await _json_body())
    return [200, {}]


@blueprint.put(f"{V2}/send_leave/<room_id>/<event_id>")
async def send_leave_v2(room_id: str, event_id: str) -> dict:
    require_server_allowed(room_id)
    await services().resident_membership.send_leave(origin(), room_id, event_id, await _json_body())
    return {}


@blueprint.put(f"{V1}/invite/<room_id>/<event_id>")
async def invite_v1(room_id: str, event_id: str) -> Any:
    require_server_allowed(room_id)
    event = await services().resident_membership.invite(
        origin(), room_id, event_id, await _json_body(), None, None
    )
    return [200, {"event": event}]


@blueprint.put(f"{V2}/invite/<room_id>/<event_id>")
async def invite_v2(room_id: str, event_id: str) -> dict:
    require_server_allowed(room_id)
    body = await json_object()
    room_version = body.get("room_version")
    if not isinstance(room_version, str):
        raise bad_json("`room_version` must be a string.")
    event = await services().resident_membership.invite(
        origin(),
        room_id,
        event_id,
        body.get("event"),
        room_version,
        body.get("invite_room_state", []),
    )
    return {"event": event}


@blueprint.put(f"{V1}/exchange_third_party_invite/<room_id>")
async def exchange_third_party_invite(room_id: str) -> dict:
    require_server_allowed(room_id)
    await services().resident_membership.exchange_third_party_invite(
        origin(), room_id, await _json_body()
    )
    return {}
