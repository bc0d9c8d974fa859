"""Client requests of the directory tests across servers (`tests/federation/test_*directories.py`).

Work for a user of ours (`tests.support.matrix.User`) and for an `Account`
of either server (`tests.support.synapse_rooms`) alike: both carry an HTTP
client of their server's client API and an access token. Spec:
`list_public_rooms.yaml` (`/publicRooms`, `server`), `space_hierarchy.yaml`
(`/rooms/{roomId}/hierarchy`, under `/_matrix/client/v1`).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from tests.support.matrix import ok, path_part

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
MAX_PAGES = 20


class Client(Protocol):
    http: httpx.AsyncClient
    access_token: str


def _headers(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.access_token}"}


async def list_public_rooms(client: Client, **params: Any) -> httpx.Response:
    """`GET /publicRooms` (`server`, `limit`, `since` as query parameters)."""
    return await client.http.get(
        f"{CLIENT_V3}/publicRooms", params=params or None, headers=_headers(client)
    )


async def search_public_rooms(
    client: Client, body: dict[str, Any], server: str | None = None
) -> httpx.Response:
    """`POST /publicRooms` with `body` (`filter`, `limit`, `since`), of `server` if given."""
    params = {"server": server} if server is not None else None
    return await client.http.post(
        f"{CLIENT_V3}/publicRooms", params=params, json=body, headers=_headers(client)
    )


async def search_every_page(client: Client, server: str, term: str, limit: int) -> list[list[str]]:
    """The room ids of each page of `server`'s rooms matching `term`, `limit` a page,
    following `next_batch` to the end."""
    pages: list[list[str]] = []
    since: str | None = None
    for _ in range(MAX_PAGES):
        body: dict[str, Any] = {"filter": {"generic_search_term": term}, "limit": limit}
        if since is not None:
            body["since"] = since
        answer = ok(await search_public_rooms(client, body, server))
        pages.append([room["room_id"] for room in answer["chunk"]])
        since = answer.get("next_batch")
        if since is None:
            return pages
    raise AssertionError(f"still a next_batch after {MAX_PAGES} pages: {pages}")


async def hierarchy(client: Client, room_id: str, **params: Any) -> httpx.Response:
    """`GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (a list value repeats, e.g. `via`)."""
    return await client.http.get(
        f"{CLIENT_V1}/rooms/{path_part(room_id)}/hierarchy",
        params=params or None,
        headers=_headers(client),
    )


async def hierarchy_pages(client: Client, room_id: str, **params: Any) -> list[list[str]]:
    """The room ids of each page of the hierarchy, following `next_batch` to the end."""
    pages: list[list[str]] = []
    for _ in range(MAX_PAGES):
        answer = ok(await hierarchy(client, room_id, **params))
        pages.append([room["room_id"] for room in answer["rooms"]])
        if "next_batch" not in answer:
            return pages
        params["from"] = answer["next_batch"]
    raise AssertionError(f"still a next_batch after {MAX_PAGES} pages: {pages}")


class RoomMaker(Protocol):
    async def create_room(self, **body: Any) -> str: ...

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> httpx.Response: ...


async def new_space(owner: RoomMaker, name: str, **create: Any) -> str:
    """A public space (`m.space` room type) named `name`."""
    create.setdefault("preset", "public_chat")
    return await owner.create_room(name=name, creation_content={"type": "m.space"}, **create)


async def add_child(
    owner: RoomMaker, space_id: str, child_id: str, via: str, **content: Any
) -> None:
    """`m.space.child` of `child_id` in the space, reachable through `via`."""
    ok(await owner.put_state(space_id, "m.space.child", {"via": [via], **content}, child_id))
