"""`GET /capabilities`: what this server lets clients do.

Spec: `content/client-server-api/_index.md` ("Capabilities negotiation") and
`data/api/client-server/capabilities.yaml`.
"""

from __future__ import annotations

from quart import Blueprint

from ...core.room_versions import KNOWN_ROOM_VERSIONS
from ..auth import authenticate
from ..request import config
from .routes import client_route

blueprint = Blueprint("capabilities", __name__)


@client_route(blueprint, "/capabilities", methods=["GET"])
async def capabilities() -> dict:
    authenticate(allow_guest=True)
    return {
        "capabilities": {
            "m.change_password": {"enabled": True},
            "m.room_versions": {
                "default": config().default_room_version,
                "available": {
                    identifier: "stable" if version.stable else "unstable"
                    for identifier, version in KNOWN_ROOM_VERSIONS.items()
                },
            },
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.profile_fields": {"enabled": True},  # v1.16: any field, custom ones too
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": False},
        }
    }
