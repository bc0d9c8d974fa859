"""Helpers for the knocking and restricted-join tests between our servers
(`tests/federation/test_knock_and_restricted.py`)."""

from __future__ import annotations

from typing import Any

import httpx

from matrix_conduit.core.events import sign_event_with_id
from matrix_conduit.core.room_versions import get_room_version
from matrix_conduit.service.clock import now_ms
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.federation import FederatingServer
from tests.support.matrix import User, ok, path_part
from tests.support.remote_membership import eventually


async def knock(user: User, room: str, reason: str | None = None, **params: Any) -> httpx.Response:
    """`POST /knock/{roomIdOrAlias}` with query parameters (`via`, `server_name`)."""
    body = {} if reason is None else {"reason": reason}
    return await user.request("POST", f"/knock/{path_part(room)}", body=body, params=params)


async def synced_rooms(user: User, section: str) -> dict[str, Any]:
    """The rooms of one section (`join`, `invite`, `knock`, `leave`) of an initial `/sync`."""
    return ok(await user.get("/sync"))["rooms"][section]


def membership_on(server: FederatingServer, room_id: str, user: User) -> str | None:
    """The user's membership in the room as `server`'s membership cache holds it."""
    return server.server.services.rooms.state_cache.membership(room_id, user.user_id)


async def until_membership(
    server: FederatingServer, room_id: str, user: User, membership: str
) -> None:
    """Wait until `server` holds `membership` for the user (what another server pushed)."""

    async def holds() -> bool:
        return membership_on(server, room_id, user) == membership

    await eventually(holds)


def restricted_rules(*allowed_rooms: str) -> dict[str, Any]:
    """`initial_state` entry: a `restricted` join rule allowing the members of these rooms."""
    allow = [{"type": "m.room_membership", "room_id": room_id} for room_id in allowed_rooms]
    return {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {"join_rule": "restricted", "allow": allow},
    }


async def federation_error(
    server: FederatingServer, destination: str, method: str, path: str, **kwargs: Any
) -> tuple[int, str]:
    """The status and errcode `destination` refuses `server`'s signed request with."""
    try:
        answer = await server.federation.client.request(destination, method, path, **kwargs)
    except RemoteError as error:
        return error.status, error.errcode
    raise AssertionError(f"{path} was answered {answer!r}")


async def send_join_by_hand(
    joiner: FederatingServer,
    resident: str,
    template: dict[str, Any],
    *,
    room_version: str = "10",
    omit_members: bool | str | None = None,
    expect_error: bool = False,
) -> tuple[int, str, dict[str, Any]]:
    """Sign a join template (of a room of `room_version`) as `joiner` and `PUT` it to
    `resident`'s `send_join` v2, with `omit_members` as given (a bool, or any string):
    (200, "", answer), or (status, errcode, {"error": message}) of a refusal when
    `expect_error`."""
    services = joiner.server.services
    room_id = template["room_id"]
    event = {
        key: value
        for key, value in template.items()
        if key not in ("signatures", "hashes", "unsigned", "event_id")
    }
    event["origin_server_ts"] = now_ms()
    event["origin"] = joiner.name
    signed, event_id = sign_event_with_id(
        event, joiner.name, services.globals.signing_key, get_room_version(room_version)
    )
    query = None
    if omit_members is not None:
        flag = omit_members if isinstance(omit_members, str) else str(omit_members).lower()
        query = {"omit_members": flag}
    path = f"/_matrix/federation/v2/send_join/{path_part(room_id)}/{path_part(event_id)}"
    try:
        answer = await joiner.federation.client.request(
            resident, "PUT", path, body=signed, query=query
        )
    except RemoteError as error:
        if not expect_error:
            raise
        return error.status, error.errcode, {"error": error.error}
    if expect_error:
        raise AssertionError(f"send_join was answered {answer!r}")
    return 200, "", answer
