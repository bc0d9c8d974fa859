"""What other servers send us and ask us for, about rooms: assembled in one place.

Spec: `content/server-server-api.md` § Transactions, § PDUs, § Retrieving
events. The parts (each module says why it is built as it is):
- `queue` (`inbound_queue`): received PDUs and transaction answers, durable;
- `events` (`incoming`): the per-event pipeline, from auth events and missing
  prev_events to the event context and `Timeline.persist`;
  `events.persist_with_state` and `events.persist_outliers` are what a join
  (its `send_join` state and auth chain) or an invite hands to it;
- `transactions` (`transactions`): `PUT /send` and the background worker
  that drains the queue (`transactions.run`, one of the server's background
  tasks); the EDU services set `transactions.handle_edu`;
- `served` (`served_events`): `/event`, `/state`, `/state_ids`,
  `/get_missing_events`, with history visibility for the asking server.
"""

from __future__ import annotations

from ...config import Config
from ...storage import Database
from ..globals import Globals
from ..rooms import Rooms
from . import Federation
from .event_fetcher import EventFetcher
from .inbound_queue import InboundQueue
from .incoming import IncomingEvents
from .served_events import ServedEvents
from .transactions import Transactions


class Inbound:
    def __init__(
        self,
        config: Config,
        db: Database,
        globals_: Globals,
        rooms: Rooms,
        federation: Federation,
    ) -> None:
        key_ring = federation.key_ring
        self.queue = InboundQueue(db, globals_)
        fetcher = EventFetcher(federation.client, key_ring)
        self.events = IncomingEvents(rooms, key_ring, fetcher, config.max_fetch_prev_events)
        self.transactions = Transactions(self.queue, self.events, rooms.timeline, key_ring)
        self.served = ServedEvents(globals_, rooms)
