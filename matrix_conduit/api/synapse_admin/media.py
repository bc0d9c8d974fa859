"""Media administration: deleting uploads, quarantining media.

Synapse's admin API "Media": `DELETE /_synapse/admin/v1/media/{serverName}/
{mediaId}` (local media only; `deleted_media` and `total`), `POST
v1/media/quarantine/{serverName}/{mediaId}` and `.../unquarantine/...`
(quarantined media answers 404 to everybody; `service/media.py`).
"""

from __future__ import annotations

from ..request import services
from ._auth import require_admin
from ._routes import admin_route


@admin_route("/media/<server_name>/<media_id>", methods=["DELETE"])
async def delete_media(server_name: str, media_id: str) -> dict:
    require_admin()
    services().media.delete_local(server_name, media_id)
    return {"deleted_media": [media_id], "total": 1}


@admin_route("/media/quarantine/<server_name>/<media_id>", methods=["POST"])
async def quarantine_media(server_name: str, media_id: str) -> dict:
    requester = require_admin()
    services().media.set_quarantined(server_name, media_id, True, by=requester.user_id)
    return {}


@admin_route("/media/unquarantine/<server_name>/<media_id>", methods=["POST"])
async def unquarantine_media(server_name: str, media_id: str) -> dict:
    requester = require_admin()
    services().media.set_quarantined(server_name, media_id, False, by=requester.user_id)
    return {}
