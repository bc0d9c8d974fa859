"""`POST /_matrix/federation/v1/user/keys/query` and `/user/keys/claim`: our users' keys for others.

Spec: `content/server-server-api.md` § End-to-End Encryption,
`data/api/server-server/user_keys.yaml` ("Requested users must be local to
the receiving homeserver"). Behind the X-Matrix gate (`signed_blueprint`).
The asking server gets what its users may see: device keys with their
owners' signatures, master and self-signing keys, never a user-signing key,
and no device names (they stay on this server, as in Synapse's default).
A claimed one-time key is given out once, to whichever server asks first.
A user of another server in the request is 400 `M_INVALID_PARAM`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...core.ids import server_name_of
from ...errors import invalid_param
from ..fields import required_user_map
from ..request import json_object, services
from .auth import signed_blueprint

blueprint = signed_blueprint("federation_e2e_keys", __name__)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _require_ours(wanted: Mapping[str, object]) -> None:
    is_ours = services().globals.is_ours
    for user_id in wanted:
        if not is_ours(server_name_of(user_id)):
            raise invalid_param(f"{user_id} is not a user of this server.")


@blueprint.post("/_matrix/federation/v1/user/keys/query")
async def query_user_keys() -> dict:
    body = await json_object()
    wanted = required_user_map(body, "device_keys", _is_str_list, "lists of device ids")
    _require_ours(wanted)
    answer = services().keys.query(None, wanted)
    del answer["failures"], answer["user_signing_keys"]
    return answer


@blueprint.post("/_matrix/federation/v1/user/keys/claim")
async def claim_user_keys() -> dict:
    body = await json_object()
    wanted = required_user_map(
        body, "one_time_keys", _is_str_map, "maps of device ids to algorithms"
    )
    _require_ours(wanted)
    return {"one_time_keys": services().keys.claim(wanted)["one_time_keys"]}
