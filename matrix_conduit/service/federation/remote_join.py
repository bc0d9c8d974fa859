"""Membership in rooms this server is not in yet: joins, rejected invites, remote invites.

Spec: `content/server-server-api.md`:
- "Joining Rooms": the joining server picks a resident from the candidates
  (the client's `server_name`/`via`, the alias's servers from
  `/query/directory`, the inviting server, the room id's server), asks it for
  a template (`make_join`, with every room version we support in `ver`),
  checks the template's `type`, `room_id`, `sender`, `state_key` and
  `membership`, fills in `origin`, `origin_server_ts` (and the event id of
  rooms v1–v2), signs it and sends it back (`send_join` v2, else v1); then it
  checks the answer's state and auth chain (`room_snapshot`) before storing
  them as outliers and the join, with that state, as the room's first event;
- "Leaving Rooms (Rejecting Invites)": the same handshake with
  `make_leave`/`send_leave` through the inviting server (or, to retract a
  knock, the servers of the room's stripped state); when no server can be
  reached the leave is only local (the user is no longer shown the invite);
- "Knocking upon a room": the same handshake with `make_knock`/`send_knock`
  (v1 only); the knock is kept as an outlier with the answer's
  `knock_room_state`, which the user sees in `/sync` `rooms.knock`;
- "Restricted rooms": a resident that cannot authorise the join (400
  `M_UNABLE_TO_AUTHORISE_JOIN`, `M_UNABLE_TO_GRANT_JOIN`) makes us try the
  next; where we know the room's state, servers with a member who may invite
  are tried first;
- a leave or ban of our invited or knocking user, pushed to us by a room we
  are not in (a rescinded invite, a rejected knock): `receive_out_of_band`;
- "Inviting to a room": an invite of a user on another server goes to that
  server (`/invite` v2, else v1 for rooms v1–v2) to be signed before it is
  sent into the room;
- "Querying for information": `/query/directory` resolves another server's
  room alias.
`content/client-server-api/_index.md` "Joining rooms": room ids of rooms v12
have no server part, so joining one by id needs `via`/`server_name`.

All network I/O happens before the room's lock is taken (DESIGN.md), except
a remote invite, which keeps the room still while the invited server signs
(bounded by `INVITE_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import trio

from ...core.client_events import stripped_state
from ...core.errors import SignatureError
from ...core.events import (
    InvalidEvent,
    required_signature_servers,
    room_id_for_create_event,
    sign_event_with_id,
)
from ...core.ids import (
    InvalidIdentifier,
    is_on_server,
    is_valid_room_id,
    is_valid_server_name,
    server_name_of,
)
from ...core.redaction import redact
from ...core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from ...core.signing import signed_key_ids
from ...errors import MatrixError, forbidden, invalid_param, not_found
from ..clock import now_ms
from ..globals import Globals
from ..notifier import Notifier
from ..rooms import Rooms
from ..rooms.event_context import EventContext, EventStatus
from .client import FederationClient
from .errors import FederationError, RemoteError
from .incoming import IncomingEvents
from .key_ring import KeyRing
from .membership import incompatible_room_version, room_state_pdus, stripped_room_state
from .received import DroppedPdu, checked_pdu, reference_ids, wire_pdu

log = logging.getLogger(__name__)

MAX_JOIN_EVENTS = 250_000
"""State plus auth chain of one join answer (Matrix HQ's state is ~200k events)."""
MAX_CANDIDATES = 10
"""Resident servers tried per join, knock or leave, in order."""
TRY_ANOTHER_SERVER = ("M_UNABLE_TO_AUTHORISE_JOIN", "M_UNABLE_TO_GRANT_JOIN")
"""A restricted room's resident that cannot sign the join for us: another one may."""
JOIN_TIMEOUT_SECONDS = 300.0
"""A big room's `send_join` answer takes minutes to build and send (lessons: "Joins")."""
HANDSHAKE_TIMEOUT_SECONDS = 30.0
INVITE_TIMEOUT_SECONDS = 30.0
SUPPORTED_VERSIONS = tuple(KNOWN_ROOM_VERSIONS)


class BadJoinAnswer(MatrixError):
    """A resident's answer that cannot be used (the join tries the next server)."""

    def __init__(self, message: str) -> None:
        super().__init__(502, "M_UNKNOWN", f"The resident server's answer is unusable: {message}")


def _event_list(answer: Mapping[str, Any], key: str) -> list[Any]:
    value = answer.get(key)
    if not isinstance(value, list):
        raise BadJoinAnswer(f"`{key}` is not a list of events")
    return value


def _check_create_event(room_id: str, room_version: RoomVersion, state: Sequence[Any]) -> None:
    """The answer's state must hold this room's create event, of the version make_join said.

    Rooms v12: the room id is the create event's id; before, the create
    event names the room.
    """
    creates = [e for e in state if isinstance(e, dict) and e.get("type") == "m.room.create"]
    if len(creates) != 1:
        raise BadJoinAnswer("the state does not hold exactly one m.room.create event")
    create = creates[0]
    try:
        names_room = (
            room_id_for_create_event(create, room_version) == room_id
            if room_version.room_id_is_create_event_id
            else create.get("room_id") == room_id
        )
    except InvalidEvent as error:
        raise BadJoinAnswer(f"the create event is malformed: {error}") from None
    if not names_room:
        raise BadJoinAnswer("the create event is not this room's")
    content = create.get("content")
    declared = content.get("room_version", "1") if isinstance(content, dict) else None
    if declared != room_version.identifier:
        raise BadJoinAnswer(f"the create event is of room version {declared!r}")


def _stripped_room_version(stripped: Sequence[Mapping[str, Any]]) -> RoomVersion | None:
    """The room version an invite's or knock's stripped create event names."""
    for event in stripped:
        if event.get("type") == "m.room.create":
            content = event.get("content")
            identifier = content.get("room_version", "1") if isinstance(content, dict) else None
            if identifier in KNOWN_ROOM_VERSIONS:
                return get_room_version(identifier)
    return None


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


def _unrecognised(error: RemoteError) -> bool:
    """The remote does not serve this endpoint version (try the older one)."""
    return error.status in (404, 405) or error.errcode == "M_UNRECOGNIZED"


class RemoteMembership:
    def __init__(
        self,
        globals_: Globals,
        rooms: Rooms,
        client: FederationClient,
        key_ring: KeyRing,
        incoming: IncomingEvents,
        notifier: Notifier,
    ) -> None:
        self._globals = globals_
        self._rooms = rooms
        self._client = client
        self._key_ring = key_ring
        self._incoming = incoming
        self._notifier = notifier
        self._joining: dict[str, trio.Lock] = {}
        """One lock per room being joined remotely (dropped when nobody waits)."""

    # ---- aliases

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """The room an alias names and servers to join it through.

        Ours: from the alias table. Another server's: `/query/directory` there.
        """
        try:
            alias_server = server_name_of(alias)
        except InvalidIdentifier as error:
            raise invalid_param(f"{alias[:100]!r} is not a room alias: {error}") from None
        if self._globals.is_ours(alias):
            room_id = await self._rooms.aliases.resolve_or_ask(alias)
            if room_id is None:
                raise not_found(f"Room alias {alias} not found.")
            return room_id, []
        try:
            answer = await self._client.request(
                alias_server,
                "GET",
                "/_matrix/federation/v1/query/directory",
                query={"room_alias": alias},
                timeout=HANDSHAKE_TIMEOUT_SECONDS,
            )
        except FederationError as error:
            raise not_found(f"Room alias {alias} could not be resolved: {error}") from None
        room_id = answer.get("room_id") if isinstance(answer, dict) else None
        servers = answer.get("servers") if isinstance(answer, dict) else None
        if not is_valid_room_id(room_id):
            raise not_found(f"{alias_server} gave no valid room id for {alias}.")
        if not isinstance(servers, list):
            servers = []
        return room_id, [alias_server, *(s for s in servers if isinstance(s, str))]

    # ---- joining

    async def join(
        self,
        room_id: str,
        user_id: str,
        servers: Sequence[str],
        content: Mapping[str, Any],
    ) -> str:
        """Join a room through one of its resident servers; returns the join's event id.

        Remote joins of one room happen one at a time: each stores the room's
        state as its answer gives it, and a later answer holds the earlier join.
        """
        lock = self._joining.setdefault(room_id, trio.Lock())
        try:
            async with lock:
                return await self._join(room_id, user_id, servers, content)
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._joining.pop(room_id, None)

    async def _join(
        self,
        room_id: str,
        user_id: str,
        servers: Sequence[str],
        content: Mapping[str, Any],
    ) -> str:
        async def attempt(server: str) -> str:
            return await self._join_via(server, room_id, user_id, content)

        return await self._through_residents("join", room_id, user_id, servers, attempt)

    async def _through_residents(
        self,
        action: str,
        room_id: str,
        user_id: str,
        servers: Sequence[str],
        attempt: Callable[[str], Awaitable[str]],
    ) -> str:
        """`attempt(server)` through each candidate until one works (a join or a knock).

        The errors of the others decide the answer: a 403 or a room version
        we lack is the client's; a restricted room's "ask another server" only
        if nothing better came; else 404 with every failure.
        """
        candidates = self.candidates(room_id, user_id, servers)
        if not candidates:
            raise not_found(
                f"Room {room_id} is not known here and no server to {action} it through was "
                "given (use `via`)."
            )
        failures: list[str] = []
        refusal: MatrixError | None = None
        unable: MatrixError | None = None
        for server in candidates[:MAX_CANDIDATES]:
            try:
                return await attempt(server)
            except RemoteError as error:
                failures.append(str(error))
                if error.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
                    refusal = MatrixError(400, error.errcode, error.error)
                elif error.status == 403 and refusal is None:
                    refusal = forbidden(f"{server} refused the {action}: {error.error}")
                elif error.errcode in TRY_ANOTHER_SERVER and unable is None:
                    unable = forbidden(f"No server could authorise the {action}: {error.error}")
            except (FederationError, MatrixError) as error:
                failures.append(f"{server}: {error}")
                if isinstance(error, MatrixError) and error.status == 403 and refusal is None:
                    refusal = error
        log.info("%s of %s failed through every server: %s", action, room_id, "; ".join(failures))
        refusal = refusal or unable
        if refusal is not None:
            raise refusal
        raise not_found(f"Could not {action} {room_id} through any server: {'; '.join(failures)}")

    def candidates(self, room_id: str, user_id: str, servers: Iterable[str]) -> list[str]:
        """Servers to try, best first: the client's, the inviter's (or, for a knock,
        the stripped state's), the room id's, the room's (those who can authorise a
        restricted join first)."""
        ordered: list[str] = list(servers)
        ordered.extend(self._contacts(room_id, user_id))
        with contextlib.suppress(InvalidIdentifier):  # rooms v12: no server part
            ordered.append(server_name_of(room_id))
        ordered.extend(self._resident_servers(room_id))
        return [
            server
            for server in dict.fromkeys(ordered)
            if is_valid_server_name(server) and not self._globals.is_ours(server)
        ]

    def _resident_servers(self, room_id: str) -> list[str]:
        """The servers of the room's joined members as we last knew them; for a
        restricted room, those with a member who may invite (who can authorise a
        join) first."""
        members = sorted(self._rooms.state_cache.joined_members(room_id))
        timeline = self._rooms.timeline
        join_rule = timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
        if members and join_rule in ("restricted", "knock_restricted"):
            power_levels = timeline.power_levels(room_id)
            members.sort(key=lambda member: not power_levels.can_invite(member))
        return [member.partition(":")[2] for member in members]

    def _contacts(self, room_id: str, user_id: str) -> list[str]:
        """Servers an invite or knock of `user_id` names: the inviter's, or the senders'
        of the knock's stripped state."""
        inviter = self._inviter(room_id, user_id)
        if inviter is not None:
            return [inviter.partition(":")[2]]
        for knocked_room, stripped in self._rooms.state_cache.knocked_rooms(user_id):
            if knocked_room == room_id:
                senders = (event.get("sender") for event in stripped)
                return [s.partition(":")[2] for s in senders if isinstance(s, str) and s != user_id]
        return []

    def _inviter(self, room_id: str, user_id: str) -> str | None:
        """Who invited `user_id` to `room_id`, from the stripped state of the invite."""
        for invited_room, stripped in self._rooms.state_cache.invited_rooms(user_id):
            if invited_room != room_id:
                continue
            for event in stripped:
                if event.get("type") == "m.room.member" and event.get("state_key") == user_id:
                    sender = event.get("sender")
                    return sender if isinstance(sender, str) else None
        return None

    async def _join_via(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> str:
        template, room_version = await self._make(server, "join", room_id, user_id)
        event_content = {**template["content"], **content}
        event, event_id = self._sign_template(template, room_version, event_content)
        answer = await self._send(server, "join", room_id, event_id, event, JOIN_TIMEOUT_SECONDS)
        if isinstance(answer.get("event"), dict):
            event = await self._with_resident_signatures(event, answer["event"], room_version)
        state = _event_list(answer, "state")
        auth_chain = _event_list(answer, "auth_chain")
        if len(state) + len(auth_chain) > MAX_JOIN_EVENTS:
            raise BadJoinAnswer(f"more than {MAX_JOIN_EVENTS} events")
        _check_create_event(room_id, room_version, state)
        await self._prefetch_keys(room_version, [*state, *auth_chain])
        try:
            _, status = await self._incoming.persist_with_state(
                server, room_version, event, state, auth_chain
            )
        except DroppedPdu as error:
            raise BadJoinAnswer(f"our join came back unusable: {error}") from None
        if status is not EventStatus.TIMELINE:
            raise forbidden(f"The room's state, as {server} gave it, does not allow the join.")
        return event_id

    async def _prefetch_keys(self, room_version: RoomVersion, pdus: Sequence[Any]) -> None:
        """Every signing key the answer's events need, fetched in one batch (the key ring
        asks each server once, all at the same time) before they are checked one by one."""
        wanted: dict[str, set[str]] = {}
        earliest = None
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                servers = required_signature_servers(pdu, room_version)
            except InvalidEvent:
                continue  # refused when it is checked
            for server in servers:
                wanted.setdefault(server, set()).update(signed_key_ids(pdu, server))
            ts = pdu.get("origin_server_ts")
            if isinstance(ts, int) and (earliest is None or ts < earliest):
                earliest = ts
        if wanted:
            at_ts = earliest if room_version.enforce_key_validity and earliest else 0
            await self._key_ring.keys_for_many(wanted, at_ts)

    async def _with_resident_signatures(
        self, ours: dict[str, Any], returned: Mapping[str, Any], room_version: RoomVersion
    ) -> dict[str, Any]:
        """Our join with the signatures the resident added that verify (restricted joins)."""
        signatures = returned.get("signatures")
        if not isinstance(signatures, dict):
            return ours
        merged = {name: dict(keys) for name, keys in ours["signatures"].items()}
        for server, keys in signatures.items():
            if server in merged or not isinstance(keys, dict):
                continue
            candidate = {**ours, "signatures": {**merged, server: keys}}
            try:
                await self._key_ring.verify_signed_json(
                    redact(candidate, room_version), server, ours["origin_server_ts"]
                )
            except SignatureError:
                continue
            merged[server] = dict(keys)
        return {**ours, "signatures": merged}

    # ---- knocking on a room we are not in

    async def knock(
        self, room_id: str, user_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> str:
        """Knock through one of the room's resident servers; returns the knock's event id."""

        async def attempt(server: str) -> str:
            return await self._knock_via(server, room_id, user_id, content)

        return await self._through_residents("knock", room_id, user_id, servers, attempt)

    async def _knock_via(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> str:
        template, room_version = await self._make(server, "knock", room_id, user_id)
        if not room_version.knock_join_rule:
            raise BadJoinAnswer(f"room version {room_version.identifier} has no knocking")
        event, event_id = self._sign_template(
            template, room_version, {**template["content"], **content}
        )
        answer = await self._client.request(
            server,
            "PUT",
            f"/_matrix/federation/v1/send_knock/{_path(room_id, event_id)}",
            body=event,
            timeout=HANDSHAKE_TIMEOUT_SECONDS,
        )
        if not isinstance(answer, dict):
            raise BadJoinAnswer("send_knock answered no object")
        try:
            stripped = stripped_room_state(
                room_id, room_version, answer.get("knock_room_state"), "knock_room_state"
            )
        except MatrixError as error:
            raise BadJoinAnswer(error.error) from None
        knock = {**event, "event_id": event_id}
        rooms = self._rooms
        async with rooms.locks.hold(room_id) as guard:
            batch = rooms.timeline.batch()
            rooms.state_cache.update_membership(
                batch,
                room_id,
                user_id,
                "knock",
                self._globals.next_count(),
                stripped + stripped_state([knock]),
            )
            if rooms.timeline.status(event_id) is None:
                context = EventContext(EventStatus.OUTLIER, state_before=None, state_after=None)
                rooms.timeline.persist(guard, knock, room_version, context, batch)
            else:
                batch.commit()
        self._notifier.notify([user_id])
        return event_id

    # ---- a room we are not in tells us our invite or knock is over

    async def receive_out_of_band(
        self, origin: str, pdu: dict[str, Any]
    ) -> tuple[str, str | None] | None:
        """A leave or ban of one of our users pushed by a room we are not in, where they
        are invited or knocking: a rescinded invite, a rejected knock. (event id, error
        or None) if it was about such a user, else None (the PDU is ignored).

        We hold no state of the room, and its residents serve its events only to
        its members, so the event cannot be judged by the auth rules here. It is
        taken if its signatures and hash hold (steps 1–3), it cites the user's
        invite or knock that we stored among its auth events (it was authorised
        against it), and it comes from its sender's server; then it is kept as
        an outlier and the user's membership follows it.
        """
        content = pdu.get("content")
        room_id = pdu.get("room_id")
        target = pdu.get("state_key")
        if (
            pdu.get("type") != "m.room.member"
            or not isinstance(content, dict)
            or content.get("membership") not in ("leave", "ban")
            or not isinstance(room_id, str)
            or not isinstance(target, str)
            or not self._globals.is_ours(target)
        ):
            return None
        rooms = self._rooms
        pending = self._pending_state(room_id, target)
        if pending is None:
            return None
        room_version = _stripped_room_version(pending)
        if room_version is None:
            return None
        try:
            event = await checked_pdu(self._key_ring, pdu, room_version)
        except DroppedPdu as error:
            log.info(
                "dropping a membership of %s in %s from %s: %s", target, room_id, origin, error
            )
            return None
        event_id = event["event_id"]
        if not is_on_server(event["sender"], origin):
            return event_id, f"{origin} did not send {event_id}"
        if not self._cites_pending_membership(event, target):
            return event_id, f"{event_id} does not follow the invite or knock we know"
        async with rooms.locks.hold(room_id) as guard:
            if self._pending_state(room_id, target) is None:
                return event_id, None
            batch = rooms.timeline.batch()
            rooms.state_cache.update_membership(
                batch, room_id, target, content["membership"], self._globals.next_count()
            )
            if rooms.timeline.status(event_id) is None:
                context = EventContext(EventStatus.OUTLIER, state_before=None, state_after=None)
                rooms.timeline.persist(guard, event, room_version, context, batch)
            else:
                batch.commit()
        log.info("%s of %s in %s taken from %s", content["membership"], target, room_id, origin)
        self._notifier.notify([target])
        return event_id, None

    def _pending_state(self, room_id: str, user_id: str) -> list[dict[str, Any]] | None:
        """The stripped state of the user's invite or knock to a room we are not in."""
        state_cache = self._rooms.state_cache
        if state_cache.membership(room_id, user_id) not in ("invite", "knock"):
            return None
        if any(self._globals.is_ours(m) for m in state_cache.joined_members(room_id)):
            return None
        for source in (state_cache.invited_rooms, state_cache.knocked_rooms):
            for pending_room, stripped in source(user_id):
                if pending_room == room_id:
                    return stripped
        return None

    def _cites_pending_membership(self, event: Mapping[str, Any], target: str) -> bool:
        timeline = self._rooms.timeline
        for auth_id in reference_ids(event.get("auth_events")):
            cited = timeline.get_event(auth_id)
            if (
                cited is not None
                and cited.get("type") == "m.room.member"
                and cited.get("state_key") == target
                and cited.get("room_id") == event["room_id"]
                and (cited.get("content") or {}).get("membership") in ("invite", "knock")
            ):
                return True
        return False

    # ---- leaving a room we are not in (rejecting an invite, retracting a knock)

    async def reject_invite(self, room_id: str, user_id: str, content: Mapping[str, Any]) -> None:
        """Leave through the inviting server (a knock: the servers of its stripped state);
        only locally if no server takes the leave."""
        leave: dict[str, Any] | None = None
        room_version: RoomVersion | None = None
        for server in self.candidates(room_id, user_id, ())[:MAX_CANDIDATES]:
            try:
                template, room_version = await self._make(server, "leave", room_id, user_id)
                event, event_id = self._sign_template(
                    template, room_version, {**template["content"], **content}
                )
                await self._send(
                    server, "leave", room_id, event_id, event, HANDSHAKE_TIMEOUT_SECONDS
                )
            except (FederationError, MatrixError) as error:
                log.info("rejecting the invite to %s through %s failed: %s", room_id, server, error)
                continue
            leave = {**event, "event_id": event_id}
            break
        rooms = self._rooms
        async with rooms.locks.hold(room_id) as guard:
            batch = rooms.timeline.batch()
            rooms.state_cache.update_membership(
                batch, room_id, user_id, "leave", self._globals.next_count()
            )
            if (
                leave is not None
                and room_version is not None
                and rooms.timeline.status(leave["event_id"]) is None
            ):
                context = EventContext(EventStatus.OUTLIER, state_before=None, state_after=None)
                rooms.timeline.persist(guard, leave, room_version, context, batch)
            else:
                batch.commit()
        self._notifier.notify([user_id])

    # ---- inviting a user of another server

    async def invite(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Our signed invite, with the invited server's signature added by that server."""
        room_id = event["room_id"]
        room_version = self._rooms.timeline.room_version(room_id)
        target_server = event["state_key"].partition(":")[2]
        pdu = wire_pdu(event, room_version)
        path = _path(room_id, event["event_id"])
        body = {
            "room_version": room_version.identifier,
            "event": pdu,
            "invite_room_state": room_state_pdus(self._rooms.timeline, room_id, room_version),
        }
        try:
            try:
                answer = await self._client.request(
                    target_server,
                    "PUT",
                    f"/_matrix/federation/v2/invite/{path}",
                    body=body,
                    timeout=INVITE_TIMEOUT_SECONDS,
                )
            except RemoteError as error:
                if not (_unrecognised(error) and room_version.event_id_in_event):
                    raise
                answer = await self._client.request(
                    target_server,
                    "PUT",
                    f"/_matrix/federation/v1/invite/{path}",
                    body=pdu,
                    timeout=INVITE_TIMEOUT_SECONDS,
                )
                answer = answer[1] if isinstance(answer, list) and len(answer) == 2 else None
        except RemoteError as error:
            if error.status in (403, 404):  # the invitee's server may say no, or "no such user"
                raise MatrixError(
                    error.status, error.errcode, f"{target_server}: {error.error}"
                ) from None
            raise MatrixError(
                502, "M_UNKNOWN", f"{target_server} refused the invite: {error}"
            ) from None
        except FederationError as error:
            raise MatrixError(
                502, "M_UNKNOWN", f"Could not reach {target_server}: {error}"
            ) from None
        returned = answer.get("event") if isinstance(answer, dict) else None
        signatures = returned.get("signatures") if isinstance(returned, dict) else None
        theirs = signatures.get(target_server) if isinstance(signatures, dict) else None
        if not isinstance(theirs, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{target_server} did not sign the invite.")
        signed = {**event, "signatures": {**event["signatures"], target_server: theirs}}
        try:
            await self._key_ring.verify_signed_json(
                redact(wire_pdu(signed, room_version), room_version),
                target_server,
                event["origin_server_ts"],
            )
        except SignatureError as error:
            raise MatrixError(
                502, "M_UNKNOWN", f"{target_server} signed the invite wrongly: {error}"
            ) from None
        return signed

    # ---- the handshake steps

    async def _make(
        self, server: str, membership: str, room_id: str, user_id: str
    ) -> tuple[dict[str, Any], RoomVersion]:
        """`make_join`/`make_leave`: the template, checked, and the room version."""
        answer = await self._client.request(
            server,
            "GET",
            f"/_matrix/federation/v1/make_{membership}/{_path(room_id, user_id)}",
            query={"ver": list(SUPPORTED_VERSIONS)} if membership != "leave" else None,
            timeout=HANDSHAKE_TIMEOUT_SECONDS,
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise BadJoinAnswer(f"make_{membership} gave no event template")
        identifier = answer.get("room_version", "1")
        if identifier not in KNOWN_ROOM_VERSIONS:
            raise incompatible_room_version(str(identifier))
        template = answer["event"]
        content = template.get("content")
        if (
            template.get("type") != "m.room.member"
            or template.get("room_id") != room_id
            or template.get("sender") != user_id
            or template.get("state_key") != user_id
            or not isinstance(content, dict)
            or content.get("membership") != membership
        ):
            raise BadJoinAnswer(
                f"the make_{membership} template is not a {membership} of {user_id}"
            )
        return template, get_room_version(identifier)

    def _sign_template(
        self, template: Mapping[str, Any], room_version: RoomVersion, content: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """The template filled in as ours (origin, time, v1 event id), hashed and signed."""
        event = {
            key: value
            for key, value in template.items()
            if key not in ("signatures", "hashes", "unsigned", "event_id", "origin")
        }
        event["content"] = dict(content)
        event["origin_server_ts"] = now_ms()
        if not room_version.implicit_room_creator:
            event["origin"] = self._globals.server_name
        if room_version.event_id_in_event:
            event["event_id"] = f"${secrets.token_urlsafe(18)}:{self._globals.server_name}"
        try:
            return sign_event_with_id(
                event, self._globals.server_name, self._globals.signing_key, room_version
            )
        except InvalidEvent as error:
            raise BadJoinAnswer(f"the template cannot be signed: {error}") from None

    async def _send(
        self,
        server: str,
        membership: str,
        room_id: str,
        event_id: str,
        event: Mapping[str, Any],
        timeout: float,
    ) -> dict[str, Any]:
        """`send_join`/`send_leave` v2, else v1 (whose answer is `[200, {...}]`)."""
        path = f"send_{membership}/{_path(room_id, event_id)}"
        try:
            answer = await self._client.request(
                server, "PUT", f"/_matrix/federation/v2/{path}", body=event, timeout=timeout
            )
        except RemoteError as error:
            if not _unrecognised(error):
                raise
            answer = await self._client.request(
                server, "PUT", f"/_matrix/federation/v1/{path}", body=event, timeout=timeout
            )
            if isinstance(answer, list) and len(answer) == 2:
                answer = answer[1]
        if not isinstance(answer, dict):
            raise BadJoinAnswer(f"send_{membership} answered no object")
        return answer
