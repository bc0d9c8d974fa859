"""Receiving transactions (`PUT /send/{txnId}`): queue the PDUs durably, route the EDUs.

Spec: `content/server-server-api.md` § Transactions (at most 50 PDUs and 100
EDUs), § PDUs, § EDUs, § Server Access Control Lists (each PDU is ignored,
with an error for its event id, if the sending server is denied in its
room), `data/api/server-server/transactions.yaml` (the `pdus` answer). What
the mature servers do (`../shared/notes/federation-lessons.md`, "Receiving
/send"): steps 1–3 (format, signatures, hash) before answering, then the PDUs
are staged durably and answered 200; a background drain per room does the
rest in order, and survives restarts; EDUs are handled apart from PDUs so
that to-device messages are not stuck behind a slow room.

- `receive` answers a transaction: one at a time per origin; a repeated
  transaction id gets the stored answer and nothing is processed again;
  the accepted PDUs and the answer go into the inbound queue in one batch
  before the answer is returned.
- each EDU goes to `handle_edu(origin, edu_type, content)` (a typing
  notification or a room's receipts only where the room's server ACL lets
  the origin in): the EDU
  dispatcher the EDU services set (`edus.EduHandlers.handle`: one handler
  per type, unknown types ignored; until one is set every EDU is ignored);
  a failing handler is logged and does not fail the transaction.
  EDUs run, in order, while the PDUs are checked, and before the answer is
  stored: a crash in between makes the sender retry, so an EDU is handled at
  least once.
- `run` is the background worker: one task per room with queued PDUs,
  each room's PDUs in order (`IncomingEvents.handle_pushed`), at most
  `WORKER_CONCURRENCY` PDUs at once and `WORKERS_PER_ORIGIN` of one origin.
- floods: at most `MAX_QUEUED_PER_ORIGIN` PDUs of one origin wait in the
  queue (more: 429 `M_LIMIT_EXCEEDED`, nothing of the transaction handled).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ...core.events import compute_event_id
from ...core.room_versions import RoomVersion, get_room_version
from ...core.server_acl import server_allowed
from ...errors import MatrixError, bad_json
from ...storage import WriteBatch
from ..rooms.timeline import Timeline
from .event_fetcher import prefetch_signing_keys
from .inbound_queue import InboundQueue, QueuedPdu
from .incoming import IncomingEvents
from .key_ring import KeyRing
from .received import DroppedPdu, checked_pdu

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
WORKER_CONCURRENCY = 8
"""Rooms handled at once (most of a room's time is spent waiting on other servers)."""
WORKERS_PER_ORIGIN = 4
"""PDUs of one origin handled at once: a peer that answers slowly (or never) holds at most
this many of the `WORKER_CONCURRENCY` slots, so the rooms of other servers go on."""
MAX_QUEUED_PER_ORIGIN = 1000
"""PDUs of one origin waiting in the inbound queue; a transaction that would queue more is
answered 429 `M_LIMIT_EXCEEDED` (its sender retries it later, spec § Transactions), so a
flooding peer cannot grow the queue without end."""
RETRY_AFTER_MS = 5000

EduDispatch = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""`await handle_edu(origin, edu_type, content)` for one EDU of a transaction."""
OutOfBand = Callable[[str, dict[str, Any]], Awaitable[tuple[str, str | None] | None]]
"""`await out_of_band(origin, pdu)` for a PDU of a room unknown here: (event id, error or
None) if it was taken (a rescinded invite, a rejected knock), else None."""


async def _ignore_edu(_origin: str, _edu_type: str, _content: dict[str, Any]) -> None:
    return None


async def _no_out_of_band(_origin: str, _pdu: dict[str, Any]) -> None:
    return None


def _transaction_lists(body: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise bad_json("`pdus` must be a list of PDUs.")
    if not isinstance(edus, list):
        raise bad_json("`edus` must be a list of EDUs.")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise MatrixError(
            400,
            "M_TOO_LARGE",
            f"A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs "
            f"(this one: {len(pdus)} and {len(edus)}).",
        )
    return pdus, edus


class Transactions:
    def __init__(
        self,
        queue: InboundQueue,
        incoming: IncomingEvents,
        timeline: Timeline,
        key_ring: KeyRing,
    ) -> None:
        self._queue = queue
        self._incoming = incoming
        self._timeline = timeline
        self._key_ring = key_ring
        self.handle_edu: EduDispatch = _ignore_edu
        """Where each EDU goes; the EDU services set their dispatcher here."""
        self.out_of_band: OutOfBand = _no_out_of_band
        """Who may take a PDU of a room we are not in (remote membership sets it)."""
        self.room_disabled: Callable[[str], bool] = lambda room_id: False
        """Rooms the admin disabled (`admin_room/disabled_rooms.py`): their PDUs are refused."""
        self._origin_locks: dict[str, trio.Lock] = {}
        self._work = trio.Event()
        self._queued: dict[str, int] = {}
        """Origin → its PDUs queued since this process started, not handled yet."""
        self._origin_workers: dict[str, trio.CapacityLimiter] = {}

    # ---- receiving

    async def receive(self, origin: str, txn_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to `origin`'s transaction `txn_id`, once its PDUs are queued."""
        pdus, edus = _transaction_lists(body)
        lock = self._origin_locks.setdefault(origin, trio.Lock())
        try:
            async with lock:
                answer = self._queue.answer(origin, txn_id)
                if answer is not None:
                    return answer
                queued = self._queued.get(origin, 0)
                if queued + len(pdus) > MAX_QUEUED_PER_ORIGIN:
                    log.info("429 to %s: %d of its PDUs are queued already", origin, queued)
                    raise MatrixError(
                        429,
                        "M_LIMIT_EXCEEDED",
                        f"{queued} PDUs of {origin} are waiting to be handled here; "
                        f"at most {MAX_QUEUED_PER_ORIGIN}.",
                        retry_after_ms=RETRY_AFTER_MS,
                    )
                results: dict[str, dict[str, str]] = {}
                accepted: list[tuple[str, dict[str, Any]]] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._dispatch_edus, origin, edus)
                    await self._prefetch_keys(pdus)
                    for pdu in pdus:
                        await self._precheck(origin, pdu, results, accepted)
                answer = {"pdus": results}
                self._queue.enqueue(origin, txn_id, accepted, answer)
                if accepted:
                    self._queued[origin] = queued + len(accepted)
                self._work.set()
                return answer
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._origin_locks.pop(origin, None)

    async def _prefetch_keys(self, pdus: list[Any]) -> None:
        """The keys all the transaction's PDUs need, in one batch (`prefetch_signing_keys`)."""
        versioned = []
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
            if not isinstance(room_id, str):
                continue
            with contextlib.suppress(KeyError):  # a room unknown here: the PDU is left out
                versioned.append((pdu, self._timeline.room_version(room_id)))
        await prefetch_signing_keys(self._key_ring, versioned)

    async def _precheck(
        self,
        origin: str,
        pdu: object,
        results: dict[str, dict[str, str]],
        accepted: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """The ACL and steps 1–3: into `accepted`, or an error in `results` (or skipped
        when the event has no id we can name: not an object, or a room unknown here)."""
        room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
        if not isinstance(room_id, str):
            log.info("ignoring a PDU from %s without a room_id", origin)
            return
        try:
            room_version = self._timeline.room_version(room_id)
        except KeyError:
            taken = await self.out_of_band(origin, pdu) if isinstance(pdu, dict) else None
            if taken is not None:
                event_id, error = taken
                results[event_id] = {} if error is None else {"error": error}
                return
            log.info("ignoring a PDU from %s for %s, a room unknown here", origin, room_id)
            return
        assert isinstance(pdu, dict)
        if self.room_disabled(room_id):
            event_id = self._event_id(pdu, room_version)
            if event_id is not None:
                results[event_id] = {"error": f"{room_id} is disabled on this server"}
            return
        if not self._acl_allows(room_id, origin):
            event_id = self._event_id(pdu, room_version)
            if event_id is not None:
                results[event_id] = {"error": f"{origin} is denied by the room's server ACL"}
            return
        try:
            event = await checked_pdu(self._key_ring, pdu, room_version)
        except DroppedPdu as error:
            event_id = self._event_id(pdu, room_version)
            log.info("dropping %s from %s: %s", event_id or "a PDU", origin, error)
            if event_id is not None:
                results[event_id] = {"error": str(error)}
            return
        results[event["event_id"]] = {}
        accepted.append((room_version.identifier, event))

    @staticmethod
    def _event_id(pdu: dict[str, Any], room_version: RoomVersion) -> str | None:
        try:
            return compute_event_id(pdu, room_version)
        except Exception:  # a PDU malformed enough to have no id gets no entry
            return None

    def _acl_allows(self, room_id: str, origin: str) -> bool:
        acl = self._timeline.state_event(room_id, "m.room.server_acl")
        content = acl.get("content") if acl is not None else None
        return server_allowed(content if isinstance(content, dict) else None, origin)

    def _within_acl(
        self, origin: str, edu_type: str, content: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The EDU's content without what concerns rooms whose ACL denies `origin` (spec
        § Server ACLs: a typing notification is ignored, a room's receipts are left out)."""
        if edu_type == "m.typing":
            room_id = content.get("room_id")
            if isinstance(room_id, str) and not self._acl_allows(room_id, origin):
                return None
        elif edu_type == "m.receipt":
            allowed = {
                room_id: receipts
                for room_id, receipts in content.items()
                if self._acl_allows(room_id, origin)
            }
            if len(allowed) != len(content):
                return allowed or None
        return content

    async def _dispatch_edus(self, origin: str, edus: list[Any]) -> None:
        for edu in edus:
            edu_type = edu.get("edu_type") if isinstance(edu, dict) else None
            content = edu.get("content") if isinstance(edu, dict) else None
            if not isinstance(edu_type, str) or not isinstance(content, dict):
                log.info("ignoring a malformed EDU from %s", origin)
                continue
            content = self._within_acl(origin, edu_type, content)
            if content is None:
                log.info(
                    "ignoring an %s EDU from %s: the room's server ACL denies it", edu_type, origin
                )
                continue
            try:
                await self.handle_edu(origin, edu_type, content)
            except Exception:  # one bad EDU must not fail the transaction or the others
                log.exception("handling an %s EDU from %s failed", edu_type, origin)

    # ---- the worker

    async def run(self) -> None:
        """Drain the inbound queue, each room in order, until cancelled (a background task).

        Starts with what a previous run left queued (a restart, a crash).
        """
        limiter = trio.CapacityLimiter(WORKER_CONCURRENCY)
        draining: set[str] = set()
        async with trio.open_nursery() as nursery:
            while True:
                self._work = trio.Event()
                for room_id in self._queue.rooms_with_work():
                    if room_id not in draining:
                        draining.add(room_id)
                        nursery.start_soon(self._drain, room_id, draining, limiter)
                await self._work.wait()

    async def _drain(self, room_id: str, draining: set[str], limiter: trio.CapacityLimiter) -> None:
        try:
            while True:
                queued = self._queue.first(room_id)
                if queued is None:
                    # No await between the empty queue and leaving `draining`: new work
                    # either is seen here or wakes `run`, which starts a new drain.
                    draining.discard(room_id)
                    return
                origin_workers = self._origin_workers.setdefault(
                    queued.origin, trio.CapacityLimiter(WORKERS_PER_ORIGIN)
                )
                try:
                    async with origin_workers, limiter:
                        await self._handle(queued)
                finally:
                    statistics = origin_workers.statistics()
                    if statistics.borrowed_tokens == 0 and statistics.tasks_waiting == 0:
                        self._origin_workers.pop(queued.origin, None)
                    self._handled(queued.origin)
        finally:
            draining.discard(room_id)

    def _handled(self, origin: str) -> None:
        count = self._queued.get(origin, 0) - 1
        if count > 0:
            self._queued[origin] = count
        else:
            self._queued.pop(origin, None)

    async def _handle(self, queued: QueuedPdu) -> None:
        def take_off_queue(batch: WriteBatch) -> None:
            self._queue.delete(queued, batch)

        try:
            await self._incoming.handle_pushed(
                queued.origin,
                queued.event,
                get_room_version(queued.room_version),
                take_off_queue,
            )
        except Exception:  # a PDU that breaks the handler must not block its room forever
            log.exception("handling %s from %s failed", queued.event["event_id"], queued.origin)
            batch = self._timeline.batch()
            take_off_queue(batch)
            batch.commit()
