"""Reports of events, rooms and users to the server's admins.

Spec: `content/client-server-api/modules/reporting_content.md` and
`data/api/client-server/report_content.yaml`. A report is kept in the
database for the admins and logged at warning level so it reaches the
journal. To avoid telling reporters what exists, a report about something
the reporter cannot see answers 404 like one about nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..errors import not_found
from ..storage import Database
from ..storage.kv import u64
from .globals import Globals
from .rooms import Rooms

log = logging.getLogger(__name__)

TREES = ("reportid_report",)

MAX_REASON = 1000


class Reports:
    def __init__(self, db: Database, globals_: Globals, rooms: Rooms, user_exists: Any) -> None:
        self._globals = globals_
        self._rooms = rooms
        self._user_exists = user_exists
        self._reports = db.tree("reportid_report")

    def _store(self, reporter: str, about: dict[str, Any], reason: str) -> None:
        report = {
            "reporter": reporter,
            "reason": reason[:MAX_REASON],
            "ts": int(time.time() * 1000),
            **about,
        }
        self._reports.put(u64(self._globals.next_count()), json.dumps(report).encode())
        log.warning("report from %s about %s: %s", reporter, about, report["reason"])

    def report_event(self, reporter: str, room_id: str, event_id: str, reason: str) -> None:
        event = self._rooms.timeline.get_event(event_id)
        if (
            event is None
            or event.get("room_id") != room_id
            or not self._rooms.visibility.can_see_event(reporter, event)
        ):
            raise not_found("Event not found.")
        self._store(reporter, {"room_id": room_id, "event_id": event_id}, reason)

    def report_room(self, reporter: str, room_id: str, reason: str) -> None:
        try:
            self._rooms.timeline.room_version(room_id)
        except KeyError:
            raise not_found("Room not found.") from None
        self._store(reporter, {"room_id": room_id}, reason)

    def report_user(self, reporter: str, user_id: str, reason: str) -> None:
        if not self._user_exists(user_id):
            raise not_found("User not found.")
        self._store(reporter, {"user_id": user_id}, reason)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, value in self._reports.iter_prefix()]
