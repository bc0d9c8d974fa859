"""`GET /mutual_rooms?user_id=`: the rooms the requester shares with a user.

Spec: `data/api/client-server/mutual_rooms.yaml` (v1.19, MSC2666), at
`/_matrix/client/v1/mutual_rooms`; also at `/_matrix/client/unstable/mutual_rooms`
(Synapse's) and the older unstable
`/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms` that
clients checking `uk.half-shot.msc2666.query_mutual_rooms` call. Errors as
Synapse gives them: no `user_id` is 400 `M_MISSING_PARAM`; a repeated or
malformed one, asking about oneself, or a bad `from` is 400 `M_INVALID_PARAM`.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId
from ...errors import invalid_param, missing_param
from ..auth import authenticate
from ..request import services
from .routes import versioned_route

blueprint = Blueprint("mutual_rooms", __name__)


@versioned_route(blueprint, "client", "/mutual_rooms", methods=["GET"], versions=("v1", "unstable"))
@versioned_route(
    blueprint,
    "client",
    "/uk.half-shot.msc2666/user/mutual_rooms",
    methods=["GET"],
    versions=("unstable",),
)
async def mutual_rooms() -> dict:
    requester = authenticate()
    other_user_id = _single("user_id", required=True)
    assert other_user_id is not None
    try:
        UserId.parse(other_user_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"`user_id` is not a user id: {error}") from None
    if other_user_id == requester.user_id:
        raise invalid_param("You cannot request a list of shared rooms with yourself.")
    page = services().mutual_rooms.page(requester.user_id, other_user_id, _single("from"))
    answer: dict = {"joined": page.joined, "count": page.count}
    if page.next_batch is not None:
        answer["next_batch"] = page.next_batch
    return answer


def _single(name: str, *, required: bool = False) -> str | None:
    values = request.args.getlist(name)
    if not values:
        if required:
            raise missing_param(name)
        return None
    if len(values) > 1:
        raise invalid_param(f"Give `{name}` once.")
    return values[0]
