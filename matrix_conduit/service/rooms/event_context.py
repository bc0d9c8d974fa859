"""What storing one event changes in its room: the event context.

Spec: `content/server-server-api.md` ("Checks performed on receipt of a
PDU", "Rejection", "Soft failure", "Room State Resolution"). Our own events
and events from other servers meet at one persist path
(`Timeline.persist`). Whoever judged the event says, in an `EventContext`,
what the persist path must write; the path itself decides nothing:

- the builder, for our own events: the state before is the current state,
  the event goes on top of the room's forward extremities;
- the incoming-event handler, for other servers' events: the state before
  comes from the event's prev_events (resolved where they fork), the status
  from the auth checks, the new current state from resolution over the new
  forward extremities.

States are snapshots of the state compressor (shortstatehashes) that the
context's author saved in the batch the event is persisted with, so a
message costs no state copy at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EventStatus(Enum):
    """How a stored event takes part in its room."""

    TIMELINE = "timeline"
    """Accepted and in the room's timeline: clients see it, it can change the state."""
    OUTLIER = "outlier"
    """Known by id only (an auth event, an invite, a join's auth chain): its place in
    the room's graph and the state around it are not known."""
    SOFT_FAILED = "soft_failed"
    """Allowed by the state before it but not by the current state: kept for the
    graph, never shown to clients, never a forward extremity."""
    REJECTED = "rejected"
    """Failed the auth rules: kept only so that it is known to be bad; changes no
    state and reaches no client."""


@dataclass(frozen=True, slots=True)
class EventContext:
    """Everything the persist path writes about one event besides the event itself.

    `state_before` and `state_after` are shortstatehashes (None: not known, as
    for most outliers). `current_state` is the room's new current state, None
    to leave it as it is. `forward_extremities` is the room's new set of
    forward extremities, None to leave it as it is.
    """

    status: EventStatus
    state_before: int | None
    state_after: int | None
    current_state: int | None = None
    forward_extremities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.status is not EventStatus.TIMELINE and self.current_state is not None:
            raise ValueError(f"a {self.status.value} event cannot change the current state")
        if self.status is EventStatus.REJECTED and self.state_after != self.state_before:
            raise ValueError("a rejected event changes no state: state after must be before")
