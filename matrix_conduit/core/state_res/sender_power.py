"""The power level of an event's sender "when looking at their respective `auth_event`s".

Spec: `content/rooms/fragments/v2-state-res.md`, *reverse topological power ordering*,
comparison 1. The level is read from the power levels event the event cites, with the
room's create event supplying the creators: in rooms v1–v11 the creator has 100 while
there is no power levels event; in v12 (`content/rooms/v12.md`) creators have infinite
power. What a level means is `core/power_levels.py`'s business; this module only finds
the events to ask it about.
"""

from __future__ import annotations

from ..power_levels import InvalidPowerLevels, PowerLevel, PowerLevels, privileged_creators_of
from ..room_versions import RoomVersion
from .auth_dag import CREATE_KEY, POWER_LEVELS_KEY, AuthDag, Event


def sender_power_level(event_id: str, dag: AuthDag, room_version: RoomVersion) -> PowerLevel:
    """The sender's level per the event's auth events; 0 if the event is unavailable."""
    event = dag.event(event_id)
    if event is None:
        return 0
    power_levels = _cited(dag, event_id, POWER_LEVELS_KEY)
    if room_version.room_id_is_create_event_id:
        create = dag.create_event_named_by_room_id(event)
    else:
        create = _cited(dag, event_id, CREATE_KEY)
    try:
        levels = PowerLevels.from_state(power_levels, create, room_version)
    except InvalidPowerLevels:
        # Only reachable through an event that should have been rejected: it grants nothing.
        levels = PowerLevels(creators=privileged_creators_of(create, room_version))
    return levels.user_level(event["sender"])


def _cited(dag: AuthDag, event_id: str, key: tuple[str, str]) -> Event | None:
    auth_id = dag.auth_event_of_type(event_id, key)
    return None if auth_id is None else dag.event(auth_id)
