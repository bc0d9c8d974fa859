"""Asking another server for events we are missing, each checked as it arrives.

Spec: `content/server-server-api.md` § Retrieving events (`GET /event/{eventId}`,
`GET /state_ids/{roomId}`), § Backfilling and retrieving missing events
(`POST /get_missing_events/{roomId}`), `data/api/server-server/events.yaml`,
`backfill.yaml`. Every event that comes back passes steps 1–3 of the
receipt checks (`received.checked_pdu`) before anyone sees it; an event that
fails, or a server that does not answer, counts as not found: whoever needed
it then rejects or drops what cited it. Nothing here holds a room lock, so
these calls run before the incoming-event handler takes one. Answers are
read up to what an honest one can weigh (`/event` 1 MiB, for one PDU of at
most 64 KiB; `/get_missing_events` 64 KiB per event asked; `/state_ids`
64 MiB), and a `/get_missing_events` answer that is not what was asked
(more events than `limit`, an event of another room) is not used at all.

An event a server could not give us is not asked of it again at once: the
pull backs off from `PULL_BACKOFF_MIN_MS`, doubling up to
`PULL_BACKOFF_MAX_MS` (Synapse backs failed pulls off too, from an hour), so
a stream of events citing one that is gone does not become a stream of
requests for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ...core.errors import InvalidEvent
from ...core.events import required_signature_servers, validate_pdu_format
from ...core.room_versions import RoomVersion
from ...core.signing import signed_key_ids
from ...lru import LRUCache
from ..clock import Clock, now_ms
from .client import FederationClient
from .errors import FederationError
from .key_ring import KeyRing
from .received import DroppedPdu, checked_pdu

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 30.0
MISSING_EVENTS_TIMEOUT_SECONDS = 60.0
"""Synapse gives `/get_missing_events` 60 s."""

EVENT_MAX_BYTES = 1024 * 1024
"""An `/event` answer holds one PDU, at most 64 KiB; more is not an honest answer."""
PDU_MAX_BYTES = 65_536
STATE_IDS_MAX_BYTES = 64 * 1024 * 1024
"""`/state_ids` of `#matrix:matrix.org` is ~200k ids, ~10 MB."""

PULL_BACKOFF_MIN_MS = 60_000
PULL_BACKOFF_MAX_MS = 3600_000
REMEMBERED_FAILURES = 10_000

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StateIds:
    """`/state_ids` at an event: the state before it, and the auth chain of that state."""

    pdu_ids: list[str]
    auth_chain_ids: list[str]


def _segment(identifier: str) -> str:
    return quote(identifier, safe="")


def _string_list(value: object) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


async def prefetch_signing_keys(
    key_ring: KeyRing, pdus: Iterable[tuple[object, RoomVersion]]
) -> None:
    """Every signing key the (PDU, room version) pairs need, fetched in one batch (the key
    ring asks each server once, all at the same time) before they are checked one by
    one: events signed by many slow servers cost one key timeout, not one each in turn.
    Malformed PDUs are skipped here (they are refused when they are checked)."""
    wanted: dict[str, set[str]] = {}
    earliest: int | None = None
    for pdu, room_version in pdus:
        if not isinstance(pdu, dict):
            continue
        try:
            validate_pdu_format(pdu, room_version)
            servers = required_signature_servers(pdu, room_version)
        except InvalidEvent:
            continue
        for server in servers:
            wanted.setdefault(server, set()).update(signed_key_ids(pdu, server))
        ts = pdu.get("origin_server_ts")
        if room_version.enforce_key_validity and isinstance(ts, int):
            earliest = ts if earliest is None else min(earliest, ts)
    if len(wanted) > 1:
        await key_ring.keys_for_many(wanted, earliest or 0)


@dataclass(slots=True)
class _FailedPull:
    retry_at_ms: int
    delay_ms: int


class EventFetcher:
    def __init__(self, client: FederationClient, key_ring: KeyRing, clock: Clock = now_ms) -> None:
        self._client = client
        self._key_ring = key_ring
        self._clock = clock
        self._failed: LRUCache[tuple[str, str], _FailedPull] = LRUCache(REMEMBERED_FAILURES)
        """(destination, event id) → when to ask again; bounded, as event ids come from others."""

    async def event(
        self, destination: str, room_id: str, event_id: str, room_version: RoomVersion
    ) -> Event | None:
        """`event_id` from `destination`, checked, if it is that event of `room_id`."""
        failed = self._failed.get((destination, event_id))
        if failed is not None and self._clock() < failed.retry_at_ms:
            return None
        event = await self._fetch_event(destination, room_id, event_id, room_version)
        if event is None:
            delay = min(failed.delay_ms * 2, PULL_BACKOFF_MAX_MS) if failed else PULL_BACKOFF_MIN_MS
            self._failed.put((destination, event_id), _FailedPull(self._clock() + delay, delay))
        elif failed is not None:
            self._failed.discard((destination, event_id))
        return event

    async def _fetch_event(
        self, destination: str, room_id: str, event_id: str, room_version: RoomVersion
    ) -> Event | None:
        try:
            answer = await self._client.request(
                destination,
                "GET",
                f"/_matrix/federation/v1/event/{_segment(event_id)}",
                timeout=FETCH_TIMEOUT_SECONDS,
                max_bytes=EVENT_MAX_BYTES,
            )
        except FederationError as error:
            log.info("could not fetch %s from %s: %s", event_id, destination, error)
            return None
        pdus = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list) or len(pdus) != 1:
            log.info("%s answered /event/%s without exactly one PDU", destination, event_id)
            return None
        event = await self._checked(destination, pdus[0], room_version)
        if event is None or event["event_id"] != event_id or event["room_id"] != room_id:
            log.info("%s answered /event/%s with another or a bad event", destination, event_id)
            return None
        return event

    async def missing_events(
        self,
        destination: str,
        room_id: str,
        *,
        earliest: list[str],
        latest: list[str],
        limit: int,
        room_version: RoomVersion,
    ) -> list[Event]:
        """The events between `earliest` and `latest` that `destination` gives, checked,
        oldest (lowest depth) first, at most `limit` of them.

        An answer that is not what was asked is a lie, and none of it is used:
        more than `limit` events, or an event of another room (logged once,
        with the reason). Events that fail steps 1–3 are left out one by one.
        """
        try:
            answer = await self._client.request(
                destination,
                "POST",
                f"/_matrix/federation/v1/get_missing_events/{_segment(room_id)}",
                body={"earliest_events": earliest, "latest_events": latest, "limit": limit},
                timeout=MISSING_EVENTS_TIMEOUT_SECONDS,
                max_bytes=(limit + 1) * PDU_MAX_BYTES,
            )
        except FederationError as error:
            log.info("get_missing_events from %s failed: %s", destination, error)
            return []
        pdus = answer.get("events") if isinstance(answer, dict) else None
        if not isinstance(pdus, list):
            log.info("%s answered get_missing_events without a list of events", destination)
            return []
        if len(pdus) > limit:
            log.warning(
                "ignoring get_missing_events of %s from %s: %d events, %d asked for",
                room_id,
                destination,
                len(pdus),
                limit,
            )
            return []
        await prefetch_signing_keys(self._key_ring, ((pdu, room_version) for pdu in pdus))
        events = []
        for pdu in pdus:
            event = await self._checked(destination, pdu, room_version)
            if event is None:
                continue
            if event["room_id"] != room_id:
                log.warning(
                    "ignoring get_missing_events of %s from %s: it holds %s of %s",
                    room_id,
                    destination,
                    event["event_id"],
                    event["room_id"],
                )
                return []
            events.append(event)
        events.sort(key=lambda event: (event["depth"], event["origin_server_ts"]))
        return events

    async def state_ids(self, destination: str, room_id: str, event_id: str) -> StateIds | None:
        """The state before `event_id` as `destination` sees it (None if it will not say)."""
        try:
            answer = await self._client.request(
                destination,
                "GET",
                f"/_matrix/federation/v1/state_ids/{_segment(room_id)}",
                query={"event_id": event_id},
                timeout=MISSING_EVENTS_TIMEOUT_SECONDS,
                max_bytes=STATE_IDS_MAX_BYTES,
            )
        except FederationError as error:
            log.info("state_ids at %s from %s failed: %s", event_id, destination, error)
            return None
        if not isinstance(answer, dict):
            return None
        pdu_ids = _string_list(answer.get("pdu_ids"))
        auth_chain_ids = _string_list(answer.get("auth_chain_ids"))
        if pdu_ids is None or auth_chain_ids is None:
            log.info("%s answered state_ids at %s with a malformed body", destination, event_id)
            return None
        return StateIds(pdu_ids, auth_chain_ids)

    async def _checked(
        self, destination: str, pdu: object, room_version: RoomVersion
    ) -> Event | None:
        try:
            return await checked_pdu(self._key_ring, pdu, room_version)
        except DroppedPdu as error:
            log.info("dropped an event from %s: %s", destination, error)
            return None
