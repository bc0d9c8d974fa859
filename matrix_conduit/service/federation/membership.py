"""Membership handshakes as the resident server, and invites for our users.

Spec: `content/server-server-api.md`:
- "Joining Rooms" (`make_join` hands out an unsigned template; `send_join`
  takes the joining server's signed event, which the resident checks, signs
  where the room version needs it, accepts into the room's graph, sends on
  to the other servers in the room, and answers with the state before it and
  the auth chain) and "Restricted rooms" (the resident names one of its users
  who may invite in `join_authorised_via_users_server` and signs the event);
- "Leaving Rooms (Rejecting Invites)" (`make_leave`/`send_leave`, the same
  handshake for a leave) and "Knocking upon a room" (`make_knock`/`send_knock`,
  rooms v7+, answered with the room's stripped state as `knock_room_state`);
- `send_join` with `omit_members` (joins-v2.yaml, MSC3706/MSC3943): the state
  without `m.room.member` events but the heroes' of a nameless room, the auth
  chain of what is returned without what `state` holds, and `servers_in_room`;
- "Inviting to a room" (`/invite`: the invited user's server checks the
  event, adds its signature, and keeps the invite with the stripped state so
  the user sees it in `/sync` `rooms.invite`).
- "Third-party invites" (`exchange_third_party_invite`: the invite that
  redeems a room's `m.room.third_party_invite`, checked, built and signed as
  its sender's, signed by the invited server and sent into the room).
OpenAPI: `data/api/server-server/joins-v1.yaml`, `joins-v2.yaml`,
`leaving-v1.yaml`, `leaving-v2.yaml`, `invites-v1.yaml`, `invites-v2.yaml`,
`knocks.yaml`, `third_party_invite.yaml`.

An accepted join or leave is a timeline event of the room like any other:
its state before is the state after its prev_events (which are ours: the
template came from here), it must pass the auth rules against that state and
against the current state, and it goes through the one persist path. Other
servers' events are not passed on by the outbox hook (their origin sends
them), so the resident queues these for the room's other servers itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from ...core.auth import AUTHORISING_USER, check_auth
from ...core.canonical_json import encode_canonical_json
from ...core.client_events import STRIPPED_STATE_TYPES, stripped_state, stripped_state_event
from ...core.errors import CanonicalJsonError, SignatureError
from ...core.events import (
    MAX_PDU_BYTES,
    InvalidEvent,
    check_content_hash,
    compute_event_id,
    required_signature_servers,
    validate_pdu_format,
    verify_event_signatures,
)
from ...core.ids import is_on_server
from ...core.redaction import redact
from ...core.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from ...core.signing import VerifyKey, add_signature, signed_bytes, signed_key_ids
from ...errors import MatrixError, forbidden, invalid_param, not_found
from ...storage import WriteBatch
from ..globals import Globals
from ..notifier import Notifier
from ..rooms import Rooms
from ..rooms.event_context import EventContext, EventStatus
from ..rooms.locks import RoomGuard
from ..rooms.timeline import Timeline
from .key_ring import KeyRing
from .received import wire_pdu


class Relay(Protocol):
    """Where the resident queues another server's accepted event for the room's other
    servers (the federation outbox), in the event's own batch."""

    def queue(
        self, batch: WriteBatch, destinations: Iterable[str], item: dict[str, Any]
    ) -> None: ...


class UserDirectory(Protocol):
    def exists(self, user_id: str) -> bool: ...


OMIT_MEMBERS_FROM = 50
"""`omit_members` is honoured from this many member events in the state on (joins-v2.yaml:
"Receiving servers are not obliged to implement partial state ... free to support it for
some rooms and not others"): below, the whole state costs little to send and check, and
spares the joiner a second round (Synapse then fetches the full state in the background)."""
MAX_HEROES = 5
"""Members named in `m.heroes` (client-server `/sync` room summary), kept by `omit_members`."""


def incompatible_room_version(room_version: str) -> MatrixError:
    return MatrixError(
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        f"Your server does not support room version {room_version}.",
        room_version=room_version,
    )


def _fits_in_a_pdu(entry: Mapping[str, Any]) -> bool:
    try:
        return len(encode_canonical_json(entry)) <= MAX_PDU_BYTES
    except CanonicalJsonError:
        return False


def room_state_pdus(
    timeline: Timeline, room_id: str, room_version: RoomVersion
) -> list[dict[str, Any]]:
    """The room's stripped-state events as full PDUs (Matrix 1.16: the create event too),
    what `invite_room_state` and `knock_room_state` carry."""
    events = (timeline.state_event(room_id, event_type) for event_type in STRIPPED_STATE_TYPES)
    return [wire_pdu(event, room_version) for event in events if event is not None]


def stripped_room_state(
    room_id: str, room_version: RoomVersion, entries: Any, field: str
) -> list[dict[str, Any]]:
    """The stripped state an invited or knocking user is shown, from another server's
    `invite_room_state` or `knock_room_state` (`field`, named in errors).

    Entries may be full PDUs (Matrix 1.16) or stripped events (older
    servers); both become stripped state. One entry per type (each has state
    key ""), none larger than a PDU may be: the user's every /sync carries
    them until they answer. From room v12 on the create event is required (the
    spec's SHOULD) and must be this room's.
    """
    if not isinstance(entries, list):
        raise invalid_param(f"`{field}` must be a list of events.")
    by_type: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if (
            isinstance(entry, dict)
            and entry.get("type") in STRIPPED_STATE_TYPES
            and isinstance(entry.get("sender"), str)
            and isinstance(entry.get("content"), dict)
            and entry.get("state_key", "") == ""
            and _fits_in_a_pdu(entry)
        ):
            by_type[entry["type"]] = entry
    kept = list(by_type.values())
    if room_version.room_id_is_create_event_id:
        create = by_type.get("m.room.create")
        if create is None:
            raise MatrixError(400, "M_MISSING_PARAM", f"`{field}` has no m.room.create event.")
        try:
            names_room = "!" + compute_event_id(create, room_version)[1:] == room_id
        except InvalidEvent:
            names_room = False
        if not names_room:
            raise invalid_param(f"The m.room.create event of `{field}` is not this room's.")
    return [stripped_state_event(entry) for entry in kept]


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def signers(event: Mapping[str, Any]) -> set[str]:
    """The servers that signed an event whose signatures were verified."""
    signatures = event.get("signatures")
    return set(signatures) if isinstance(signatures, Mapping) else set()


class ResidentMembership:
    def __init__(
        self,
        globals_: Globals,
        rooms: Rooms,
        users: UserDirectory,
        key_ring: KeyRing,
        notifier: Notifier,
        relay: Relay,
    ) -> None:
        self._globals = globals_
        self._rooms = rooms
        self._users = users
        self._key_ring = key_ring
        self._notifier = notifier
        self._relay = relay

    # ---- make_join / make_leave

    def make_join(
        self, origin: str, room_id: str, user_id: str, supported_versions: Collection[str]
    ) -> dict[str, Any]:
        """The unsigned join template for `user_id` of `origin` (`GET /make_join`)."""
        room_version = self._resident_room_version(room_id)
        if room_version.identifier not in supported_versions:
            raise incompatible_room_version(room_version.identifier)
        self._require_origin_user(origin, user_id)
        content: dict[str, Any] = {"membership": "join"}
        timeline = self._rooms.timeline
        join_rule = timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
        membership = self._rooms.state_cache.membership(room_id, user_id)
        if (
            room_version.restricted_join_rule
            and join_rule in ("restricted", "knock_restricted")
            and membership not in ("join", "invite")
        ):
            content[AUTHORISING_USER] = self._rooms.membership.restricted_join_authoriser(
                room_id, user_id
            )
        return self._template(room_id, room_version, user_id, content)

    def make_knock(
        self, origin: str, room_id: str, user_id: str, supported_versions: Collection[str]
    ) -> dict[str, Any]:
        """The unsigned knock template for `user_id` of `origin` (`GET /make_knock`).

        400 `M_INCOMPATIBLE_ROOM_VERSION` when the asking server lacks the room's
        version; 403 when the room takes no knocks (its version predates knocking,
        its join rule is not `knock`/`knock_restricted`, the user is banned).
        """
        room_version = self._resident_room_version(room_id)
        if room_version.identifier not in supported_versions:
            raise incompatible_room_version(room_version.identifier)
        self._require_origin_user(origin, user_id)
        if not room_version.knock_join_rule:
            raise forbidden(f"Room version {room_version.identifier} does not support knocking.")
        join_rule = self._rooms.timeline.state_content(room_id, "m.room.join_rules").get(
            "join_rule"
        )
        allowed = ("knock", "knock_restricted") if room_version.knock_restricted_join_rule else ()
        if join_rule not in (allowed or ("knock",)):
            raise forbidden("This room does not accept knocks.")
        return self._template(room_id, room_version, user_id, {"membership": "knock"})

    def make_leave(self, origin: str, room_id: str, user_id: str) -> dict[str, Any]:
        """The unsigned leave template for `user_id` of `origin` (`GET /make_leave`)."""
        room_version = self._resident_room_version(room_id)
        self._require_origin_user(origin, user_id)
        return self._template(room_id, room_version, user_id, {"membership": "leave"})

    def _template(
        self, room_id: str, room_version: RoomVersion, user_id: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        template = self._rooms.builder.template(room_id, user_id, "m.room.member", content, user_id)
        state = self._rooms.state.current_state_ids(room_id)
        rejection = check_auth(
            template,
            self._rooms.timeline.auth_events_in(template, room_version, state),
            room_version,
            is_signed_by=lambda _event, _server: True,  # signatures come later
        )
        if rejection is not None:
            raise forbidden(f"{rejection.reason} ({rejection.rule})")
        return {"room_version": room_version.identifier, "event": template}

    # ---- send_join / send_leave

    async def send_join(
        self, origin: str, room_id: str, event_id: str, pdu: Any, omit_members: bool = False
    ) -> dict[str, Any]:
        """Accept a signed join; the state before it and the auth chain (`PUT /send_join`).

        A join naming one of our users in `join_authorised_via_users_server`
        is signed by us only after the allow rules are checked again (the
        template may be old, or not ours). With `omit_members`, for a room of
        `OMIT_MEMBERS_FROM` members or more: see `_state_without_members`.
        """
        room_version = self._resident_room_version(room_id)
        event = self._membership_pdu(origin, room_id, event_id, pdu, "join", room_version)
        authoriser = event["content"].get(AUTHORISING_USER)
        if (
            room_version.restricted_join_rule
            and isinstance(authoriser, str)
            and self._globals.is_ours(authoriser)
        ):
            self._require_restricted_join(room_id, event["state_key"], authoriser)
            event = self._countersign(event, room_version)
        accepted, state_before = await self._accept(origin, room_id, event, room_version)
        joiner = accepted["state_key"]
        servers = sorted(
            {
                _server_of(member)
                for member in self._rooms.state_cache.joined_members(room_id)
                if member != joiner
            }
        )
        members = sum(1 for event_type, _ in state_before if event_type == "m.room.member")
        omit_members = omit_members and members >= OMIT_MEMBERS_FROM
        state_ids = (
            self._state_without_members(room_id, joiner, state_before)
            if omit_members
            else set(state_before.values())
        )
        timeline = self._rooms.timeline
        state_events = [e for i in state_ids if (e := timeline.get_event(i)) is not None]
        chain_ids = self._auth_chain([accepted, *state_events]) - state_ids
        return {
            "origin": self._globals.server_name,
            "state": [wire_pdu(event, room_version) for event in state_events],
            "auth_chain": self._pdus(chain_ids, room_version),
            "event": wire_pdu(accepted, room_version),
            "members_omitted": omit_members,
            "servers_in_room": servers,
        }

    def _state_without_members(
        self, room_id: str, joiner: str, state_before: Mapping[tuple[str, str], str]
    ) -> set[str]:
        """The state of an `omit_members` answer (MSC3706): every event but `m.room.member`
        ones, except the heroes' of a room with neither `m.room.name` nor
        `m.room.canonical_alias` (MSC3943: so the joiner's clients can name the room).

        The members the join's own auth needs (the authorising user, the
        joiner's invite) come in its auth chain; `auth_chain` leaves out what
        `state` holds (the spec allows it with `omit_members`).
        """
        timeline = self._rooms.timeline
        state_ids = {
            event_id
            for (event_type, _), event_id in state_before.items()
            if event_type != "m.room.member"
        }
        named = timeline.state_content(room_id, "m.room.name").get("name") or (
            timeline.state_content(room_id, "m.room.canonical_alias").get("alias")
        )
        if not named:
            for hero in self._heroes(room_id, joiner):
                member_id = state_before.get(("m.room.member", hero))
                if member_id is not None:
                    state_ids.add(member_id)
        return state_ids

    def _heroes(self, room_id: str, joiner: str) -> list[str]:
        """Up to five joined, then invited, members other than the joiner, as `/sync`'s
        `m.heroes` picks them."""
        state_cache = self._rooms.state_cache
        members = [m for m in sorted(state_cache.joined_members(room_id)) if m != joiner]
        members += [m for m in sorted(state_cache.invited_members(room_id)) if m != joiner]
        return members[:MAX_HEROES]

    def _require_restricted_join(self, room_id: str, user_id: str, authoriser: str) -> None:
        """Before we sign a join as its authorising server: the user satisfies the allow
        rules (or is invited), and `authoriser` is ours, joined and able to invite.

        400 `M_UNABLE_TO_AUTHORISE_JOIN` / 403 as `restricted_join_authoriser`;
        400 `M_UNABLE_TO_GRANT_JOIN` when the named user cannot authorise it.
        """
        rooms = self._rooms
        join_rule = rooms.timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
        if join_rule not in ("restricted", "knock_restricted"):
            return  # the auth rules ignore the key then; our signature changes nothing
        if rooms.state_cache.membership(room_id, user_id) not in ("join", "invite"):
            rooms.membership.restricted_join_authoriser(room_id, user_id)
        if not (
            rooms.state_cache.is_joined(authoriser, room_id)
            and rooms.timeline.power_levels(room_id).can_invite(authoriser)
        ):
            raise MatrixError(
                400,
                "M_UNABLE_TO_GRANT_JOIN",
                f"{authoriser} cannot authorise joining this room; try another server.",
            )

    async def send_knock(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> list[dict[str, Any]]:
        """Accept a signed knock (`PUT /send_knock`); the room's stripped state as PDUs of
        its version, the create event first (`knock_room_state`)."""
        room_version = self._resident_room_version(room_id)
        if not room_version.knock_join_rule:
            raise forbidden(f"Room version {room_version.identifier} does not support knocking.")
        event = self._membership_pdu(origin, room_id, event_id, pdu, "knock", room_version)
        await self._accept(origin, room_id, event, room_version)
        return room_state_pdus(self._rooms.timeline, room_id, room_version)

    async def send_leave(self, origin: str, room_id: str, event_id: str, pdu: Any) -> None:
        """Accept a signed leave (`PUT /send_leave`): a rejected invite, a retracted knock."""
        room_version = self._resident_room_version(room_id)
        event = self._membership_pdu(origin, room_id, event_id, pdu, "leave", room_version)
        await self._accept(origin, room_id, event, room_version)

    def _membership_pdu(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        pdu: Any,
        membership: str,
        room_version: RoomVersion,
    ) -> dict[str, Any]:
        """The checks the spec lists for `send_join`/`send_leave`, before any signature work."""
        if not isinstance(pdu, dict):
            raise invalid_param("The event must be a JSON object.")
        content = pdu.get("content")
        sender = pdu.get("sender")
        if pdu.get("type") != "m.room.member" or not isinstance(content, dict):
            raise invalid_param("The event is not an m.room.member event.")
        if content.get("membership") != membership:
            raise invalid_param(f"The event's membership is not {membership!r}.")
        if not isinstance(sender, str) or not is_on_server(sender, origin):
            raise invalid_param(f"The event's sender is not a user of {origin}.")
        if pdu.get("state_key") != sender:
            raise invalid_param("The event's state_key is not its sender.")
        if pdu.get("room_id") != room_id:
            raise invalid_param("The event is for another room.")
        try:
            validate_pdu_format(pdu, room_version)
            computed = compute_event_id(pdu, room_version)
        except InvalidEvent as error:
            raise MatrixError(400, "M_BAD_JSON", f"The event is malformed: {error}") from None
        if computed != event_id:
            raise invalid_param(f"The event's id is {computed}, not {event_id}.")
        return dict(pdu)

    async def _accept(
        self, origin: str, room_id: str, event: dict[str, Any], room_version: RoomVersion
    ) -> tuple[dict[str, Any], Mapping[tuple[str, str], str]]:
        """Check, persist and relay another server's membership event; (event, state before).

        Signing keys are fetched before the room's lock is taken. Sending
        the same event again answers as the first time did.
        """
        keys = await self._verify_keys(event, room_version)
        rooms = self._rooms
        async with rooms.locks.hold(room_id) as guard:
            checked = rooms.builder.check_foreign(event, room_version, keys)
            event_id = checked["event_id"]
            if rooms.timeline.status(event_id) is EventStatus.TIMELINE:
                stored = rooms.timeline.get_event(event_id) or checked
                return dict(stored), rooms.state.state_before_event(event_id) or {}
            state_before = self._persist_member(guard, origin, checked, room_version)
        return checked, state_before

    def _persist_member(
        self,
        guard: RoomGuard,
        origin: str,
        event: dict[str, Any],
        room_version: RoomVersion,
    ) -> Mapping[tuple[str, str], str]:
        """Persist the accepted event on top of its prev_events; the state before it."""
        rooms = self._rooms
        room_id = event["room_id"]
        event_id = event["event_id"]
        prev_ids = [p if isinstance(p, str) else p[0] for p in event["prev_events"]]
        before_hashes = [rooms.state.shortstatehash_after_event(p) for p in prev_ids]
        if not prev_ids or any(h is None for h in before_hashes):
            raise invalid_param("The event's prev_events are not events of this room here.")
        batch = rooms.timeline.batch()
        hashes = list(dict.fromkeys(h for h in before_hashes if h is not None))
        if len(hashes) == 1:
            before = hashes[0]
            state_before = rooms.state.state_ids(before)
        else:
            state_before = rooms.resolution.resolve(room_id, prev_ids)
            before = rooms.state.save_state(state_before, hashes[0], batch)
        for state, what in (
            (state_before, "the state before it"),
            (rooms.state.current_state_ids(room_id), "the room's current state"),
        ):
            rejection = check_auth(
                event,
                self._rooms.timeline.auth_events_in(event, room_version, state),
                room_version,
                is_signed_by=lambda signed, server: server in signers(signed),
            )
            if rejection is not None:
                raise forbidden(f"Not allowed by {what}: {rejection.reason} ({rejection.rule})")
        after = rooms.state.save_with_event(
            before, ("m.room.member", event["state_key"]), event_id, batch
        )
        others = tuple(e for e in rooms.timeline.forward_extremities(room_id) if e not in prev_ids)
        current = after
        if others:
            other_hashes = [rooms.state.shortstatehash_after_event(e) for e in others]
            current = rooms.resolution.save_resolved(
                room_id,
                [after, *(h for h in other_hashes if h is not None)],
                batch,
                pending=[event],
            )
        context = EventContext(
            EventStatus.TIMELINE,
            state_before=before,
            state_after=after,
            current_state=current,
            forward_extremities=(*others, event_id),
        )
        servers = {_server_of(m) for m in rooms.state_cache.joined_members(room_id)}
        self._relay.queue(batch, servers - {origin}, {"pdu": event_id})
        rooms.timeline.persist(guard, event, room_version, context, batch)
        return state_before

    # ---- third-party invites

    async def exchange_third_party_invite(self, origin: str, room_id: str, partial: Any) -> None:
        """Turn a redeemed third-party invite into the invite itself
        (`PUT /exchange_third_party_invite`).

        `partial` is the invited server's `m.room.member` event without its PDU
        fields: an invite of one of `origin`'s users, sent as the user of ours
        who sent the room's `m.room.third_party_invite`, carrying the identity
        server's `signed` object. The auth rules check it against that event
        (the token, the mxid, a signature by one of its public keys); the
        invite is then built and signed as that user's, signed by `origin`
        (`/invite`) and sent into the room. 400 `M_INVALID_PARAM` for a
        malformed event, 403 when no such invite stands or its keys did not
        sign it, 404 for a room we are not in.
        """
        content = self._third_party_invite_content(origin, room_id, partial)
        self._resident_room_version(room_id)
        sender, target = partial["sender"], partial["state_key"]
        token = content["third_party_invite"]["signed"]["token"]
        invite = self._rooms.timeline.state_event(room_id, "m.room.third_party_invite", token)
        if invite is None:
            raise forbidden(f"No third-party invite with token {token[:100]!r} stands here.")
        if invite["sender"] != sender:
            raise forbidden(f"{sender} did not send the third-party invite it redeems.")
        if self._rooms.state_cache.membership(room_id, target) == "join":
            raise forbidden(f"{target} is already in the room.")  # the rules would re-invite
        display_name = invite.get("content", {}).get("display_name")
        if "display_name" not in content["third_party_invite"] and isinstance(display_name, str):
            content["third_party_invite"]["display_name"] = display_name  # Synapse sends none
        remote = self._rooms.membership.remote
        if remote is None:
            raise forbidden("Federation is disabled on this server.")
        rooms = self._rooms
        async with rooms.locks.hold(room_id) as guard:
            template = rooms.builder.template(room_id, sender, "m.room.member", content, target)
            event = rooms.builder.authorise_and_sign(guard, template)
            signed = await remote.invite(event)
            rooms.builder.append_signed(guard, signed)

    def _third_party_invite_content(
        self, origin: str, room_id: str, partial: Any
    ) -> dict[str, Any]:
        """The checks on the partial event that need no room state; its content."""
        if not isinstance(partial, dict):
            raise invalid_param("The body must be a partial m.room.member event.")
        content = partial.get("content")
        sender = partial.get("sender")
        target = partial.get("state_key")
        if partial.get("type") != "m.room.member" or not isinstance(content, dict):
            raise invalid_param("The event is not an m.room.member event.")
        if partial.get("room_id") != room_id:
            raise invalid_param("The event is for another room.")
        if content.get("membership") != "invite":
            raise invalid_param("The event's membership is not 'invite'.")
        if not isinstance(sender, str) or not self._globals.is_ours(sender):
            raise invalid_param("The event's sender is not a user of this server.")
        if not isinstance(target, str) or not is_on_server(target, origin):
            raise invalid_param(f"The invited user is not a user of {origin}.")
        third_party_invite = content.get("third_party_invite")
        signed = third_party_invite.get("signed") if isinstance(third_party_invite, dict) else None
        if not isinstance(signed, dict) or not isinstance(signed.get("token"), str):
            raise invalid_param("`third_party_invite.signed` with a `token` is required.")
        if signed.get("mxid") != target:
            raise invalid_param("`third_party_invite.signed.mxid` is not the invited user.")
        if not isinstance(signed.get("signatures"), dict):
            raise invalid_param("`third_party_invite.signed` carries no signatures.")
        display_name = third_party_invite.get("display_name")
        kept: dict[str, Any] = {"signed": signed}
        if isinstance(display_name, str):
            kept["display_name"] = display_name
        return {"membership": "invite", "third_party_invite": kept}

    # ---- the room directory

    def directory(self, alias: str) -> tuple[str, list[str]]:
        """The room one of our aliases names, and the servers in it, ours first."""
        room_id = self._rooms.aliases.resolve(alias) if self._globals.is_ours(alias) else None
        if room_id is None:
            raise not_found(f"Room alias {alias} not found.")
        servers = {_server_of(m) for m in self._rooms.state_cache.joined_members(room_id)}
        servers.discard(self._globals.server_name)
        return room_id, [self._globals.server_name, *sorted(servers)]

    # ---- invites for our users

    async def invite(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        pdu: Any,
        room_version_id: str | None,
        invite_room_state: Any,
    ) -> dict[str, Any]:
        """Check and sign an invite of one of our users; keep it for their `/sync`.

        `room_version_id` is None for the v1 API (rooms v1 and v2 only; the
        version we know for the room, else "1"). Returns the event with our
        signature added, all else untouched. A room our admin blocked is 403.
        """
        if self._rooms.membership.is_blocked(room_id):
            raise forbidden(f"{room_id} was blocked by this server's admin.")
        room_version = self._invite_room_version(room_id, room_version_id)
        event = self._invite_pdu(origin, room_id, event_id, pdu, room_version)
        try:
            keys = await self._verify_keys(event, room_version)
            verify_event_signatures(event, room_version, keys)
        except (SignatureError, InvalidEvent) as error:
            raise invalid_param(f"The invite's signatures do not hold: {error}") from None
        if not check_content_hash(event):
            raise invalid_param("The invite's content hash does not match.")
        stripped = self._invite_state(room_id, room_version, invite_room_state, pdu)
        signed = self._countersign(event, room_version)
        target = event["state_key"]
        rooms = self._rooms
        async with rooms.locks.hold(room_id) as guard:
            if self._is_resident(room_id):
                # We are in the room: the invite comes as a PDU of the room too, and
                # is judged there like any other; here it is only signed.
                state = rooms.state.current_state_ids(room_id)
                rejection = check_auth(
                    event,
                    self._rooms.timeline.auth_events_in(event, room_version, state),
                    room_version,
                    is_signed_by=lambda signed_event, server: server in signers(signed_event),
                )
                if rejection is not None:
                    raise forbidden(f"{rejection.reason} ({rejection.rule})")
                return wire_pdu(signed, room_version)
            if rooms.timeline.status(event_id) is None:
                batch = rooms.timeline.batch()
                rooms.state_cache.update_membership(
                    batch, room_id, target, "invite", self._globals.next_count(), stripped
                )
                stored = {**signed, "event_id": event_id}
                context = EventContext(EventStatus.OUTLIER, state_before=None, state_after=None)
                rooms.timeline.persist(guard, stored, room_version, context, batch)
        self._notifier.notify([target])
        return wire_pdu(signed, room_version)

    def _invite_room_version(self, room_id: str, identifier: str | None) -> RoomVersion:
        if identifier is None:
            try:
                return self._rooms.timeline.room_version(room_id)
            except KeyError:
                return get_room_version("1")
        try:
            return get_room_version(identifier)
        except UnsupportedRoomVersion:
            raise incompatible_room_version(identifier) from None

    def _invite_pdu(
        self, origin: str, room_id: str, event_id: str, pdu: Any, room_version: RoomVersion
    ) -> dict[str, Any]:
        """The checks the spec lists for `/invite`."""
        if not isinstance(pdu, dict):
            raise invalid_param("The event must be a JSON object.")
        content = pdu.get("content")
        sender = pdu.get("sender")
        target = pdu.get("state_key")
        if pdu.get("type") != "m.room.member" or not isinstance(content, dict):
            raise invalid_param("The event is not an m.room.member event.")
        if content.get("membership") != "invite":
            raise invalid_param("The event's membership is not 'invite'.")
        if not isinstance(sender, str) or not is_on_server(sender, origin):
            raise invalid_param(f"The event's sender is not a user of {origin}.")
        if not isinstance(target, str) or not self._globals.is_ours(target):
            raise invalid_param("The invited user is not a user of this server.")
        if not self._users.exists(target):
            raise not_found(f"User {target} does not exist.")
        if pdu.get("room_id") != room_id:
            raise invalid_param("The event is for another room.")
        try:
            validate_pdu_format(pdu, room_version)
            computed = compute_event_id(pdu, room_version)
        except InvalidEvent as error:
            raise invalid_param(f"The event is malformed: {error}") from None
        if computed != event_id:
            raise invalid_param(f"The event's id is {computed}, not {event_id}.")
        return dict(pdu)

    def _invite_state(
        self, room_id: str, room_version: RoomVersion, invite_room_state: Any, pdu: dict
    ) -> list[dict[str, Any]]:
        """The stripped state the invited user sees: the room's, then the invite itself."""
        if invite_room_state is None:
            invite_room_state = (pdu.get("unsigned") or {}).get("invite_room_state") or []
        return stripped_room_state(
            room_id, room_version, invite_room_state, "invite_room_state"
        ) + (stripped_state([pdu]))

    # ---- signatures

    async def _verify_keys(
        self, event: Mapping[str, Any], room_version: RoomVersion
    ) -> dict[str, dict[str, VerifyKey]]:
        """The keys of the servers that must sign `event`, valid when it was made (v5+)."""
        try:
            servers = required_signature_servers(event, room_version)
        except InvalidEvent as error:
            raise invalid_param(f"The event is malformed: {error}") from None
        redacted = redact(event, room_version)
        wanted = {server: signed_key_ids(redacted, server) for server in servers}
        at_ts = event["origin_server_ts"] if room_version.enforce_key_validity else 0
        return await self._key_ring.keys_for_many(wanted, at_ts)

    def _countersign(self, event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
        """The event with this server's signature added over its redacted form."""
        redacted = redact(wire_pdu(event, room_version), room_version)
        globals_ = self._globals
        signed = add_signature(
            redacted, globals_.server_name, globals_.signing_key, signed_bytes(redacted)
        )
        return {**event, "signatures": signed["signatures"]}

    # ---- reading the room

    def _resident_room_version(self, room_id: str) -> RoomVersion:
        """The room's version if this server is in the room (else 404)."""
        try:
            room_version = self._rooms.timeline.room_version(room_id)
        except KeyError:
            raise not_found(f"This server does not know room {room_id}.") from None
        if not self._is_resident(room_id):
            raise not_found(f"This server is not in room {room_id}.")
        return room_version

    def _is_resident(self, room_id: str) -> bool:
        return any(
            self._globals.is_ours(m) for m in self._rooms.state_cache.joined_members(room_id)
        )

    def _require_origin_user(self, origin: str, user_id: str) -> None:
        if not is_on_server(user_id, origin):
            raise forbidden(f"{origin} may not make membership events for {user_id}.")

    def _pdus(self, event_ids: Iterable[str], room_version: RoomVersion) -> list[dict[str, Any]]:
        timeline = self._rooms.timeline
        return [
            wire_pdu(event, room_version)
            for event_id in event_ids
            if (event := timeline.get_event(event_id)) is not None
        ]

    def _auth_chain(self, events: Iterable[Mapping[str, Any]]) -> set[str]:
        """The ids of every event in the auth chains of `events` (not the events themselves)."""
        chain: set[str] = set()
        pending = [
            reference if isinstance(reference, str) else reference[0]
            for event in events
            for reference in event.get("auth_events", ())
        ]
        timeline = self._rooms.timeline
        while pending:
            event_id = pending.pop()
            if event_id in chain:
                continue
            chain.add(event_id)
            event = timeline.get_event(event_id)
            if event is not None:
                pending.extend(
                    r if isinstance(r, str) else r[0] for r in event.get("auth_events", ())
                )
        return chain
