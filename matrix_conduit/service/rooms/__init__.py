"""Rooms on this server: storage of events and state, and what users do in rooms.

Modules (each owns its trees):
- `short`             short ids for event ids, state keys, room ids
- `state_compressor`  state snapshots as layered diffs
- `state`             current state, and the state before and after each event
- `state_resolution`  the state where branches meet (forks, diverging extremities)
- `state_cache`       membership indexes (who is in which room)
- `event_context`     what persisting one event changes, and its status
- `locks`             one lock per room, and the guard the persist path asks for
- `timeline`          events in stream order; the one persist path for every event
- `builder`           this server's own events (template, sign and append), and the
                      checks another server's event passes first
- `visibility`        history visibility on every read path
- `room_events`       send / read / paginate / redact for clients
- `membership`        join, leave, invite, kick, ban, knock, forget
- `create`            createRoom
- `alias`, `directory`  aliases and the public room list
- `relations`         threads, edits, references; bundled aggregations
- `search`            the full-text index and search
- `hierarchy`         space hierarchies
- `upgrade`           room upgrades
- `guest_access`      guests join only rooms that allow them, and leave when that stops
"""

from __future__ import annotations

from ...config import Config
from ...lru import MemoryBudget
from ...storage import Database
from ..cluster import Cluster
from ..globals import Globals
from ..notifier import Notifier
from ..transaction_ids import TransactionIds
from .alias import Aliases
from .builder import EventBuilder
from .create import RoomCreation
from .directory import Directory
from .hierarchy import Hierarchy
from .locks import RoomLocks
from .membership import Membership, Profiles
from .relations import Relations
from .room_events import RoomEvents
from .search import Search
from .short import ShortIds
from .state import RoomState
from .state_cache import StateCache
from .state_compressor import StateCompressor
from .state_resolution import StateResolution
from .timeline import Timeline
from .upgrade import RoomUpgrades
from .visibility import Visibility


class Rooms:
    def __init__(
        self,
        config: Config,
        db: Database,
        globals_: Globals,
        notifier: Notifier,
        transaction_ids: TransactionIds,
        profiles: Profiles,
        cluster: Cluster | None = None,
    ) -> None:
        capacity = max(
            1000, int(config.pdu_cache_capacity * config.conduit_cache_capacity_modifier)
        )
        self.memory = MemoryBudget(config.cache_memory_mb, config.conduit_cache_capacity_modifier)
        """The caches of room data and their byte budget (`cache_memory_mb`)."""
        server_name = config.server_name
        self.short = ShortIds(db, globals_, capacity, self.memory)
        self.compressor = StateCompressor(db, globals_, max(100, capacity // 1000), self.memory)
        self.state = RoomState(
            db, self.short, self.compressor, max(100, capacity // 1000), self.memory, cluster
        )
        self.state_cache = StateCache(db, self.memory, capacity, cluster)
        self.timeline = Timeline(
            db, globals_, self.short, self.state, self.state_cache, notifier, capacity, self.memory
        )
        self.resolution = StateResolution(self.state, self.timeline)
        self.locks = RoomLocks(cluster)
        self.builder = EventBuilder(globals_, self.state, self.timeline, self.locks)
        self.visibility = Visibility(self.short, self.state, self.state_cache, self.timeline)
        self.aliases = Aliases(db)
        self.directory = Directory(db, self.timeline, self.state_cache)
        self.relations = Relations(db, self.timeline, self.visibility)
        self.timeline.indexers.append(self.relations.index)
        self.search = Search(db, self.short, self.timeline, self.state_cache, self.visibility)
        self.timeline.indexers.append(self.search.index)
        self.hierarchy = Hierarchy(
            self.state, self.timeline, self.state_cache, self.visibility, self.directory
        )
        self.events = RoomEvents(
            server_name,
            self.short,
            self.state,
            self.state_cache,
            self.timeline,
            self.builder,
            self.visibility,
            transaction_ids,
            self.aliases,
            self.relations,
            allow_encryption=config.allow_encryption,
        )
        self.membership = Membership(
            db, server_name, self.builder, self.timeline, self.state_cache, profiles
        )
        self.creation = RoomCreation(
            db,
            server_name,
            self.builder,
            self.membership,
            self.aliases,
            self.directory,
            profiles,
            allow_encryption=config.allow_encryption,
        )
        self.upgrades = RoomUpgrades(
            self.timeline,
            self.state_cache,
            self.builder,
            self.creation,
            self.membership,
            self.aliases,
            db,
            server_name,
        )
