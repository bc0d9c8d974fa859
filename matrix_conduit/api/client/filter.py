"""Uploading and downloading filters.

Spec: `content/client-server-api/_index.md` ("Filtering"),
`data/api/client-server/filter.yaml` (`POST /user/{userId}/filter`,
`GET /user/{userId}/filter/{filterId}`). Only the owner uses their filters;
guests too, since they sync with filters.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import not_found
from ..auth import authenticate
from ..request import json_object, services
from .ownership import require_own
from .routes import client_route

blueprint = Blueprint("filter", __name__)


@client_route(blueprint, "/user/<user_id>/filter", methods=["POST"])
async def create_filter(user_id: str) -> dict:
    require_own(authenticate(allow_guest=True), user_id, "filters")
    return {"filter_id": services().filters.create(user_id, await json_object())}


@client_route(blueprint, "/user/<user_id>/filter/<filter_id>", methods=["GET"])
async def get_filter(user_id: str, filter_id: str) -> dict:
    require_own(authenticate(allow_guest=True), user_id, "filters")
    stored = services().filters.get(user_id, filter_id)
    if stored is None:
        raise not_found(f"No filter with id {filter_id!r}.")
    return stored
