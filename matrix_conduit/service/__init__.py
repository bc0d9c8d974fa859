"""The homeserver's behaviour, one service per concern; no HTTP objects in here.

`Services` builds every service over one open database and is what the API
layer calls. Each service declares the trees it owns at the top of its module
(`TREES`); no other service reads them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ..config import Config
from ..storage import Database
from .account_data import AccountData
from .devices import Devices
from .filters import Filters
from .globals import Globals
from .jwt_login import JwtLogin
from .notification_counts import EventRating, NotificationCounts
from .notifier import Notifier
from .passwords import PasswordHashing
from .presence import Presence
from .receipts import Receipts
from .registration import Registration
from .rooms import Rooms
from .sync import Sync
from .transaction_ids import TransactionIds
from .typing import Typing
from .uiaa import UserInteractiveAuth
from .users import Users


class Services:
    """Every service of one running server, over one database."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.background_tasks: list[Callable[[], Awaitable[None]]] = []
        """Loops `run_background` runs for the server's lifetime (expiry, queues...)."""
        self.globals = Globals(db, config.server_name)
        passwords = PasswordHashing()
        self.devices = Devices(db, self.globals)
        self.users = Users(db, config, self.devices, passwords)
        self.registration = Registration(db, config, self.users, self.devices, passwords)
        self.uiaa = UserInteractiveAuth(db, self.users, self.registration)
        self.jwt_login = JwtLogin(config, self.users, self.registration)
        self.notifier = Notifier()
        self.transaction_ids = TransactionIds(db)
        self.rooms = Rooms(
            config, db, self.globals, self.notifier, self.transaction_ids, self.users
        )
        self.users.profile_changed.append(self.rooms.membership.update_profile)
        self.account_data = AccountData(db, self.globals, self.notifier)
        self.filters = Filters(db)
        state_cache = self.rooms.state_cache
        self.typing = Typing(self.globals, self.notifier, state_cache)
        self.receipts = Receipts(
            db,
            self.globals,
            self.notifier,
            state_cache,
            self.rooms.timeline,
            self.rooms.visibility,
            self.account_data,
        )
        self.presence = Presence(db, self.globals, self.notifier, state_cache)
        self.background_tasks += [self.typing.run, self.presence.run]
        self.sync = Sync(
            self.globals,
            self.notifier,
            self.rooms,
            NotificationCounts(self.rooms.timeline, EventRating(self.users.displayname)),
            self,
        )

    async def run_background(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The services' background work (expiry, timeouts, queues) until cancelled."""
        async with trio.open_nursery() as nursery:
            for task in self.background_tasks:
                nursery.start_soon(task)
            task_status.started()
            await trio.sleep_forever()
