"""A room our admin blocked (Synapse's admin API, `DELETE /_synapse/admin/v2/rooms/
{roomId}` with `block: true`) takes no invites from other servers either.

Synapse's admin API "Delete Room API": `block` prevents "future attempts to
join the room"; a room we are not in can be blocked before anybody here is
invited. Server-server API "Inviting to a room": the invited user's server
may refuse the invite (403 `M_FORBIDDEN`), and the inviter's server then
refuses its client's invite. Tested with Synapse over TLS.
"""

from __future__ import annotations

from tests.support.matrix import ok, path_part
from tests.support.synapse_admin import AdminApi, admin_user


async def test_synapse_cannot_invite_our_user_into_a_room_our_admin_blocked(both):
    admin = AdminApi(await admin_user(both.ours.server))
    our_user = await both.our_account()
    their_user = await both.synapse_account()
    blocked = await their_user.create_room(preset="private_chat", name="Blocked here")
    allowed = await their_user.create_room(preset="private_chat", name="Not blocked")

    ok(await admin.delete(f"/v2/rooms/{path_part(blocked)}", {"block": True}))

    refused = await their_user.room_action(blocked, "invite", {"user_id": our_user.user_id})
    assert refused.status_code == 403, refused.text
    ok(await their_user.room_action(allowed, "invite", {"user_id": our_user.user_id}))
