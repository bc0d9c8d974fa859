"""Authorising events against a state being built up: the iterative auth checks.

Spec: `content/rooms/fragments/v2-state-res.md`, *iterative auth checks*: walk a sorted list
of state events, apply each to the state if the authorisation rules
(`content/server-server-api.md#authorisation-rules`, implemented once in `core/auth.py`)
allow it, ignore it otherwise. "If a `(event_type, state_key)` key that is required for
checking the authorisation rules is not present in the state, then the appropriate state
event from the event's `auth_events` is used if the auth event is not rejected."

Room v1's resolution (`content/rooms/v1.md`) checks events "for a room in state R" with
no fallback; it shares `auth_events_in_state` with the iterative checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..auth import auth_types_for_event, check_auth
from ..room_versions import RoomVersion
from .auth_dag import CREATE_KEY, AuthDag, Event, auth_event_ids, state_key_of
from .conflicts import StateKey

IsRejected = Callable[[str], bool]


def auth_events_in_state(
    event: Event,
    state: Mapping[StateKey, str],
    dag: AuthDag,
    room_version: RoomVersion,
    fallback: Mapping[StateKey, Event] | None = None,
) -> dict[StateKey, Event]:
    """The events the auth rules consult for `event`: from `state`, else from `fallback`.

    `core/auth.py` needs the room's create event in every room version; in v12 no event
    cites it and it is found through the room id instead.
    """
    auth_events: dict[StateKey, Event] = {}
    for key in _auth_types(event, room_version):
        state_event_id = state.get(key)
        state_event = None if state_event_id is None else dag.event(state_event_id)
        if state_event is not None:
            auth_events[key] = state_event
        elif fallback is not None and key in fallback:
            auth_events[key] = fallback[key]
    if room_version.room_id_is_create_event_id:
        create_event = dag.create_event_named_by_room_id(event)
        if create_event is not None:
            auth_events[CREATE_KEY] = create_event
    return auth_events


def is_allowed_in_state(
    event: Event, state: Mapping[StateKey, str], dag: AuthDag, room_version: RoomVersion
) -> bool:
    """Whether the authorisation rules allow `event` in a room whose state is `state`."""
    return _is_allowed(event, auth_events_in_state(event, state, dag, room_version), room_version)


def iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Iterable[str],
    initial_state: Mapping[StateKey, str],
    dag: AuthDag,
    is_rejected: IsRejected,
) -> dict[StateKey, str]:
    """`initial_state` with each allowed event of `event_ids` applied, in order.

    Events that cannot be fetched, or are not state events (only a forged auth chain
    could hold one), are passed over: they have no place in a state map.
    """
    state = dict(initial_state)
    for event_id in event_ids:
        event = dag.event(event_id)
        key = None if event is None else state_key_of(event)
        if event is None or key is None:
            continue
        fallback = _own_auth_events(event, dag, is_rejected)
        auth_events = auth_events_in_state(event, state, dag, room_version, fallback)
        if _is_allowed(event, auth_events, room_version):
            state[key] = event_id
    return state


def _is_allowed(
    event: Event, auth_events: Mapping[StateKey, Event], room_version: RoomVersion
) -> bool:
    """Whether the authorisation rules allow `event` given these auth events.

    The one signature the rules ask about (the server named by a restricted join's
    `join_authorised_via_users_server`) does not depend on state: it was verified when
    the event was accepted into the room, and an event failing it never reaches state
    resolution (spec: "no events rejected due to failure to auth against their auth
    chain should appear in the process").
    """
    return check_auth(event, auth_events, room_version, is_signed_by=_verified_on_receipt) is None


def _verified_on_receipt(event: Event, server_name: str) -> bool:
    return True


def _own_auth_events(event: Event, dag: AuthDag, is_rejected: IsRejected) -> dict[StateKey, Event]:
    """The event's own auth events that were not rejected, by state key."""
    own: dict[StateKey, Event] = {}
    for auth_id in auth_event_ids(event):
        auth_event = dag.event(auth_id)
        key = None if auth_event is None else state_key_of(auth_event)
        if key is not None and not is_rejected(auth_id):
            own[key] = auth_event
    return own


def _auth_types(event: Event, room_version: RoomVersion) -> list[StateKey]:
    return auth_types_for_event(
        event["type"], event["sender"], event.get("state_key"), event["content"], room_version
    )
