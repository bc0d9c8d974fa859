"""The authorization rules: may this event enter the room, given that state?

Every server in a room runs these rules on every event and must reach the same
answer, or the room splits. They are pure: the caller supplies the event, the
state to judge it against, and (through callbacks) what only it knows — which
events it rejected and whose signatures it verified.

Spec:
- room versions: `content/rooms/fragments/v1-auth-rules.md` (v1, v2),
  `v3-auth-rules.md` (v3–v5), the rules written out in `v6.md` and `v7.md`,
  `fragments/v8-auth-rules.md` (v8, v9), `v10.md`, `v11.md`, `v12.md`.
- server-server API: "Authorisation rules" and "Auth events selection"
  (`auth_types_for_event`), "Checks performed on receipt of a PDU" (definitions
  of required power level and the invite/kick/ban/redact levels), "Third-party
  invites" (verifying the invite).

Each rejection names the rule by the number the spec gives it in that room
version ("4.3.3 member/join: sender is banned" in v8, "5.2.3 ..." in v1), so a
log line can be checked against the right page of the spec.

Where the spec is silent this module follows Synapse and Ruma, whose shared
behaviour *is* the network's: a room without `m.room.join_rules` is treated as
`invite`, and power levels that cannot be read reject the event — a new power
levels event with any unreadable level, and any event past the aliases rule
when the state's power levels are unreadable (as Ruma, which reads them whole).
A non-boolean `m.federate` is read as Synapse reads it. Power level changes
compare the values written in the two contents, as the spec words it (and as
Synapse does): adding `ban: 0` where `ban` was absent is judged by the 0 alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matrix_conduit.core import power_levels as pl
from matrix_conduit.core.errors import (
    InvalidIdentifier,
    InvalidSigningKey,
    ProtocolError,
    SignatureError,
    preview,
)
from matrix_conduit.core.events import compute_event_id
from matrix_conduit.core.ids import is_valid_user_id, server_name_of
from matrix_conduit.core.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from matrix_conduit.core.signing import decode_verify_key, verify_json

StateKey = tuple[str, str]
"""`(event type, state key)`: how state is addressed."""

CREATE = "m.room.create"
MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
POWER_LEVELS = "m.room.power_levels"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
ALIASES = "m.room.aliases"
REDACTION = "m.room.redaction"

AUTHORISING_USER = "join_authorised_via_users_server"
"""The member content key naming who authorised a restricted join (v8+)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event failed the authorization rules.

    `rule` is the spec's number for the rule in the event's room version plus
    a stable name ("4.3.3 member/join: sender is banned"); `reason` says what
    was wrong with this particular event.
    """

    rule: str
    reason: str

    def __str__(self) -> str:
        return f"{self.rule} — {self.reason}"


class AuthError(Exception):
    """An event was not allowed; carries the `Rejection` saying which rule refused it."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


def check_auth(
    event: Mapping[str, Any],
    auth_events: Mapping[StateKey, Mapping[str, Any]],
    room_version: RoomVersion,
    *,
    is_signed_by: Callable[[Mapping[str, Any], str], bool] | None = None,
    cited_auth_events: Sequence[Mapping[str, Any]] | None = None,
    is_rejected: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Rejection | None:
    """Run the authorization rules of `room_version`: None if allowed, else the Rejection.

    `auth_events` is the state the event is judged against, by `(type, state_key)`:
    the event's own auth events, the state before it, the current state, or a
    partial state during state resolution. It must hold the room's create event
    in every version — in v12, where events do not cite it, the caller finds it
    by `room_id`. The create event's ID is its `event_id` key if it has one, else
    computed from it as a PDU.

    `cited_auth_events`, when given, is the event's `auth_events` as the list the
    event cites, for the rules that look at that list (duplicates, entries outside
    the auth events selection, rejected entries, other rooms' events). Pass it
    when checking an event against its own auth events; state resolution, which
    re-checks events against other states, leaves it out.

    `is_signed_by(event, server_name)` answers whether the event carries a valid
    signature from that server; only `join_authorised_via_users_server` asks, and
    without it such an event is rejected — so state resolution, which re-checks
    such joins, must pass one too. `is_rejected(event)` says whether the caller
    rejected an event it has; without it no event counts as rejected.
    """
    check = _Check(event, auth_events, room_version, is_signed_by)
    try:
        return _authorise(check, cited_auth_events, is_rejected or _never_rejected)
    except pl.InvalidPowerLevels as error:
        return check.reject(
            ("state", "power_levels"),
            f"the room's current m.room.power_levels cannot be read: {error}",
        )


def require_auth(
    event: Mapping[str, Any],
    auth_events: Mapping[StateKey, Mapping[str, Any]],
    room_version: RoomVersion,
    *,
    is_signed_by: Callable[[Mapping[str, Any], str], bool] | None = None,
    cited_auth_events: Sequence[Mapping[str, Any]] | None = None,
    is_rejected: Callable[[Mapping[str, Any]], bool] | None = None,
) -> None:
    """`check_auth`, raising `AuthError` instead of returning a Rejection."""
    rejection = check_auth(
        event,
        auth_events,
        room_version,
        is_signed_by=is_signed_by,
        cited_auth_events=cited_auth_events,
        is_rejected=is_rejected,
    )
    if rejection is not None:
        raise AuthError(rejection)


def auth_types_for_event(
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
    room_version: RoomVersion,
) -> list[StateKey]:
    """The state an event's `auth_events` are selected from (server-server "Auth events
    selection"), in order, without repeats.

    The create event has none. Before v12 every other event cites the create
    event; in v12 the `room_id` stands for it and it must not be cited.
    """
    if event_type == CREATE:
        return []
    selected: list[StateKey] = []
    if not room_version.room_id_is_create_event_id:
        selected.append((CREATE, ""))
    selected.append((POWER_LEVELS, ""))
    selected.append((MEMBER, sender))
    if event_type == MEMBER:
        membership = content.get("membership")
        if isinstance(state_key, str):
            selected.append((MEMBER, state_key))
        if membership in ("join", "invite", "knock"):
            selected.append((JOIN_RULES, ""))
        token = _third_party_invite_token(content)
        if membership == "invite" and token is not None:
            selected.append((THIRD_PARTY_INVITE, token))
        authoriser = content.get(AUTHORISING_USER)
        if (
            membership == "join"
            and room_version.restricted_join_rule
            and isinstance(authoriser, str)
        ):
            selected.append((MEMBER, authoriser))
    return list(dict.fromkeys(selected))


def check_cited_auth_events(
    event: Mapping[str, Any],
    cited_auth_events: Sequence[Mapping[str, Any]],
    room_version: RoomVersion,
    *,
    is_rejected: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Rejection | None:
    """The rules on the list of events an event cites as its `auth_events`.

    `check_auth` runs these (in their place among the rules) when given the
    list; this is the same check on its own, for a caller that has only the
    list. Rules 2.1–2.5 (v1–v11), 3.1–3.5 (v12).
    """
    check = _Check(event, {}, room_version, None)
    return _check_cited_auth_events(check, cited_auth_events, is_rejected or _never_rejected)


# --- the rules, in the spec's order ------------------------------------------------------


def _authorise(
    check: _Check,
    cited_auth_events: Sequence[Mapping[str, Any]] | None,
    is_rejected: Callable[[Mapping[str, Any]], bool],
) -> Rejection | None:
    event_type = check.event.get("type")
    if event_type == CREATE:
        return _check_create(check)
    if check.version.room_id_is_create_event_id:
        rejection = _check_room_id_names_create_event(check, is_rejected)
        if rejection is not None:
            return rejection
    if cited_auth_events is not None:
        rejection = _check_cited_auth_events(check, cited_auth_events, is_rejected)
        if rejection is not None:
            return rejection
    if check.create_event is None:
        return check.reject(
            ("auth_events", "no_create"), "there is no m.room.create event in the state"
        )
    if not _is_federated(check.create_event) and _domain(check.sender) != _domain(
        check.create_event.get("sender")
    ):
        return check.reject(
            ("federate",),
            f"the room is not federated and {check.sender} is not on the creator's server",
        )
    if event_type == ALIASES and check.version.special_case_aliases_auth:
        return _check_aliases(check)
    power_levels = check.power_levels  # unreadable power levels reject every rule from here on
    if event_type == MEMBER:
        return _check_member(check)
    if check.membership(check.sender) != "join":
        return check.reject(("sender_joined",), f"{check.sender} is not joined to the room")
    if event_type == THIRD_PARTY_INVITE:
        if power_levels.can_invite(check.sender):
            return None
        return check.reject(
            ("third_party_invite",),
            f"{check.sender} is below the invite level {power_levels.invite}",
        )
    is_state = "state_key" in check.event
    required = power_levels.event_level(str(event_type), is_state)
    if check.sender_level < required:
        return check.reject(
            ("required_power_level",),
            f"{event_type} needs power level {required}; {check.sender} has {check.sender_level}",
        )
    state_key = check.event.get("state_key")
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != check.sender:
        return check.reject(
            ("user_state_key",),
            f"the state key {state_key} is a user ID other than the sender {check.sender}",
        )
    if event_type == POWER_LEVELS:
        return _check_power_levels(check)
    if event_type == REDACTION and _has_redaction_rule(check.version):
        return _check_redaction(check)
    return None


def _check_create(check: _Check) -> Rejection | None:
    """Rule 1: the create event, judged on its own."""
    event, content = check.event, _content(check.event)
    if event.get("prev_events"):
        return check.reject(("create", "prev_events"), "a create event must have no prev_events")
    if check.version.room_id_is_create_event_id:
        if "room_id" in event:
            return check.reject(
                ("create", "room_id"), "the room ID is derived from the create event, not in it"
            )
    elif _domain(event.get("room_id")) is None or _domain(event.get("room_id")) != _domain(
        check.sender
    ):
        return check.reject(
            ("create", "room_id"),
            f"the room ID {preview(event.get('room_id'))} is not on the sender's server",
        )
    if "room_version" in content and not (
        isinstance(content["room_version"], str) and content["room_version"] in KNOWN_ROOM_VERSIONS
    ):
        return check.reject(
            ("create", "room_version"),
            f"room version {preview(content['room_version'])} is not one this server recognises",
        )
    if check.version.privileged_creators:
        additional = content.get("additional_creators", [])
        if not isinstance(additional, list) or not all(map(is_valid_user_id, additional)):
            return check.reject(
                ("create", "additional_creators"),
                "additional_creators must be a list of user IDs",
            )
    elif not check.version.implicit_room_creator and "creator" not in content:
        return check.reject(("create", "creator"), "the create event's content has no creator")
    return None


def _check_room_id_names_create_event(
    check: _Check, is_rejected: Callable[[Mapping[str, Any]], bool]
) -> Rejection | None:
    """Rule 2 (v12): the room ID is the create event's ID with `!` for `$`."""
    create = check.create_event
    room_id = check.event.get("room_id")
    create_id = None if create is None else _event_id(create, check.version)
    if not (isinstance(create_id, str) and create_id.startswith("$")) or room_id != (
        "!" + create_id[1:]
    ):
        return check.reject(
            ("room_id",), f"the room ID {preview(room_id)} does not name the room's create event"
        )
    if is_rejected(create):
        return check.reject(("room_id",), "the room's create event was rejected")
    return None


def _check_cited_auth_events(
    check: _Check,
    cited_auth_events: Sequence[Mapping[str, Any]],
    is_rejected: Callable[[Mapping[str, Any]], bool],
) -> Rejection | None:
    event = check.event
    keys = [(cited.get("type"), cited.get("state_key")) for cited in cited_auth_events]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            return check.reject(
                ("auth_events", "duplicates"), f"auth_events cites {key} more than once"
            )
    selection = auth_types_for_event(
        str(event.get("type")),
        check.sender,
        event.get("state_key"),
        _content(event),
        check.version,
    )
    for key in keys:
        if key not in selection:
            return check.reject(
                ("auth_events", "selection"),
                f"auth_events cites {key}, which the auth events selection does not choose",
            )
    for cited in cited_auth_events:
        if is_rejected(cited):
            return check.reject(
                ("auth_events", "rejected"),
                f"auth_events cites {_describe(cited)}, which was rejected",
            )
    if not check.version.room_id_is_create_event_id and (CREATE, "") not in keys:
        return check.reject(("auth_events", "no_create"), "auth_events does not cite m.room.create")
    for cited in cited_auth_events:
        if cited.get("room_id") != event.get("room_id"):
            return check.reject(
                ("auth_events", "room_id"),
                f"auth_events cites an event of room {preview(cited.get('room_id'))}",
            )
    return None


def _check_aliases(check: _Check) -> Rejection | None:
    """Rule 4 (v1–v5): a server sets its own `m.room.aliases`, member or not."""
    state_key = check.event.get("state_key")
    if state_key is None:
        return check.reject(("aliases", "no_state_key"), "m.room.aliases needs a state key")
    if _domain(check.sender) != state_key:
        return check.reject(
            ("aliases", "domain"),
            f"{check.sender} may only set the aliases of its own server, not {preview(state_key)}",
        )
    return None


def _check_member(check: _Check) -> Rejection | None:
    """The `m.room.member` rules (5 in v1–v5 and v12, 4 in v6–v11)."""
    content = _content(check.event)
    target = check.event.get("state_key")
    if not isinstance(target, str) or "membership" not in content:
        return check.reject(
            ("member", "incomplete"), "a member event needs a state_key and content.membership"
        )
    if check.version.restricted_join_rule and AUTHORISING_USER in content:
        authoriser_server = _domain(content[AUTHORISING_USER])
        if (
            authoriser_server is None
            or check.is_signed_by is None
            or not check.is_signed_by(check.event, authoriser_server)
        ):
            return check.reject(
                ("member", "authoriser_signature"),
                f"the event is not signed by the server of {preview(content[AUTHORISING_USER])}, "
                f"named in {AUTHORISING_USER}",
            )
    membership = content["membership"]
    if membership == "join":
        return _check_join(check, target)
    if membership == "invite":
        return _check_invite(check, target)
    if membership == "leave":
        return _check_leave(check, target)
    if membership == "ban":
        return _check_ban(check, target)
    if membership == "knock" and check.version.knock_join_rule:
        return _check_knock(check, target)
    return check.reject(
        ("member", "unknown"),
        f"membership {preview(membership)} is unknown in room version {check.version.identifier}",
    )


def _check_join(check: _Check, target: str) -> Rejection | None:
    if _is_creators_first_join(check, target):
        return None
    if check.sender != target:
        return check.reject(
            ("member", "join", "sender_not_target"),
            f"{check.sender} cannot join {target} to the room",
        )
    membership = check.membership(target)
    if membership == "ban":
        return check.reject(("member", "join", "banned"), f"{target} is banned from the room")
    join_rule = check.join_rule
    if join_rule in check.invite_only_join_rules and membership in ("invite", "join"):
        return None
    if join_rule in check.restricted_join_rules:
        return _check_restricted_join(check, membership)
    if join_rule == "public":
        return None
    return check.reject(
        ("member", "join", "otherwise"),
        f"the join rule is {preview(join_rule)}; {target}'s membership is {membership or 'none'}",
    )


def _is_creators_first_join(check: _Check, target: str) -> bool:
    """Rule "join.1": the creator joins right after the create event."""
    create = check.create_event
    prev_events = check.event.get("prev_events")
    if create is None or not isinstance(prev_events, list) or len(prev_events) != 1:
        return False
    prev_event_id = prev_events[0]
    if check.version.event_format is EventFormat.V1 and isinstance(prev_event_id, list):
        prev_event_id = prev_event_id[0] if prev_event_id else None
    return (
        prev_event_id is not None
        and prev_event_id == _event_id(create, check.version)
        and target == pl.creator_of(create, check.version)
    )


def _check_restricted_join(check: _Check, membership: str | None) -> Rejection | None:
    """Rule "join.5" (v8+): restricted and knock_restricted rooms."""
    if membership in ("join", "invite"):
        return None
    authoriser = _content(check.event).get(AUTHORISING_USER)
    if not isinstance(authoriser, str):
        return check.reject(
            ("member", "join", "restricted", "authoriser"),
            f"{check.sender} is not invited and no member authorised the join",
        )
    if check.membership(authoriser) != "join":
        return check.reject(
            ("member", "join", "restricted", "authoriser"),
            f"{authoriser}, who authorised the join, is not joined to the room",
        )
    if not check.power_levels.can_invite(authoriser):
        return check.reject(
            ("member", "join", "restricted", "authoriser"),
            f"{authoriser}, who authorised the join, is below the invite level",
        )
    return None


def _check_invite(check: _Check, target: str) -> Rejection | None:
    if "third_party_invite" in _content(check.event):
        return _check_third_party_invite(check, target)
    if check.membership(check.sender) != "join":
        return check.reject(
            ("member", "invite", "sender_not_joined"), f"{check.sender} is not joined to the room"
        )
    if check.membership(target) in ("join", "ban"):
        return check.reject(
            ("member", "invite", "target_joined_or_banned"),
            f"{target} is already {'joined' if check.membership(target) == 'join' else 'banned'}",
        )
    if check.power_levels.can_invite(check.sender):
        return None
    return check.reject(
        ("member", "invite", "otherwise"),
        f"{check.sender} is below the invite level {check.power_levels.invite}",
    )


def _check_third_party_invite(check: _Check, target: str) -> Rejection | None:
    """Rule "invite.1": an invite that redeems an `m.room.third_party_invite`."""
    rule = ("member", "invite", "third_party")
    if check.membership(target) == "ban":
        return check.reject((*rule, "target_banned"), f"{target} is banned from the room")
    third_party_invite = _content(check.event)["third_party_invite"]
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        return check.reject((*rule, "no_signed"), "third_party_invite has no signed object")
    if "mxid" not in signed or "token" not in signed:
        return check.reject(
            (*rule, "signed_incomplete"), "third_party_invite.signed needs mxid and token"
        )
    if signed["mxid"] != target:
        return check.reject(
            (*rule, "mxid_mismatch"),
            f"the invite was signed for {preview(signed['mxid'])}, not {target}",
        )
    token = signed["token"]
    invite = check.auth_events.get((THIRD_PARTY_INVITE, token)) if isinstance(token, str) else None
    if invite is None:
        return check.reject(
            (*rule, "no_invite_event"),
            f"there is no m.room.third_party_invite for {preview(token)}",
        )
    if invite.get("sender") != check.sender:
        return check.reject(
            (*rule, "sender_mismatch"),
            f"{check.sender} did not send the m.room.third_party_invite it redeems",
        )
    if _signed_by_any_public_key(signed, _content(invite)):
        return None
    return check.reject(
        (*rule, "otherwise"), "no signature in signed matches a public key of the invite"
    )


def _check_leave(check: _Check, target: str) -> Rejection | None:
    target_membership = check.membership(target)
    if check.sender == target:
        if target_membership in check.leavable_memberships:
            return None
        return check.reject(
            ("member", "leave", "self"),
            f"{target} cannot leave from membership {target_membership or 'none'}",
        )
    if check.membership(check.sender) != "join":
        return check.reject(
            ("member", "leave", "sender_not_joined"), f"{check.sender} is not joined to the room"
        )
    power_levels = check.power_levels
    if target_membership == "ban" and check.sender_level < power_levels.ban:
        return check.reject(
            ("member", "leave", "unban"),
            f"{check.sender} is below the ban level {power_levels.ban} and cannot unban",
        )
    if power_levels.can_kick(check.sender, target):
        return None
    return check.reject(
        ("member", "leave", "otherwise"),
        f"{check.sender} needs the kick level {power_levels.kick} and more power than {target}",
    )


def _check_ban(check: _Check, target: str) -> Rejection | None:
    if check.membership(check.sender) != "join":
        return check.reject(
            ("member", "ban", "sender_not_joined"), f"{check.sender} is not joined to the room"
        )
    if check.power_levels.can_ban(check.sender, target):
        return None
    return check.reject(
        ("member", "ban", "otherwise"),
        f"{check.sender} needs the ban level {check.power_levels.ban} and more power than {target}",
    )


def _check_knock(check: _Check, target: str) -> Rejection | None:
    """Rule "knock" (v7+)."""
    if check.join_rule not in check.knockable_join_rules:
        return check.reject(
            ("member", "knock", "join_rule"),
            f"the join rule {preview(check.join_rule)} forbids knocking",
        )
    if check.sender != target:
        return check.reject(
            ("member", "knock", "sender_not_target"), f"{check.sender} cannot knock for {target}"
        )
    membership = check.membership(target)
    if membership not in ("ban", "invite", "join"):
        return None
    return check.reject(
        ("member", "knock", "otherwise"), f"{target} cannot knock while {membership}"
    )


def _check_power_levels(check: _Check) -> Rejection | None:
    """The `m.room.power_levels` rules (10 in v1–v5 and v12, 9 in v6–v11)."""
    try:
        new = pl.PowerLevels.from_content(
            _content(check.event), check.version, creators=check.creators
        )
    except pl.InvalidPowerLevels as error:
        return check.reject(_MALFORMED_POWER_LEVELS_RULES[error.part], str(error))
    listed_creators = sorted(check.creators & new.users.keys())
    if listed_creators:
        return check.reject(
            ("power_levels", "creators_in_users"),
            f"room creators cannot be listed in users: {', '.join(listed_creators)}",
        )
    if check.auth_events.get((POWER_LEVELS, "")) is None:
        return None
    current, sender_level = check.power_levels, check.sender_level
    for name in pl.PROPERTY_DEFAULTS:
        old, new_value = current.properties.get(name), new.properties.get(name)
        if old == new_value:
            continue
        if old is not None and old > sender_level:
            return check.reject(
                ("power_levels", "properties", "current"),
                f"{name} is {old}, above {check.sender}'s level {sender_level}",
            )
        if new_value is not None and new_value > sender_level:
            return check.reject(
                ("power_levels", "properties", "new"),
                f"{name} would be {new_value}, above {check.sender}'s level {sender_level}",
            )
    level_maps = ["events"]
    if check.version.limit_notifications_power_levels:
        level_maps.append("notifications")
    for name in level_maps:
        for key, (old, _) in _changes(getattr(current, name), getattr(new, name)):
            if old is not None and old > sender_level:
                return check.reject(
                    ("power_levels", "level_maps_changed", "current"),
                    f"{name}[{preview(key)}] is {old}, above {check.sender}'s level {sender_level}",
                )
    for name in level_maps:
        for key, (_, new_value) in _changes(getattr(current, name), getattr(new, name)):
            if new_value is not None and new_value > sender_level:
                return check.reject(
                    ("power_levels", "level_maps_added", "new"),
                    f"{name}[{preview(key)}] would be {new_value}, "
                    f"above {check.sender}'s level {sender_level}",
                )
    for user_id, (old, _) in _changes(current.users, new.users):
        if user_id != check.sender and old is not None and old >= sender_level:
            return check.reject(
                ("power_levels", "users_changed", "current"),
                f"{user_id} has level {old}, not below {check.sender}'s level {sender_level}",
            )
    for user_id, (_, new_value) in _changes(current.users, new.users):
        if new_value is not None and new_value > sender_level:
            return check.reject(
                ("power_levels", "users_added", "new"),
                f"{user_id} would get level {new_value}, "
                f"above {check.sender}'s level {sender_level}",
            )
    return None


def _check_redaction(check: _Check) -> Rejection | None:
    """Rule 11 (v1, v2): the redact level, or redacting an event of one's own server."""
    if check.sender_level >= check.power_levels.redact:
        return None
    redacts = check.event.get("redacts")
    if _domain(redacts) is not None and _domain(redacts) == _domain(check.event.get("event_id")):
        return None
    return check.reject(
        ("redaction", "otherwise"),
        f"{check.sender} is below the redact level {check.power_levels.redact} "
        f"and {preview(redacts)} is another server's event",
    )


_MALFORMED_POWER_LEVELS_RULES: Mapping[pl.MalformedPart, tuple[str, ...]] = {
    pl.MalformedPart.PROPERTIES: ("power_levels", "properties_are_levels"),
    pl.MalformedPart.LEVEL_MAPS: ("power_levels", "level_maps_are_levels"),
    pl.MalformedPart.USERS: ("power_levels", "users_are_levels"),
}
"""The rule a malformed part of a new power levels content breaks. Before v10 only
`users` has a numbered rule; the others break the stringy power levels format."""


# --- what the rules consult ----------------------------------------------------------------


class _Check:
    """One event being checked: the event, the state, and what the rules derive from them."""

    def __init__(
        self,
        event: Mapping[str, Any],
        auth_events: Mapping[StateKey, Mapping[str, Any]],
        room_version: RoomVersion,
        is_signed_by: Callable[[Mapping[str, Any], str], bool] | None,
    ) -> None:
        self.event = event
        self.auth_events = auth_events
        self.version = room_version
        self.is_signed_by = is_signed_by
        sender = event.get("sender")
        self.sender = sender if isinstance(sender, str) else ""
        knock = {"knock"} if room_version.knock_join_rule else set()
        restricted = {"restricted"} if room_version.restricted_join_rule else set()
        knock_restricted = (
            {"knock_restricted"} if room_version.knock_restricted_join_rule else set()
        )
        self.invite_only_join_rules = {"invite", *knock}
        self.restricted_join_rules = restricted | knock_restricted
        self.knockable_join_rules = {"knock", *knock_restricted}
        self.leavable_memberships = {"invite", "join", *knock}

    def reject(self, path: tuple[str, ...], reason: str) -> Rejection:
        return Rejection(_rule_name(path, self.version), reason)

    @functools.cached_property
    def create_event(self) -> Mapping[str, Any] | None:
        return self.auth_events.get((CREATE, ""))

    @functools.cached_property
    def creators(self) -> frozenset[str]:
        return pl.privileged_creators_of(self.create_event, self.version)

    @functools.cached_property
    def power_levels(self) -> pl.PowerLevels:
        """The power levels in the state; `InvalidPowerLevels` if they cannot be read."""
        return pl.PowerLevels.from_state(
            self.auth_events.get((POWER_LEVELS, "")), self.create_event, self.version
        )

    @functools.cached_property
    def sender_level(self) -> pl.PowerLevel:
        return self.power_levels.user_level(self.sender)

    @functools.cached_property
    def join_rule(self) -> str | None:
        """The room's join rule; `invite` when the state has none (as Synapse and Ruma),
        None when it is not a string (no rule then admits anyone)."""
        join_rules = self.auth_events.get((JOIN_RULES, ""))
        join_rule = (
            "invite" if join_rules is None else _content(join_rules).get("join_rule", "invite")
        )
        return join_rule if isinstance(join_rule, str) else None

    def membership(self, user_id: object) -> str | None:
        """The user's membership in the state; None without a (readable) member event."""
        if not isinstance(user_id, str):
            return None
        member = self.auth_events.get((MEMBER, user_id))
        membership = None if member is None else _content(member).get("membership")
        return membership if isinstance(membership, str) else None


def _content(event: Mapping[str, Any]) -> Mapping[str, Any]:
    content = event.get("content")
    return content if isinstance(content, Mapping) else {}


def _domain(identifier: object) -> str | None:
    """The server name in a user/room/event ID, or None if it has none."""
    if not isinstance(identifier, str):
        return None
    try:
        return server_name_of(identifier)
    except InvalidIdentifier:
        return None


def _event_id(event: Mapping[str, Any], room_version: RoomVersion) -> str | None:
    """The event's ID: its `event_id` if it carries one (as stored events do), else
    computed from the PDU (rooms v3+); None if neither works."""
    event_id = event.get("event_id")
    if isinstance(event_id, str):
        return event_id
    try:
        return compute_event_id(event, room_version)
    except ProtocolError:
        return None


def _describe(event: Mapping[str, Any]) -> str:
    if isinstance(event.get("event_id"), str):
        return event["event_id"]
    return f"{event.get('type')} {preview(event.get('state_key'))}"


def _is_federated(create_event: Mapping[str, Any]) -> bool:
    """`m.federate`, default true. A non-boolean counts by JSON truthiness (0, "", null
    mean false) as in Synapse, which created most rooms that carry one."""
    return bool(_content(create_event).get("m.federate", True))


def _never_rejected(_event: Mapping[str, Any]) -> bool:
    return False


def _has_redaction_rule(room_version: RoomVersion) -> bool:
    """Rooms v1 and v2 authorise redactions by event ID domain; their event IDs have one."""
    return room_version.event_format is EventFormat.V1


def _third_party_invite_token(content: Mapping[str, Any]) -> str | None:
    third_party_invite = content.get("third_party_invite")
    if not isinstance(third_party_invite, Mapping):
        return None
    signed = third_party_invite.get("signed")
    token = signed.get("token") if isinstance(signed, Mapping) else None
    return token if isinstance(token, str) else None


def _changes(
    old: Mapping[str, int], new: Mapping[str, int]
) -> list[tuple[str, tuple[int | None, int | None]]]:
    """Entries added, changed or removed between two level maps: key, (old, new)."""
    return [
        (key, (old.get(key), new.get(key)))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _signed_by_any_public_key(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    """Whether any ed25519 signature in `signed` verifies under any of the invite's keys.

    The keys are the identity server's, published in the room by the
    `m.room.third_party_invite` event (`public_key` and `public_keys[].public_key`,
    unpadded base64, standard or URL-safe), so no key lookup is needed.
    """
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    for public_key in _public_keys(invite_content):
        for server_name, key_signatures in signatures.items():
            if not isinstance(key_signatures, Mapping):
                continue
            for key_id in key_signatures:
                try:
                    verify_json(signed, server_name, key_id, decode_verify_key(key_id, public_key))
                except (InvalidSigningKey, SignatureError):
                    continue
                return True
    return False


def _public_keys(invite_content: Mapping[str, Any]) -> list[str]:
    """The ed25519 public keys of an `m.room.third_party_invite`, still in base64."""
    encoded = [invite_content.get("public_key")]
    listed = invite_content.get("public_keys")
    if isinstance(listed, list):
        encoded += [entry.get("public_key") for entry in listed if isinstance(entry, Mapping)]
    return [key for key in encoded if isinstance(key, str)]


# --- rule numbers --------------------------------------------------------------------------

_RULE_TITLES: Mapping[tuple[str, ...], str] = {
    ("create", "prev_events"): "create: has prev_events",
    ("create", "room_id"): "create: room_id does not fit the room version",
    ("create", "room_version"): "create: unknown room_version",
    ("create", "creator"): "create: no creator",
    ("create", "additional_creators"): "create: additional_creators are not user IDs",
    ("room_id",): "room_id: not the create event's ID",
    ("auth_events", "duplicates"): "auth_events: duplicate entries",
    ("auth_events", "selection"): "auth_events: entry not in the auth events selection",
    ("auth_events", "rejected"): "auth_events: entry was rejected",
    ("auth_events", "no_create"): "auth_events: no m.room.create",
    ("auth_events", "room_id"): "auth_events: entry from another room",
    ("federate",): "m.federate: sender is on another server",
    ("aliases", "no_state_key"): "aliases: no state_key",
    ("aliases", "domain"): "aliases: state_key is not the sender's server",
    ("member", "incomplete"): "member: no state_key or membership",
    ("member", "authoriser_signature"): "member: not signed by the authorising server",
    ("member", "join", "sender_not_target"): "member/join: sender is not the state_key",
    ("member", "join", "banned"): "member/join: sender is banned",
    ("member", "join", "restricted", "authoriser"): (
        "member/join/restricted: no joined authoriser with invite power"
    ),
    ("member", "join", "otherwise"): "member/join: join rule does not allow it",
    ("member", "invite", "third_party", "target_banned"): (
        "member/invite/third_party: target is banned"
    ),
    ("member", "invite", "third_party", "no_signed"): "member/invite/third_party: no signed",
    ("member", "invite", "third_party", "signed_incomplete"): (
        "member/invite/third_party: signed lacks mxid or token"
    ),
    ("member", "invite", "third_party", "mxid_mismatch"): (
        "member/invite/third_party: mxid is not the state_key"
    ),
    ("member", "invite", "third_party", "no_invite_event"): (
        "member/invite/third_party: no m.room.third_party_invite for the token"
    ),
    ("member", "invite", "third_party", "sender_mismatch"): (
        "member/invite/third_party: sender did not send the third-party invite"
    ),
    ("member", "invite", "third_party", "otherwise"): (
        "member/invite/third_party: no valid signature"
    ),
    ("member", "invite", "sender_not_joined"): "member/invite: sender is not joined",
    ("member", "invite", "target_joined_or_banned"): "member/invite: target is joined or banned",
    ("member", "invite", "otherwise"): "member/invite: sender is below the invite level",
    ("member", "leave", "self"): "member/leave: cannot leave from this membership",
    ("member", "leave", "sender_not_joined"): "member/leave: sender is not joined",
    ("member", "leave", "unban"): "member/leave: unban needs the ban level",
    ("member", "leave", "otherwise"): "member/leave: sender cannot kick the target",
    ("member", "ban", "sender_not_joined"): "member/ban: sender is not joined",
    ("member", "ban", "otherwise"): "member/ban: sender cannot ban the target",
    ("member", "knock", "join_rule"): "member/knock: join rule does not allow knocking",
    ("member", "knock", "sender_not_target"): "member/knock: sender is not the state_key",
    ("member", "knock", "otherwise"): "member/knock: already banned, invited or joined",
    ("member", "unknown"): "member: unknown membership",
    ("sender_joined",): "sender is not joined",
    ("third_party_invite",): "third_party_invite: sender is below the invite level",
    ("required_power_level",): "sender is below the event's required power level",
    ("user_state_key",): "state_key is another user's ID",
    ("power_levels", "properties_are_levels"): "power_levels: a property is not a power level",
    ("power_levels", "level_maps_are_levels"): (
        "power_levels: events or notifications are not power levels"
    ),
    ("power_levels", "users_are_levels"): "power_levels: users are not user IDs with levels",
    ("power_levels", "creators_in_users"): "power_levels: users lists a room creator",
    ("power_levels", "properties", "current"): (
        "power_levels: changes a property now above the sender"
    ),
    ("power_levels", "properties", "new"): "power_levels: sets a property above the sender",
    ("power_levels", "level_maps_changed", "current"): (
        "power_levels: changes an events/notifications level now above the sender"
    ),
    ("power_levels", "level_maps_added", "new"): (
        "power_levels: sets an events/notifications level above the sender"
    ),
    ("power_levels", "users_changed", "current"): (
        "power_levels: changes a user at or above the sender's level"
    ),
    ("power_levels", "users_added", "new"): "power_levels: gives a user more than the sender",
    ("redaction", "otherwise"): "redaction: below the redact level, other server's event",
    ("state", "power_levels"): "state: m.room.power_levels cannot be read",
}
"""A stable name for every way an event can be rejected, by rule path."""


def _rule_name(path: tuple[str, ...], room_version: RoomVersion) -> str:
    """The spec's number for the rule in this room version, then its stable name.

    A path outside the numbered rules (the stringy power levels format, unreadable
    power levels in the state) gets its name alone.
    """
    number = _rule_numbers(room_version).get(path)
    title = _RULE_TITLES[path]
    return title if number is None else f"{number} {title}"


_Rules = list[tuple[str, "_Rules"] | str | None]
"""Rules in spec order: a name, a name with sub-rules, or None for a number the
version skips (v12 drops rule 3.4 without renumbering 3.5)."""


@functools.cache
def _rule_numbers(room_version: RoomVersion) -> Mapping[tuple[str, ...], str]:
    """Every rule path of `room_version` and its number ("member", "join", "banned") → 4.3.3."""
    numbers: dict[tuple[str, ...], str] = {}

    def walk(rules: _Rules, parent_path: tuple[str, ...], parent_number: str) -> None:
        for index, rule in enumerate(rules, start=1):
            if rule is None:
                continue
            name, children = (rule, []) if isinstance(rule, str) else rule
            path, number = (*parent_path, name), f"{parent_number}{index}"
            numbers[path] = number
            walk(children, path, f"{number}.")

    walk(_rule_tree(room_version), (), "")
    return numbers


def _rule_tree(version: RoomVersion) -> _Rules:
    """The outline of the rules of `version`, transcribed from its spec page."""

    def when(condition: bool, *rules: tuple[str, _Rules] | str) -> list[tuple[str, _Rules] | str]:
        return list(rules) if condition else []

    create: _Rules = [
        "prev_events",
        "room_id",
        "room_version",
        *when(version.privileged_creators, "additional_creators"),
        *when(not version.implicit_room_creator, "creator"),
        "allow",
    ]
    auth_events: _Rules = [
        "duplicates",
        "selection",
        "rejected",
        None if version.room_id_is_create_event_id else "no_create",
        "room_id",
    ]
    restricted: _Rules = ["already_member", "authoriser", "allow"]
    join: _Rules = [
        "creator",
        "sender_not_target",
        "banned",
        "invite_or_knock",
        *when(version.restricted_join_rule, ("restricted", restricted)),
        "public",
        "otherwise",
    ]
    third_party: _Rules = [
        "target_banned",
        "no_signed",
        "signed_incomplete",
        "mxid_mismatch",
        "no_invite_event",
        "sender_mismatch",
        "signature",
        "otherwise",
    ]
    invite: _Rules = [
        ("third_party", third_party),
        "sender_not_joined",
        "target_joined_or_banned",
        "allow",
        "otherwise",
    ]
    member: _Rules = [
        "incomplete",
        *when(version.restricted_join_rule, "authoriser_signature"),
        ("join", join),
        ("invite", invite),
        ("leave", ["self", "sender_not_joined", "unban", "kick", "otherwise"]),
        ("ban", ["sender_not_joined", "allow", "otherwise"]),
        *when(
            version.knock_join_rule,
            ("knock", ["join_rule", "sender_not_target", "allow", "otherwise"]),
        ),
        "unknown",
    ]
    power_levels: _Rules = [
        *when(version.integer_power_levels, "properties_are_levels", "level_maps_are_levels"),
        "users_are_levels",
        *when(version.privileged_creators, "creators_in_users"),
        "no_previous",
        ("properties", ["current", "new"]),
        ("level_maps_changed", ["current"]),
        ("level_maps_added", ["new"]),
        ("users_changed", ["current"]),
        ("users_added", ["new"]),
        "allow",
    ]
    return [
        ("create", create),
        *when(version.room_id_is_create_event_id, "room_id"),
        ("auth_events", auth_events),
        "federate",
        *when(version.special_case_aliases_auth, ("aliases", ["no_state_key", "domain", "allow"])),
        ("member", member),
        "sender_joined",
        "third_party_invite",
        "required_power_level",
        "user_state_key",
        ("power_levels", power_levels),
        *when(
            _has_redaction_rule(version),
            ("redaction", ["redact_level", "same_domain", "otherwise"]),
        ),
        "allow",
    ]
