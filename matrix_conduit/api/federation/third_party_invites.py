"""`/3pid/onbind`: an identity server tells us one of our users bound an address.

Spec: `content/server-server-api.md` § Third-party invites and
`data/api/server-server/third_party_invite.yaml` (`PUT
/_matrix/federation/v1/3pid/onbind`). Identity servers do not sign their
requests, so the route is on an `open_blueprint`; what makes an invite hold
is the identity server's signature inside each invite's `signed`, which the
auth rules check against the room's `m.room.third_party_invite`. Sydent (and
Synapse, which serves it so) uses POST, the spec PUT: both are served.
"""

from __future__ import annotations

from ..request import json_object, services
from .auth import open_blueprint

blueprint = open_blueprint("federation_third_party_invites", __name__)


@blueprint.route("/_matrix/federation/v1/3pid/onbind", methods=["PUT", "POST"])
async def on_bind() -> dict:
    await services().third_party_invites.on_bind(await json_object())
    return {}
