"""The federation sender: each destination's outbox, delivered in transactions.

Spec: `content/server-server-api.md`, "Transactions" and
`data/api/server-server/transactions.yaml` (`PUT /_matrix/federation/v1/send/{txnId}`:
at most 50 PDUs and 100 EDUs; a transaction that failed is retried with the
same id, which the receiver treats as idempotent). What the mature servers
do (`../shared/notes/federation-lessons.md`, "Sending"): one queue per
destination, one transaction in flight, backoff persisted per destination and
cleared when the destination contacts us.

- The durable part of each queue is the `Outbox` (PDUs, to-device, device
  lists): a restart resumes it, and a destination that was down gets
  everything queued for it once it is back (catch-up by replay).
- Typing, receipts and presence wait in memory (`queue_ephemeral`), one entry
  per key, so a burst of changes sends only the newest (the spec lets them be
  lost: a restart ends typing notices anyway).
- One worker per destination at a time, started when something is queued,
  when the destination contacts us (`Destinations.reset` listeners), and by
  the periodic retry loop; it stops when the queue is empty or the
  destination fails (the client records the failure in `Destinations`, whose
  backoff doubles up to its cap). A transaction that failed is kept and sent
  again first, unchanged, under the same id.
- A destination that answers 429 gets the same transaction again after
  `rate_limited_retry_seconds`; one that refuses a transaction outright
  (another 4xx) would refuse it again: its items are dropped, with a warning.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

import trio

from ...core.room_versions import RoomVersion
from ...logs import FailureLog
from ..clock import Clock, now_ms
from ..rooms.timeline import Event, Timeline
from .client import FederationClient
from .destinations import Destinations
from .errors import DestinationForbidden, FederationDisabled, FederationError, RemoteError
from .outbox import Item, Outbox, QueueKey

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
"""Per transaction (transactions.yaml)."""
MAX_SCANNED_ITEMS = 1000
"""Outbox items looked at to fill one transaction (PDUs beyond 50 are skipped over to
find EDUs; a long queue is not read whole for each transaction)."""
RETRY_INTERVAL_SECONDS = 60.0
"""How often destinations whose backoff ran out are tried again (Synapse: 60 s)."""
RATE_LIMITED_RETRY_SECONDS = 10.0
"""How long a destination that answered 429 is left alone before the same transaction
is sent again (a 429 says the server is up: it is not backed off)."""

EphemeralKey = Hashable
BuildEdu = Callable[[Item], "dict[str, Any] | None"]
"""Outbox item → the EDU to send (None: nothing to send any more, drop the item)."""


class _Outcome(Enum):
    DONE = "done"
    FAILED = "failed"
    """No answer or a 5xx: the client backed the destination off."""
    RATE_LIMITED = "rate limited"


@dataclass
class Transaction:
    txn_id: str
    pdus: list[dict[str, Any]] = field(default_factory=list)
    edus: list[dict[str, Any]] = field(default_factory=list)
    keys: list[QueueKey] = field(default_factory=list)
    """The outbox items it carries: removed once the destination has it."""


def federation_pdu(event: Event, room_version: RoomVersion) -> dict[str, Any]:
    """A stored event as a PDU: without our local `unsigned`, and without the
    `event_id` where the room version derives it from the event (v3+)."""
    pdu = {key: value for key, value in event.items() if key != "unsigned"}
    if not room_version.event_id_in_event:
        pdu.pop("event_id", None)
    return pdu


def _presence_in_one(edus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The EDUs, with every `m.presence` update merged into one `push` list."""
    updates = [u for e in edus if e["edu_type"] == "m.presence" for u in e["content"]["push"]]
    merged = [e for e in edus if e["edu_type"] != "m.presence"]
    if updates:
        merged.append({"edu_type": "m.presence", "content": {"push": updates}})
    return merged


class FederationSender:
    def __init__(
        self,
        server_name: str,
        outbox: Outbox,
        client: FederationClient,
        destinations: Destinations,
        timeline: Timeline,
        build_edu: BuildEdu,
        *,
        enabled: bool,
        clock: Clock = now_ms,
        retry_interval_seconds: float = RETRY_INTERVAL_SECONDS,
    ) -> None:
        self._server_name = server_name
        self._failures = FailureLog(log, "federation to")
        self._outbox = outbox
        self._client = client
        self._destinations = destinations
        self._timeline = timeline
        self._build_edu = build_edu
        self._enabled = enabled
        self._clock = clock
        self.retry_interval_seconds = retry_interval_seconds
        self.rate_limited_retry_seconds = RATE_LIMITED_RETRY_SECONDS
        self._ephemeral: dict[str, dict[EphemeralKey, dict[str, Any]]] = {}
        """destination → coalescing key → EDU: typing, receipts, presence."""
        self._failed: dict[str, Transaction] = {}
        """A destination's transaction that failed: the next one it is sent."""
        self._working: set[str] = set()
        self._nursery: trio.Nursery | None = None
        outbox.queued.append(self.wake)
        destinations.reset.append(lambda destination: self.wake([destination]))

    # ---- queueing

    def queue_ephemeral(
        self, destinations: Iterable[str], key: EphemeralKey, edu: dict[str, Any]
    ) -> None:
        """Send `edu` to each destination soon; it replaces a queued one with the same key."""
        if not self._enabled:
            return
        targets = [d for d in destinations if d != self._server_name]
        for destination in targets:
            self._ephemeral.setdefault(destination, {})[key] = edu
        self.wake(targets)

    def wake(self, destinations: Iterable[str]) -> None:
        """Start the worker of each destination that has none (it reads its queue)."""
        if self._nursery is None:
            return
        for destination in destinations:
            if destination not in self._working:
                self._working.add(destination)
                self._nursery.start_soon(self._drain, destination)

    # ---- sending

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver every queue until cancelled (a background task); resumes what is stored."""
        if not self._enabled:
            task_status.started()
            await trio.sleep_forever()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                while True:
                    self.wake(
                        self._outbox.destinations() | set(self._ephemeral) | set(self._failed)
                    )
                    await trio.sleep(self.retry_interval_seconds)
            finally:
                self._nursery = None

    async def _drain(self, destination: str) -> None:
        """Send the destination's transactions one after the other, until done or failing."""
        try:
            while self._destinations.retry_at_ms(destination) is None:
                transaction = self._failed.pop(destination, None) or self._next_transaction(
                    destination
                )
                if transaction is None:
                    return
                outcome = await self._send(destination, transaction)
                if outcome is _Outcome.DONE:
                    continue
                self._failed[destination] = transaction
                if outcome is _Outcome.FAILED:
                    return
                await trio.sleep(self.rate_limited_retry_seconds)
        except Exception:
            # One destination's bad item must not stop the server's other work; the
            # retry loop starts this worker again.
            log.exception("the federation sender's worker for %s failed", destination)
        finally:
            self._working.discard(destination)

    def _next_transaction(self, destination: str) -> Transaction | None:
        transaction = Transaction(txn_id=f"{self._clock()}.{secrets.token_hex(6)}")
        dropped: list[QueueKey] = []
        for scanned, (key, item) in enumerate(self._outbox.items(destination)):
            if scanned == MAX_SCANNED_ITEMS or (
                len(transaction.pdus) == MAX_PDUS and len(transaction.edus) == MAX_EDUS
            ):
                break
            if "pdu" in item:
                if len(transaction.pdus) == MAX_PDUS:
                    continue
                event = self._timeline.get_event(item["pdu"])
                if event is None:
                    dropped.append(key)
                    continue
                transaction.pdus.append(
                    federation_pdu(event, self._timeline.room_version(event["room_id"]))
                )
            else:
                if len(transaction.edus) == MAX_EDUS:
                    continue
                edu = self._build_edu(item)
                if edu is None:
                    dropped.append(key)
                    continue
                transaction.edus.append(edu)
            transaction.keys.append(key)
        if dropped:
            self._outbox.remove(dropped)
        ephemeral = self._ephemeral.get(destination)
        taken = []
        while ephemeral and len(transaction.edus) + len(taken) < MAX_EDUS:
            taken.append(ephemeral.pop(next(iter(ephemeral))))
        if ephemeral is not None and not ephemeral:
            del self._ephemeral[destination]
        transaction.edus += _presence_in_one(taken)
        if not transaction.pdus and not transaction.edus:
            return None
        return transaction

    async def _send(self, destination: str, transaction: Transaction) -> _Outcome:
        """DONE when the destination received the transaction or refused it for good."""
        body = {
            "origin": self._server_name,
            "origin_server_ts": self._clock(),
            "pdus": transaction.pdus,
            "edus": transaction.edus,
        }
        path = f"/_matrix/federation/v1/send/{quote(transaction.txn_id, safe='')}"
        try:
            answer = await self._client.request(destination, "PUT", path, body=body)
        except RemoteError as error:
            if error.status == 429:
                return _Outcome.RATE_LIMITED
            if error.status >= 500:
                self._failures.failed(destination, error)
                return _Outcome.FAILED
            log.warning("%s refused transaction %s: %s", destination, transaction.txn_id, error)
        except (FederationDisabled, DestinationForbidden) as error:
            log.warning("dropping transaction %s: %s", transaction.txn_id, error)
        except FederationError as error:
            self._failures.failed(destination, error)
            return _Outcome.FAILED
        else:
            self._failures.recovered(destination)
            self._log_refused_pdus(destination, answer)
        self._outbox.remove(transaction.keys)
        return _Outcome.DONE

    @staticmethod
    def _log_refused_pdus(destination: str, answer: Any) -> None:
        results = answer.get("pdus") if isinstance(answer, dict) else None
        for event_id, result in (results if isinstance(results, dict) else {}).items():
            if isinstance(result, dict) and "error" in result:
                log.info("%s did not accept %s: %s", destination, event_id, result["error"])
