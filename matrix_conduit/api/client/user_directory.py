"""`POST /user_directory/search`.

Spec: `data/api/client-server/users.yaml`; who is searchable is
`service/user_directory.py`.
"""

from __future__ import annotations

from quart import Blueprint

from ..auth import authenticate
from ..fields import optional_int, required_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("user_directory", __name__)


@client_route(blueprint, "/user_directory/search", methods=["POST"])
async def search() -> dict:
    requester = authenticate()
    body = await json_object()
    term = required_str(body, "search_term")
    limit = optional_int(body, "limit") or 10
    return services().user_directory.search(requester.user_id, term, limit)
