"""Other servers' public room directories, for our clients (`/publicRooms?server=X`).

Spec: client-server `list_public_rooms.yaml` (`server`: "the server to fetch
the published room directory from"), server-server "Published Room
Directory" (`public_rooms.yaml`: `GET /publicRooms` with `limit`, `since`,
`include_all_networks`, `third_party_instance_id` as query parameters;
`POST` with the same in a body plus `filter`). The remote's `since` tokens
are its own: passed to it and back untouched.

A filtered query is a POST. A server too old for that (404, 405 or
`M_UNRECOGNIZED`) gets a GET of its whole list, filtered here, without
pagination (what Synapse does). Each request is bounded in time, whatever
discovery and the peer do. Errors, as Synapse answers them: a remote that
refuses (403) is 403 `M_FORBIDDEN`; a remote that is down, too slow or
answers nonsense is 502 with the reason, so the client knows it is that
server and not ours. The user asked for that one server, so its backoff does
not stop the request (Synapse ignores backoff here too); the time bound does.
What comes back is checked field by field before a client sees it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import trio

from ...errors import MatrixError, forbidden, invalid_param
from ..rooms.directory import PublicRoomsQuery
from .client import FederationClient
from .errors import (
    DestinationForbidden,
    FederationDisabled,
    FederationError,
    RemoteError,
)

log = logging.getLogger(__name__)

PATH = "/_matrix/federation/v1/publicRooms"
REQUEST_TIMEOUT_SECONDS = 15.0
"""One request to the remote, once connected (the connector's bound)."""
DEADLINE_SECONDS = 20.0
"""Everything for one client request: discovery, connecting, the answer, a fallback."""
MAX_ANSWER_BYTES = 20 * 1024 * 1024
UNSUPPORTED_STATUSES = (404, 405)
OPTIONAL_STRINGS = ("name", "topic", "canonical_alias", "avatar_url", "join_rule", "room_type")
SEARCHED_FIELDS = ("name", "topic", "canonical_alias")


class RemotePublicRooms:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def page(self, server: str, query: PublicRoomsQuery) -> dict[str, Any]:
        """One page of `server`'s public room directory, as `query` asks.

        Raises `MatrixError`: 403 `M_FORBIDDEN` when the remote (or our own
        policy) refuses, 400 `M_INVALID_PARAM` when the remote calls the
        query malformed (a stale `since`), 502 `M_UNKNOWN` when it cannot be
        reached in time or answers something that is not a room list.
        """
        with trio.move_on_after(DEADLINE_SECONDS):
            try:
                return await self._page(server, query)
            except FederationError as error:
                raise _client_error(server, error) from None
        raise MatrixError(
            502, "M_UNKNOWN", f"{server} did not answer within {DEADLINE_SECONDS:g} s."
        )

    async def _page(self, server: str, query: PublicRoomsQuery) -> dict[str, Any]:
        if not query.filtered:
            return _checked(server, await self._get(server, query))
        try:
            return _checked(server, await self._post(server, query))
        except RemoteError as error:
            if error.status not in UNSUPPORTED_STATUSES and error.errcode != "M_UNRECOGNIZED":
                raise
        log.info("%s cannot filter /publicRooms; filtering its whole list here", server)
        whole = _checked(
            server, await self._get(server, dataclasses.replace(query, limit=None, since=None))
        )
        chunk = [room for room in whole["chunk"] if _matches(room, query)]
        return {"chunk": chunk, "total_room_count_estimate": len(chunk)}

    async def _get(self, server: str, query: PublicRoomsQuery) -> Any:
        parameters: dict[str, str] = {
            "include_all_networks": "true" if query.include_all_networks else "false"
        }
        if query.third_party_instance_id is not None:
            parameters["third_party_instance_id"] = query.third_party_instance_id
        if query.limit:
            parameters["limit"] = str(query.limit)
        if query.since is not None:
            parameters["since"] = query.since
        return await self._request(server, "GET", parameters=parameters)

    async def _post(self, server: str, query: PublicRoomsQuery) -> Any:
        search: dict[str, Any] = {}
        if query.search_term:
            search["generic_search_term"] = query.search_term
        if query.room_types is not None:
            search["room_types"] = list(query.room_types)
        body: dict[str, Any] = {
            "include_all_networks": query.include_all_networks,
            "filter": search,
        }
        if query.third_party_instance_id is not None:
            body["third_party_instance_id"] = query.third_party_instance_id
        if query.limit:
            body["limit"] = query.limit
        if query.since is not None:
            body["since"] = query.since
        return await self._request(server, "POST", body=body)

    async def _request(
        self,
        server: str,
        method: str,
        *,
        parameters: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        return await self._client.request(
            server,
            method,
            PATH,
            query=parameters,
            body=body,
            timeout=REQUEST_TIMEOUT_SECONDS,
            max_bytes=MAX_ANSWER_BYTES,
            ignore_backoff=True,
        )


def _client_error(server: str, error: FederationError) -> MatrixError:
    """What our client is told when `server` gave no room list."""
    if isinstance(error, FederationDisabled):
        return forbidden("Federation is disabled on this server: only its own rooms are listed.")
    if isinstance(error, DestinationForbidden):
        return forbidden(f"This server does not contact {server}: {error}")
    if isinstance(error, RemoteError):
        if error.status == 403:
            return forbidden(f"{server} does not let other servers list its public rooms.")
        if error.status == 400:
            return invalid_param(f"{server} refused the query: {error.errcode}: {error.error}")
        return MatrixError(502, "M_UNKNOWN", f"{server} could not list its public rooms: {error}")
    return MatrixError(502, "M_UNKNOWN", f"{server} is unreachable: {error}")


def _checked(server: str, answer: Any) -> dict[str, Any]:
    """The remote's answer as the spec's PublicRoomsResponse, or 502 if it is not one.

    Rooms without a room id are left out; every other field is kept only
    with its spec type (a room count that is not a number counts 0).
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("chunk"), list):
        raise MatrixError(502, "M_UNKNOWN", f"{server} answered something that is no room list.")
    chunk = [room for room in map(published_room, answer["chunk"]) if room is not None]
    checked: dict[str, Any] = {"chunk": chunk}
    for token in ("next_batch", "prev_batch"):
        if isinstance(answer.get(token), str) and answer[token]:
            checked[token] = answer[token]
    estimate = answer.get("total_room_count_estimate")
    if is_count(estimate):
        checked["total_room_count_estimate"] = estimate
    return checked


def published_room(entry: Any) -> dict[str, Any] | None:
    """A room of another server's answer as the spec's PublishedRoomsChunk, or None
    without a room id (each field kept only with its spec type)."""
    if not isinstance(entry, dict):
        return None
    room_id = entry.get("room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        return None
    members = entry.get("num_joined_members")
    room: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": members if is_count(members) else 0,
        "world_readable": entry.get("world_readable") is True,
        "guest_can_join": entry.get("guest_can_join") is True,
    }
    for key in OPTIONAL_STRINGS:
        if isinstance(entry.get(key), str):
            room[key] = entry[key]
    return room


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _matches(room: dict[str, Any], query: PublicRoomsQuery) -> bool:
    """Whether a room of a remote's whole list passes the query's filter (the fallback)."""
    if query.room_types is not None and room.get("room_type") not in query.room_types:
        return False
    if not query.search_term:
        return True
    needle = query.search_term.lower()
    return any(needle in str(room.get(key, "")).lower() for key in SEARCHED_FIELDS)
