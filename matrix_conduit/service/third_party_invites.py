"""Third-party invites (by email or phone number) and the bindings that redeem them.

Spec: `content/client-server-api/modules/third_party_invites.md` ("Server
behaviour"), `data/api/client-server/third_party_membership.yaml` (`/invite`
with `id_server`, `id_access_token`, `medium`, `address`), `create_room.yaml`
(`invite_3pid`), `administrative_contact.yaml` (`/account/3pid/bind`,
`/unbind`), `content/server-server-api.md` § Third-party invites
(`/3pid/onbind`, `exchange_third_party_invite`).

An invite asks the identity server whom the address belongs to
(`service/identity_server.py`): a bound user is invited as any user is; for
an unbound address the invite is stored on the identity server and its
token, display name and public keys go into the room as an
`m.room.third_party_invite` (state key: the token). When the address is
bound later, the identity server calls the invitee's homeserver's
`/3pid/onbind` with the invite `signed` by its key; that homeserver turns it
into an `m.room.member` invite carrying the `signed` proof, sent as the
original inviter: built here when the inviter is one of ours in a room we
are in (once one of the invite's public keys is confirmed still valid at its
`key_validity_url`, as the spec requires), otherwise asked of the inviter's server with
`exchange_third_party_invite` (whose resident side is
`federation/membership.py`). The auth rules (`core/auth.py`, rule
"invite.1") check the proof against the public keys of the room's
`m.room.third_party_invite`.

Bindings made through `/account/3pid/bind` are remembered per user
(`userid_threepidbinding`: user, medium, address → identity server) so that
`/account/3pid/unbind` without an `id_server` knows where to ask.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..core.ids import is_on_server
from ..errors import MatrixError, forbidden, invalid_param, not_found
from ..storage import Database
from ..storage.kv import join_key
from .federation.client import FederationClient
from .federation.errors import FederationError, RemoteError
from .globals import Globals
from .identity_server import IdentityServers, check_id_server, check_medium
from .rooms import Rooms
from .users import Users

logger = logging.getLogger(__name__)

TREES = ("userid_threepidbinding",)
THIRD_PARTY_INVITE = "m.room.third_party_invite"


@dataclass(frozen=True, slots=True)
class ThirdPartyId:
    """Who to invite: an address on an identity server, and the client's token for it."""

    id_server: str
    id_access_token: str
    medium: str
    address: str


class ThirdPartyInvites:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        rooms: Rooms,
        users: Users,
        identity_servers: IdentityServers,
        federation: FederationClient | None,
    ) -> None:
        """`federation` None: onbind invites only into rooms whose inviter is ours."""
        self._bindings = db.tree("userid_threepidbinding")
        self._globals = globals_
        self._rooms = rooms
        self._users = users
        self._identity_servers = identity_servers
        self._federation = federation

    # ---- inviting

    async def invite(self, room_id: str, sender: str, invitee: ThirdPartyId) -> None:
        """Invite whoever holds `invitee`'s address: its user, or a third-party invite.

        403 when `sender` is not in the room (checked before the identity
        server hears of the invite, so none is stored for a refused one).
        """
        check_id_server(invitee.id_server)
        check_medium(invitee.medium)
        if self._rooms.timeline.state_event(room_id, "m.room.create") is None:
            raise not_found(f"Room {room_id} not found.")
        if self._rooms.state_cache.membership(room_id, sender) != "join":
            raise forbidden(f"{sender} is not in room {room_id}.")
        mxid = await self._identity_servers.lookup(
            invitee.id_server, invitee.id_access_token, invitee.medium, invitee.address
        )
        if mxid is not None:
            await self._rooms.membership.invite(room_id, sender, mxid)
            return
        stored = await self._identity_servers.store_invite(
            invitee.id_server,
            invitee.id_access_token,
            self._store_invite_body(room_id, sender, invitee),
        )
        public_keys = [
            {"public_key": key["public_key"], "key_validity_url": key["key_validity_url"]}
            for key in stored["public_keys"]
        ]
        first = public_keys[0] if public_keys else {}
        content = {
            "display_name": stored["display_name"],
            "public_key": stored.get("public_key", first.get("public_key")),
            "key_validity_url": stored.get("key_validity_url", first.get("key_validity_url")),
            "public_keys": public_keys,
        }
        if not isinstance(content["key_validity_url"], str):
            content["key_validity_url"] = (
                f"https://{invitee.id_server}/_matrix/identity/v2/pubkey/isvalid"
            )
        await self._rooms.builder.send(
            room_id, sender, THIRD_PARTY_INVITE, content, stored["token"]
        )

    async def invite_all(self, room_id: str, sender: str, invitees: Sequence[ThirdPartyId]) -> None:
        """`invite_3pid` of `createRoom`: each in turn."""
        for invitee in invitees:
            await self.invite(room_id, sender, invitee)

    def _store_invite_body(self, room_id: str, sender: str, invitee: ThirdPartyId) -> dict:
        """What `/store-invite` takes: the invite, and what the invitation message can show."""
        state = self._rooms.timeline.state_content
        body: dict[str, Any] = {
            "medium": invitee.medium,
            "address": invitee.address,
            "room_id": room_id,
            "sender": sender,
        }
        optional = {
            "room_alias": state(room_id, "m.room.canonical_alias").get("alias"),
            "room_avatar_url": state(room_id, "m.room.avatar").get("url"),
            "room_join_rules": state(room_id, "m.room.join_rules").get("join_rule"),
            "room_name": state(room_id, "m.room.name").get("name"),
            "room_type": state(room_id, "m.room.create").get("type"),
            "sender_display_name": self._users.displayname(sender),
            "sender_avatar_url": self._users.avatar_url(sender),
        }
        body.update({key: value for key, value in optional.items() if isinstance(value, str)})
        return body

    # ---- redeeming (`/3pid/onbind`)

    async def on_bind(self, body: Any) -> None:
        """An identity server tells us one of our users bound an address: redeem its invites.

        400 `M_INVALID_PARAM` for a malformed body or a user not ours. An
        invite that cannot be redeemed (no such third-party invite, a bad
        signature, the inviter's server unreachable) is logged and skipped:
        the others still are, and the identity server, which cannot fix
        them, gets its 200.
        """
        if not isinstance(body, dict):
            raise invalid_param("The body must be a JSON object.")
        mxid = body.get("mxid")
        invites = body.get("invites", [])
        if not isinstance(mxid, str) or not self._globals.is_ours(mxid):
            raise invalid_param("`mxid` must be a user of this server.")
        if not isinstance(invites, list):
            raise invalid_param("`invites` must be a list.")
        for invite in invites:
            try:
                await self._redeem(mxid, invite)
            except (MatrixError, FederationError) as error:
                logger.warning("third-party invite for %s not redeemed: %s", mxid, error)

    async def _redeem(self, mxid: str, invite: Any) -> None:
        if not isinstance(invite, dict):
            raise invalid_param("an invite is not an object")
        room_id, sender, signed = invite.get("room_id"), invite.get("sender"), invite.get("signed")
        if not isinstance(room_id, str) or not isinstance(sender, str):
            raise invalid_param("an invite lacks room_id or sender")
        if not isinstance(signed, dict) or signed.get("mxid") != mxid:
            raise invalid_param(f"the invite to {room_id} is not signed for {mxid}")
        content: dict[str, Any] = {"membership": "invite", "third_party_invite": {"signed": signed}}
        if self._globals.is_ours(sender) and self._is_resident(room_id):
            pending = self._rooms.timeline.state_content(
                room_id, THIRD_PARTY_INVITE, str(signed.get("token"))
            )
            if not await self._a_key_is_still_valid(pending):
                raise forbidden(f"the identity server revoked the keys of the invite to {room_id}")
            if isinstance(pending.get("display_name"), str):
                content["third_party_invite"]["display_name"] = pending["display_name"]
            await self._rooms.builder.send(room_id, sender, "m.room.member", content, mxid)
            return
        if self._federation is None:
            raise forbidden(f"{sender} is on another server and federation is disabled")
        partial = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": sender,
            "state_key": mxid,
            "content": content,
        }
        destination = sender.split(":", 1)[1]
        path = f"/_matrix/federation/v1/exchange_third_party_invite/{quote(room_id, safe='')}"
        try:
            await self._federation.request(destination, "PUT", path, body=partial)
        except RemoteError as error:
            raise forbidden(f"{destination} refused the invite to {room_id}: {error}") from None

    async def _a_key_is_still_valid(self, pending: dict[str, Any]) -> bool:
        """The spec's check before redeeming: one of the invite's public keys is still valid
        at its `key_validity_url` (no keys, or no such invite: not valid)."""
        keys = [key for key in pending.get("public_keys", []) if isinstance(key, dict)]
        keys.append(pending)  # the top-level public_key / key_validity_url
        for key in keys:
            public_key, url = key.get("public_key"), key.get("key_validity_url")
            if (
                isinstance(public_key, str)
                and isinstance(url, str)
                and await self._identity_servers.key_is_valid(url, public_key)
            ):
                return True
        return False

    def _is_resident(self, room_id: str) -> bool:
        server_name = self._globals.server_name
        return any(
            is_on_server(member, server_name)
            for member in self._rooms.state_cache.joined_members(room_id)
        )

    # ---- bindings

    async def bind(
        self, user_id: str, id_server: str, id_access_token: str, sid: str, client_secret: str
    ) -> None:
        """Bind the address of a validated session on `id_server` to `user_id`, and remember it."""
        association = await self._identity_servers.bind(
            id_server, id_access_token, sid, client_secret, user_id
        )
        if association.get("mxid", user_id) != user_id:
            raise MatrixError(
                502, "M_UNKNOWN", f"Identity server {id_server} bound another user id."
            )
        key = join_key(user_id, association["medium"], association["address"])
        self._bindings.put(key, id_server.encode())

    async def unbind(self, user_id: str, medium: str, address: str, id_server: str | None) -> str:
        """Unbind on `id_server` (or where the binding was made): "success", or "no-support"
        when this server knows of no identity server to ask."""
        check_medium(medium)
        key = join_key(user_id, medium, address)
        if id_server is None:
            known = self._bindings.get(key)
            if known is None:
                return "no-support"
            id_server = known.decode()
        await self._identity_servers.unbind(id_server, user_id, medium, address)
        self._bindings.delete(key)
        return "success"
