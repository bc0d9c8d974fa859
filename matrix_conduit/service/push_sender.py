"""Push notifications: which events notify whom, and delivery to push gateways.

Spec: `content/client-server-api/modules/push.md` ("Server behaviour",
"Receiving notifications"), `content/push-gateway-api.md` and
`data/api/push-gateway/push_notifier.yaml` (`POST /_matrix/push/v1/notify`).

When an event is appended, each local member with pushers has the event run
through their push rules; a notifying event is queued for each of their HTTP
pushers, in the batch that stores the event (a `Timeline.appending` hook), so
neither a restart nor a kill -9 between the two loses a push. The queue is
in the database, so a restart resumes it. The sender
delivers in order per entry, retries failures with growing delays, drops an
entry the gateway refuses outright (4xx), and removes pushers the gateway
reports as rejected.

The same rules drive the unread counts of `/sync` (`PushRating`) and
`GET /notifications`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import trio

from ..config import Config
from ..core.ids import is_on_server
from ..core.push_rules import PushContext, is_highlight, should_notify, tweaks
from ..logs import FailureLog
from ..storage import Database, WriteBatch
from ..storage.kv import SEPARATOR, join_key, u64
from .notification_counts import Rating
from .outgoing_http import OutgoingHttp
from .push_rules import PushRules
from .pushers import Pushers
from .rooms import Rooms
from .rooms.event_context import EventContext
from .rooms.timeline import Event

log = logging.getLogger(__name__)

TREES = ("pushqueue",)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
MAX_ATTEMPTS = 12


class PushEvaluation:
    """Push rules applied to one event for one user, with the room facts they need."""

    def __init__(self, rooms: Rooms, push_rules: PushRules, displayname: Any) -> None:
        self._rooms = rooms
        self._push_rules = push_rules
        self._displayname = displayname

    def context(self, room_id: str, user_id: str, sender: str) -> PushContext:
        power_levels = self._rooms.timeline.power_levels(room_id)
        member = self._rooms.timeline.state_content(room_id, "m.room.member", user_id)
        return PushContext(
            user_id=user_id,
            member_count=self._rooms.state_cache.member_count(room_id, "joined"),
            display_name=member.get("displayname") or self._displayname(user_id),
            sender_power_level=power_levels.user_level(sender),
            notification_level=power_levels.notification_level,
        )

    def actions(self, event: Event, user_id: str) -> list[Any] | None:
        context = self.context(event["room_id"], user_id, event["sender"])
        return self._push_rules.actions_for(user_id, dict(event), context)


class PushRating:
    """Unread counts from push rules: what notifies counts, what highlights is red."""

    def __init__(self, evaluation: PushEvaluation) -> None:
        self._evaluation = evaluation

    def rate(self, event: Event, user_id: str) -> Rating:
        if event.get("sender") == user_id:
            return Rating(False, False)
        actions = self._evaluation.actions(event, user_id)
        return Rating(should_notify(actions), is_highlight(actions))


class PushSender:
    def __init__(
        self,
        config: Config,
        db: Database,
        rooms: Rooms,
        pushers: Pushers,
        evaluation: PushEvaluation,
        unread_count: Any,
        http: OutgoingHttp,
    ) -> None:
        self._config = config
        self._http = http
        self._failures = FailureLog(log, "push gateway")
        self._db = db
        self._rooms = rooms
        self._pushers = pushers
        self._evaluation = evaluation
        self._unread_count = unread_count
        """(user_id) -> total notification count, for the `counts.unread` field."""
        self._queue = db.tree("pushqueue")
        self._wake = trio.Event()
        self._attempts: dict[bytes, int] = {}

    # ---- queueing

    def queue_for(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """Queue a push for each pusher of each member this event notifies.

        A `Timeline.appending` hook: the entries go into the event's own
        batch, so a crash loses both or neither. Only timeline events (those
        with a position) notify.
        """
        if position is None:
            return
        room_id = event["room_id"]
        # Those with pushers first (a set intersection walks the smaller side): in a
        # room of 10,000 members with a few pushers, a message costs the few.
        recipients = set(
            self._pushers.users_with_pushers() & self._rooms.state_cache.joined_members(room_id)
        )
        invited = event.get("state_key") if event["type"] == "m.room.member" else None
        is_invite = event.get("content", {}).get("membership") == "invite"
        if is_invite and isinstance(invited, str) and self._pushers.has_pushers(invited):
            recipients.add(invited)
        recipients = {
            user_id
            for user_id in recipients
            if user_id != event["sender"] and is_on_server(user_id, self._config.server_name)
        }
        if not recipients:
            return
        queued = False
        for user_id in recipients:
            pushers = self._pushers.of_user(user_id)
            if not pushers:
                continue
            actions = self._evaluation.actions(event, user_id)
            if not should_notify(actions):
                continue
            for pusher in pushers:
                if pusher.get("kind") != "http":
                    continue
                key = join_key(u64(position), user_id, pusher["app_id"], pusher["pushkey"])
                entry = {"user_id": user_id, "event_id": event["event_id"], "actions": actions}
                batch.put(self._queue, key, json.dumps(entry).encode())
                queued = True
        if queued:
            batch.after_commit(self._wake_sender)

    def _wake_sender(self) -> None:
        self._wake.set()

    # ---- delivering

    async def run(self) -> None:
        """Deliver the queue, oldest first, until cancelled (a background task)."""
        while True:
            delay = await self._deliver_all()
            self._wake = trio.Event()
            with trio.move_on_after(delay if delay is not None else float("inf")):
                await self._wake.wait()

    async def _deliver_all(self) -> float | None:
        """One pass over the queue; the delay before retrying failures (None: all done)."""
        retry_in: float | None = None
        for key, value in list(self._queue.iter_prefix()):
            entry = json.loads(value)
            _, _, app_id, pushkey = key[8:].split(SEPARATOR)
            outcome = await self._deliver(entry, app_id.decode(), pushkey.decode())
            if outcome == "retry":
                attempts = self._attempts.get(key, 0) + 1
                if attempts < MAX_ATTEMPTS:
                    self._attempts[key] = attempts
                    delay = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
                    retry_in = delay if retry_in is None else min(retry_in, delay)
                    continue
                log.warning("giving up pushing %s after %d attempts", entry["event_id"], attempts)
            self._attempts.pop(key, None)
            self._queue.delete(key)
        return retry_in

    async def _deliver(self, entry: dict[str, Any], app_id: str, pushkey: str) -> str:
        """ "sent", "dropped" or "retry"."""
        user_id = entry["user_id"]
        pusher = next(
            (
                p
                for p in self._pushers.of_user(user_id)
                if p["app_id"] == app_id and p["pushkey"] == pushkey
            ),
            None,
        )
        event = self._rooms.timeline.get_event(entry["event_id"])
        if pusher is None or event is None:
            return "dropped"
        url = pusher["data"]["url"]
        try:
            response = await self._http.post_json(
                url, self._notification(event, user_id, pusher, entry)
            )
        except httpx.HTTPError as error:
            self._failures.failed(url, f"unreachable: {error}")
            return "retry"
        if response.status_code >= 500 or response.status_code == 429:
            self._failures.failed(url, f"answered {response.status_code}")
            return "retry"
        self._failures.recovered(url)
        if response.status_code >= 400:
            log.warning("push gateway %s refused a notification: %s", url, response.status_code)
            return "dropped"
        try:
            rejected = response.json().get("rejected") or []
        except ValueError:
            rejected = []
        if pushkey in rejected:
            self._pushers.remove(user_id, app_id, pushkey)
        return "sent"

    def _notification(
        self, event: Event, user_id: str, pusher: dict[str, Any], entry: dict[str, Any]
    ) -> dict[str, Any]:
        """The push gateway request body (spec: `push_notifier.yaml`)."""
        data = {key: value for key, value in pusher["data"].items() if key != "url"}
        device = {
            "app_id": pusher["app_id"],
            "pushkey": pusher["pushkey"],
            "data": data,
            "tweaks": tweaks(entry["actions"]),
        }
        notification: dict[str, Any] = {
            "event_id": event["event_id"],
            "room_id": event["room_id"],
            "counts": {"unread": self._unread_count(user_id)},
            "devices": [device],
            "prio": "high",
        }
        if data.get("format") != "event_id_only":
            timeline = self._rooms.timeline
            room_id = event["room_id"]
            notification.update(
                type=event["type"],
                sender=event["sender"],
                user_is_target=event.get("state_key") == user_id,
            )
            sender_name = timeline.state_content(room_id, "m.room.member", event["sender"]).get(
                "displayname"
            )
            if sender_name:
                notification["sender_display_name"] = sender_name
            room_name = timeline.state_content(room_id, "m.room.name").get("name")
            if room_name:
                notification["room_name"] = room_name
            if "content" in event:
                notification["content"] = event["content"]
        return {"notification": notification}
