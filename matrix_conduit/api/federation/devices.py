"""`GET /_matrix/federation/v1/user/devices/{userId}`: one of our users' whole device list.

Spec: `content/server-server-api.md` § Device Management ("if the receiving
server does not recognise any of the prev_ids ... it should query a
snapshot of the device list"), `data/api/server-server/user_devices.yaml`.
Behind the X-Matrix gate (`signed_blueprint`). The user must be ours (400
otherwise) and exist (404); the answer's `stream_id` is what our next
`m.device_list_update` for the user names as its `prev_id`.
"""

from __future__ import annotations

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId
from ...errors import invalid_param, not_found
from ..request import services
from .auth import signed_blueprint

blueprint = signed_blueprint("federation_devices", __name__)


@blueprint.get("/_matrix/federation/v1/user/devices/<user_id>")
async def user_devices(user_id: str) -> dict:
    try:
        parsed = UserId.parse(user_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"Invalid user id: {error}") from None
    all_services = services()
    if not all_services.globals.is_ours(parsed.server_name):
        raise invalid_param("This user is not hosted on this server.")
    if not all_services.users.exists(user_id):
        raise not_found("There is no such user.")
    return all_services.edu_contents.user_devices(user_id)
