"""The homeserver's behaviour, one service per concern; no HTTP objects in here.

`Services` builds every service over one open database and is what the API
layer calls. Each service declares the trees it owns at the top of its module
(`TREES`); no other service reads them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

import trio

from ..config import Config
from ..core.ip_ranges import IpRanges
from ..storage import Database
from .account_data import AccountData
from .admin_room import AdminRoom, DisabledRooms, all_commands
from .admin_rooms import AdminRooms
from .admin_users import AdminUsers
from .appservice_directory import AppServiceDirectory
from .appservice_queries import AppServiceQueries
from .appservice_sender import AppServiceInterest, AppServiceSender
from .appservices import AppServices
from .backup import OnlineBackup
from .cache_stats import CacheStats
from .cleanup import Cleanup
from .cluster import Cluster
from .cross_signing import CrossSigning
from .device_sync import DeviceSync
from .devices import Devices
from .event_stream import EventStream
from .federation import Federation
from .federation.backfill import Backfill
from .federation.edus import EduHandlers
from .federation.edus_in import IncomingEdus
from .federation.edus_out import (
    DeviceListsForNewServers,
    DeviceListStreams,
    EduContents,
    OutgoingEdus,
)
from .federation.event_fetcher import EventFetcher
from .federation.inbound import Inbound
from .federation.membership import ResidentMembership
from .federation.outbox import Outbox
from .federation.profiles import RemoteProfiles
from .federation.public_rooms import RemotePublicRooms
from .federation.remote_devices import RemoteDeviceLists
from .federation.remote_hierarchy import RemoteHierarchy
from .federation.remote_join import RemoteMembership
from .federation.remote_keys import RemoteKeys
from .federation.remote_media import RemoteMediaFetcher
from .federation.resolver import DnsResolver
from .federation.sender import FederationSender
from .federation.server_acl import ServerAcl
from .filters import Filters
from .globals import Globals
from .guarded_http import GuardedHttp
from .identity_server import IdentityServers
from .initial_sync import InitialSync
from .jwt_login import JwtLogin
from .key_backup import KeyBackup
from .key_changes import KeyChanges
from .key_signatures import KeySignatures
from .keys import Keys
from .media import Media
from .media_files import MEDIA_DIRECTORY, MediaFiles
from .mutual_rooms import MutualRooms
from .notification_counts import NotificationCounts
from .notifications import Notifications
from .notifier import Notifier
from .openid import OpenId
from .outgoing_http import OutgoingHttp
from .passwords import PasswordHashing
from .presence import Presence
from .profile_fields import ProfileFields
from .push_rules import PushRules
from .push_sender import PushEvaluation, PushRating, PushSender
from .pushers import Pushers
from .rate_limiter import RateLimiter
from .receipts import Receipts
from .registration import Registration
from .registration_tokens import RegistrationTokens
from .reports import Reports
from .room_purge import RoomPurge
from .rooms import Rooms
from .rooms.guest_access import GuestAccess
from .shared_secret_registration import SharedSecretRegistration
from .sliding_sync import SlidingSync
from .sliding_sync.connections import Connections
from .sliding_sync.index import RoomIndex
from .sync import Sync
from .third_party_invites import ThirdPartyInvites
from .to_device import ToDevice
from .transaction_ids import TransactionIds
from .turn import Turn
from .typing import Typing
from .uiaa import UserInteractiveAuth
from .url_previews import UrlPreviews
from .user_directory import UserDirectory
from .users import Users


class Services:
    """Every service of one running server, over one database."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.background_tasks: list[Callable[[], Awaitable[None]]] = []
        """Loops `run_background` runs for the server's lifetime (expiry, queues...)."""
        self.cluster = Cluster(db, Globals.stored_counter(db))
        """The other server processes of this database, if any (PostgreSQL)."""
        self.background_tasks.append(self.cluster.run)
        self.globals = Globals(db, config.server_name, self.cluster)
        self.rate_limiter = RateLimiter(config.rate_limits)
        passwords = PasswordHashing()
        self.devices = Devices(db, self.globals)
        self.users = Users(
            db,
            config,
            self.devices,
            passwords,
            stream_position=self.globals.next_count,
            cluster=self.cluster,
        )
        self.profile_fields = ProfileFields(self.users)
        self.registration = Registration(db, config, self.users, self.devices, passwords)
        self.uiaa = UserInteractiveAuth(db, self.users, self.registration)
        self.jwt_login = JwtLogin(config, self.users, self.registration)
        media_files = MediaFiles(os.path.join(config.database_path, MEDIA_DIRECTORY))
        self.media = Media(db, config.server_name, media_files)
        self.notifier = Notifier(self.cluster)
        self.transaction_ids = TransactionIds(db)
        self.rooms = Rooms(
            config,
            db,
            self.globals,
            self.notifier,
            self.transaction_ids,
            self.users,
            cluster=self.cluster,
        )
        self.users.profile_changed.append(self.rooms.membership.update_profile)
        self.users.account_deactivated.append(self.rooms.membership.leave_everything)
        self.rooms.visibility.erased_at = self.users.erased_at
        self.account_data = AccountData(db, self.globals, self.notifier)
        self.users.account_erased.append(self._erase_account_data)
        self.filters = Filters(db)
        state_cache = self.rooms.state_cache
        self.typing = Typing(self.globals, self.notifier, state_cache, cluster=self.cluster)
        self.receipts = Receipts(
            db,
            self.globals,
            self.notifier,
            state_cache,
            self.rooms.timeline,
            self.rooms.visibility,
            self.account_data,
        )
        self.presence = Presence(db, self.globals, self.notifier, state_cache, cluster=self.cluster)
        self.background_tasks += [self.typing.run, self.presence.run]
        self.key_changes = KeyChanges(db, self.globals, self.devices, state_cache, self.notifier)
        self.cross_signing = CrossSigning(db, self.devices, self.key_changes)
        self.keys = Keys(db, self.globals, self.devices, self.cross_signing, self.key_changes)
        self.key_signatures = KeySignatures(db, self.keys, self.cross_signing, self.key_changes)
        self.to_device = ToDevice(db, self.globals, self.devices, self.notifier)
        self.key_backup = KeyBackup(db)
        self.device_sync = DeviceSync(self.keys, self.key_changes, self.to_device, self.rooms)
        self.devices.device_deleted += [
            self.keys.device_deleted,
            self.to_device.device_deleted,
            self.key_changes.device_deleted,
        ]
        self.cache_stats = CacheStats(self.rooms.memory)
        """Entries, estimated bytes and hit rates of the caches (`memory-usage`, metrics)."""
        self._set_up_push()
        self.federation = Federation(config, db, self.globals, self.outgoing_http)
        if config.allow_federation:
            self.background_tasks.append(self.outgoing_http.warm_up)
        self.server_acl = ServerAcl(self.rooms.timeline)
        self.inbound = Inbound(config, db, self.globals, self.rooms, self.federation)
        self.background_tasks.append(self.inbound.transactions.run)
        self._set_up_federation_traffic()
        self._set_up_federation_membership()
        self._set_up_federation_directories()
        self._set_up_federation_history()
        self._set_up_guests()
        self._set_up_url_previews()
        self._set_up_third_party_invites()
        self._set_up_appservices()
        self._set_up_administration()
        self._set_up_admin_room()
        self._set_up_backup()
        self.turn = Turn(config.effective_turn)
        self.reports = Reports(db, self.globals, self.rooms, self.users.exists)
        self.user_directory = UserDirectory(
            self.rooms, self.users.displayname, self.users.avatar_url
        )
        self.openid = OpenId(db)
        self.mutual_rooms = MutualRooms(self.rooms.state_cache)
        self.cleanup = Cleanup(
            config.cleanup_second_interval,
            [
                self.uiaa.purge_expired,
                self.media.purge_expired,
                self.url_previews.purge_expired,
                self.openid.purge_expired,
                self.inbound.queue.purge_expired,
                self.registration_tokens.purge_expired,
            ],
        )
        self.background_tasks.append(self.cleanup.run)
        self.sync = Sync(
            self.globals,
            self.notifier,
            self.rooms,
            self.notification_counts,
            self,
        )
        self._set_up_legacy_sync()
        self._set_up_sliding_sync()

    def _set_up_appservices(self) -> None:
        """Bridges: registrations (files and run time), namespace checks, the push queue
        (events, ephemeral data, to-device, device lists) and queries to them."""
        self.appservices = AppServices(
            self.db,
            self.config.server_name,
            self.config.app_service_config_files,
            self.registration.create_appservice_user,
        )
        self.registration.appservices = self.appservices
        self.rooms.aliases.appservices = self.appservices
        interest = AppServiceInterest(self.config.server_name, self.appservices, self.rooms)
        self.appservice_sender = AppServiceSender(
            self.db,
            self.globals,
            self.appservices,
            interest,
            self.rooms,
            self.outgoing_http,
            self.typing.typing_users,
            self.presence.get,
            cluster=self.cluster,
        )
        sender = self.appservice_sender
        self.rooms.timeline.appending.append(sender.queue_event)
        self.typing.changed.append(sender.typing_changed)
        self.receipts.written.append(sender.receipt_written)
        self.presence.changed.append(sender.presence_changed)
        self.devices.device_list_changed.append(sender.device_list_changed)
        self.to_device.local_messages.append(sender.to_device_queued)
        self.background_tasks.append(sender.run)
        self.appservice_queries = AppServiceQueries(
            self.appservices, self.outgoing_http, self.users.exists, self.rooms.aliases
        )
        self.rooms.aliases.query_appservices = self.appservice_queries.resolve_alias
        self.appservice_directory = AppServiceDirectory(self.db)
        self.rooms.directory.network_rooms = self.appservice_directory.rooms

    def _set_up_backup(self) -> None:
        """Online backup (`matrix-conduit backup`, over database_path/backup.sock)."""
        self.backup = OnlineBackup(self.db, self.config.database_path)
        self.background_tasks.append(self.backup.serve_socket)

    def _set_up_admin_room(self) -> None:
        """Conduit's admin room `#admins` and its commands; disabled rooms refuse local
        joins and sends and every federation request about them."""
        self.disabled_rooms = DisabledRooms(
            self.db, self.users.server_user_id, cluster=self.cluster
        )
        disabled = self.disabled_rooms.is_disabled
        self.rooms.builder.checks.append(self.disabled_rooms.check_local_event)
        blocked = self.rooms.membership.is_blocked
        self.rooms.membership.is_blocked = lambda room_id: disabled(room_id) or blocked(room_id)
        self.server_acl.room_disabled = disabled
        self.inbound.transactions.room_disabled = disabled
        self.inbound.served.room_disabled = disabled
        self.admin_room = AdminRoom(self, all_commands())
        self.rooms.timeline.appending.append(self.admin_room.queue_command)
        self.registration.registered.append(self.admin_room.note_registered)
        self.background_tasks.append(self.admin_room.run)

    def _set_up_administration(self) -> None:
        """Synapse's admin API: shared-secret registration, users, rooms (deletion in the
        background, blocked rooms), media quarantine, registration tokens."""
        self.registration_tokens = RegistrationTokens(self.db)
        self.registration.registration_tokens = self.registration_tokens
        self.uiaa.registration_tokens = self.registration_tokens
        self.shared_secret_registration = SharedSecretRegistration(
            self.config.effective_registration_shared_secret,
            self.registration,
            self.users,
            monotonic=time.monotonic,
        )
        self.admin_users = AdminUsers(self.db, self.users, self.devices, self.registration)
        self.registration.registered.append(self.admin_users.note_registered)
        self.admin_rooms = AdminRooms(self.config.server_name, self.rooms, self.devices)
        self.room_purge = RoomPurge(
            self.db,
            self.config.server_name,
            self.rooms,
            self.users,
            room_version=self.config.default_room_version,
        )
        self.rooms.membership.is_blocked = self.room_purge.is_blocked
        self.background_tasks.append(self.room_purge.run)

    def _set_up_third_party_invites(self) -> None:
        """Invites by email or phone through identity servers, which users name: reached
        within the federation IP range lists."""
        fetcher = GuardedHttp(
            self.outgoing_http,
            DnsResolver(),
            IpRanges.parse(
                self.config.federation_ip_range_denylist,
                self.config.federation_ip_range_allowlist,
            ),
            denylist_name="federation_ip_range_denylist",
        )
        self.third_party_invites = ThirdPartyInvites(
            self.db,
            self.globals,
            self.rooms,
            self.users,
            IdentityServers(self.globals, fetcher),
            self.federation.client if self.config.allow_federation else None,
        )

    def _set_up_url_previews(self) -> None:
        """`preview_url` (it answers only with `url_preview_enabled`), fetching through
        its own IP range lists."""
        fetcher = GuardedHttp(
            self.outgoing_http,
            DnsResolver(),
            IpRanges.parse(
                self.config.url_preview_ip_range_denylist,
                self.config.url_preview_ip_range_allowlist,
            ),
            denylist_name="url_preview_ip_range_denylist",
            user_agent="matrix-conduit URL preview",
        )
        self.url_previews = UrlPreviews(
            self.db,
            self.media,
            fetcher,
            max_bytes=self.config.url_preview_max_size,
            timeout=self.config.url_preview_timeout,
        )

    async def _erase_account_data(self, user_id: str) -> None:
        """An erased account's account data goes, global and of every room it was in."""
        state_cache = self.rooms.state_cache
        rooms = {*state_cache.left_rooms(user_id), *state_cache.joined_rooms(user_id)}
        self.account_data.erase(user_id, rooms)

    def _set_up_sliding_sync(self) -> None:
        """Simplified sliding sync (MSC4186): the per-user room index kept in each event's
        batch, connections on disk (dropped with their device, expired by the cleanup)."""
        index = RoomIndex(self.db, self.globals, self.rooms)
        self.rooms.timeline.appending.append(index.note_event)
        self.registration.registered.append(index.user_registered)
        connections = Connections(self.db, self.globals)
        self.devices.device_deleted.append(connections.device_deleted)
        self.background_tasks.append(connections.run)
        self.sliding_sync = SlidingSync(
            self.globals, self.notifier, self.rooms, index, connections, self
        )

    def _set_up_legacy_sync(self) -> None:
        """The deprecated `/events` stream (peeking included) and `/initialSync` snapshots."""
        self.event_stream = EventStream(self.globals, self.notifier, self.rooms, self.account_data)
        self.rooms.timeline.appending.append(self.event_stream.note_event)
        self.initial_sync = InitialSync(self.globals, self.rooms, self.account_data, self.presence)

    def _set_up_push(self) -> None:
        """Push rules drive unread counts, `/notifications` and the push gateway queue."""
        self.push_rules = PushRules(self.account_data)
        self.registration.registered.append(self.push_rules.initialise)
        self.pushers = Pushers(self.db, self.cluster)
        self.outgoing_http = OutgoingHttp(self.config)
        evaluation = PushEvaluation(self.rooms, self.push_rules, self.users.displayname)
        self.notification_counts = NotificationCounts(self.rooms.timeline, PushRating(evaluation))
        self.notifications = Notifications(self.rooms, evaluation, self.receipts)
        self.push_sender = PushSender(
            self.config,
            self.db,
            self.rooms,
            self.pushers,
            evaluation,
            self._unread_total,
            self.outgoing_http,
        )
        self.rooms.timeline.appending.append(self.push_sender.queue_for)
        self.background_tasks.append(self.push_sender.run)

    def _set_up_federation_traffic(self) -> None:
        """The outbox and its sender (our events and EDUs out), and the EDU handlers
        (`self.edus.handle(origin, edu_type, content)`, what `/send` calls for each EDU)."""
        enabled = self.config.allow_federation
        federation = self.federation
        self.outbox = Outbox(self.db, self.globals, self.rooms.state_cache, enabled=enabled)
        self.rooms.timeline.appending.append(self.outbox.queue_event)
        streams = DeviceListStreams(self.db, self.globals)
        self.edu_contents = EduContents(self.devices, self.keys, self.cross_signing, streams)
        self.federation_sender = FederationSender(
            self.config.server_name,
            self.outbox,
            federation.client,
            federation.destinations,
            self.rooms.timeline,
            self.edu_contents.build,
            enabled=enabled,
        )
        edus_out = OutgoingEdus(
            self.globals, self.outbox, self.federation_sender, self.presence, streams
        )
        self.typing.changed.append(edus_out.typing_changed)
        self.receipts.written.append(edus_out.receipt_written)
        self.presence.changed.append(edus_out.presence_changed)
        self.devices.device_list_changed.append(edus_out.device_list_changed)
        self.keys.device_keys_changed.append(edus_out.device_list_changed)
        self.to_device.remote_messages.append(edus_out.send_to_device)
        self.cross_signing.uploaded.append(edus_out.signing_keys_uploaded)
        self.rooms.timeline.appending.append(
            DeviceListsForNewServers(
                self.globals,
                self.outbox,
                self.devices,
                streams,
                self.rooms.state_cache,
                self.rooms.state,
                self.rooms.timeline,
            ).member_joined
        )
        self.remote_device_lists = RemoteDeviceLists(
            self.db, self.globals, federation.client, self.key_changes, self.rooms.state_cache
        )
        self.rooms.timeline.appending.append(self.remote_device_lists.membership_changed)
        self.remote_keys = RemoteKeys(
            self.globals, self.keys, federation.client, self.remote_device_lists
        )
        self.edus = EduHandlers()
        IncomingEdus(
            self.config.server_name,
            self.rooms.state_cache,
            self.typing,
            self.receipts,
            self.presence,
            self.to_device,
            self.server_acl.allows,
        ).register(self.edus, self.remote_device_lists)
        self.inbound.transactions.handle_edu = self.edus.handle
        self.background_tasks += [self.federation_sender.run, self.remote_device_lists.run]

    def _set_up_federation_membership(self) -> None:
        """Joins, leaves and invites with other servers, both as the resident server
        (`resident_membership`) and for rooms we are not in (`remote_membership`)."""
        federation = self.federation
        self.resident_membership = ResidentMembership(
            self.globals, self.rooms, self.users, federation.key_ring, self.notifier, self.outbox
        )
        self.remote_membership = RemoteMembership(
            self.globals,
            self.rooms,
            federation.client,
            federation.key_ring,
            self.inbound.events,
            self.notifier,
        )
        if self.config.allow_federation:
            self.rooms.membership.remote = self.remote_membership
        self.inbound.transactions.out_of_band = self.remote_membership.receive_out_of_band
        self.remote_profiles = RemoteProfiles(federation.client)
        if self.config.allow_federation:
            self.media.remote = RemoteMediaFetcher(federation.client, self.config.max_request_size)

    def _set_up_guests(self) -> None:
        """Guests join rooms that allow them, and leave those that stop (`rooms/guest_access`)."""
        rooms = self.rooms
        self.guest_access = GuestAccess(
            self.db,
            self.config.server_name,
            rooms.timeline,
            rooms.state_cache,
            rooms.membership,
            self.users.is_guest,
        )
        rooms.timeline.appending.append(self.guest_access.note_event)
        self.background_tasks.append(self.guest_access.run)

    def _set_up_federation_history(self) -> None:
        """History from before our join, fetched from the room's other servers when
        `/messages` pages back to it (`service/federation/backfill.py`)."""
        federation = self.federation
        self.backfill = Backfill(
            self.globals.server_name,
            self.rooms,
            federation.client,
            EventFetcher(federation.client, federation.key_ring),
            self.inbound.events,
            enabled=self.config.allow_federation,
        )

    def _set_up_federation_directories(self) -> None:
        """Other servers' public room lists and space hierarchies, for our clients."""
        client = self.federation.client
        self.remote_public_rooms = RemotePublicRooms(client)
        remote = RemoteHierarchy(client, self.config.server_name)
        enabled = self.config.allow_federation
        self.rooms.hierarchy.attach(self.config.server_name, remote if enabled else None)

    def _unread_total(self, user_id: str) -> int:
        """Notifying events unread across the user's rooms (push `counts.unread`)."""
        return sum(
            self.notification_counts.counts(
                room_id, user_id, self.receipts.read_event(room_id, user_id)
            )["notification_count"]
            for room_id in list(self.rooms.state_cache.joined_rooms(user_id))
        )

    async def run_background(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The services' background work (expiry, timeouts, queues) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                for task in self.background_tasks:
                    nursery.start_soon(task)
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self.outgoing_http.aclose()
