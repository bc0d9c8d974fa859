"""`GET /user/mutual_rooms?user_id=`: the rooms the requester shares with a user.

MSC2666, served at its stable path `/_matrix/client/v1/user/mutual_rooms`
and at the unstable `/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms`
that clients call today (Synapse's path). Errors as Synapse gives them: no
`user_id` is 400 `M_MISSING_PARAM`; a repeated or malformed one, asking about
oneself, or a bad `from` is 400 `M_INVALID_PARAM`.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId
from ...errors import invalid_param, missing_param
from ..auth import authenticate
from ..query import query_offset
from ..request import services
from .routes import versioned_route

blueprint = Blueprint("mutual_rooms", __name__)


@versioned_route(blueprint, "client", "/user/mutual_rooms", methods=["GET"], versions=("v1",))
@versioned_route(
    blueprint,
    "client",
    "/uk.half-shot.msc2666/user/mutual_rooms",
    methods=["GET"],
    versions=("unstable",),
)
async def mutual_rooms() -> dict:
    requester = authenticate()
    values = request.args.getlist("user_id")
    if not values:
        raise missing_param("user_id")
    if len(values) > 1:
        raise invalid_param("Give `user_id` once.")
    other_user_id = values[0]
    try:
        UserId.parse(other_user_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"`user_id` is not a user id: {error}") from None
    if other_user_id == requester.user_id:
        raise invalid_param("You cannot request a list of shared rooms with yourself.")
    page = services().mutual_rooms.page(requester.user_id, other_user_id, query_offset("from"))
    answer: dict = {"joined": page.joined}
    if page.next_batch is not None:
        answer["next_batch"] = str(page.next_batch)
    return answer
