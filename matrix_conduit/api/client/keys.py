"""End-to-end encryption keys over HTTP: upload, query, claim, changes, cross-signing.

Spec: `content/client-server-api/modules/end_to_end_encryption.md` ("Key
management API", "Cross-signing"); `data/api/client-server/keys.yaml` and
`cross_signing.yaml`. Guests may upload, query and claim keys (Guest Access
module). Query and claim reach users of other servers too
(`service/federation/remote_keys.py`), waiting at most the body's `timeout`
(milliseconds, 10 s by default) for their servers. Uploading cross-signing
keys asks for the password when it would replace keys the user already has
(user-interactive auth).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.e2e_keys import MASTER, SELF_SIGNING, USER_SIGNING
from ...errors import MatrixError, bad_json, invalid_param, missing_param
from ...service.federation.remote_keys import DEFAULT_TIMEOUT_SECONDS
from ...service.rooms.room_events import parse_token
from ...service.uiaa import PASSWORD_FLOWS
from ..auth import Requester, authenticate, user_interactive_auth
from ..fields import optional_int, optional_object, required_user_map
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("keys", __name__)

CROSS_SIGNING_BODY_FIELDS = (
    (MASTER, "master_key"),
    (SELF_SIGNING, "self_signing_key"),
    (USER_SIGNING, "user_signing_key"),
)


def _device_id(requester: Requester) -> str:
    if requester.device_id is None:
        raise MatrixError(400, "M_UNKNOWN", "Keys belong to a device; this access token has none.")
    return requester.device_id


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _timeout_seconds(body: dict) -> float:
    """How long other servers may take to answer: the body's `timeout` (ms), 10 s if absent."""
    timeout_ms = optional_int(body, "timeout")
    if timeout_ms is None:
        return DEFAULT_TIMEOUT_SECONDS
    if timeout_ms < 0:
        raise invalid_param("`timeout` must not be negative.")
    return timeout_ms / 1000


UPLOADED_KEY_FIELDS = ("device_keys", "one_time_keys", "fallback_keys")


@client_route(blueprint, "/keys/upload", methods=["POST"])
async def upload_keys() -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object()
    # keys.yaml: each is an object; another type is malformed (M_BAD_JSON), while
    # keys that are not this device's are a wrong value (the service's M_INVALID_PARAM).
    fields = {name: optional_object(body, name) for name in UPLOADED_KEY_FIELDS}
    counts = services().keys.upload(requester.user_id, _device_id(requester), **fields)
    return {"one_time_key_counts": counts}


@client_route(blueprint, "/keys/query", methods=["POST"])
async def query_keys() -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object()
    wanted = required_user_map(body, "device_keys", _is_str_list, "lists of device ids")
    return await services().remote_keys.query(requester.user_id, wanted, _timeout_seconds(body))


@client_route(blueprint, "/keys/claim", methods=["POST"])
async def claim_keys() -> dict:
    authenticate(allow_guest=True)
    body = await json_object()
    wanted = required_user_map(
        body, "one_time_keys", _is_str_map, "maps of device ids to algorithms"
    )
    return await services().remote_keys.claim(wanted, _timeout_seconds(body))


@client_route(blueprint, "/keys/changes", methods=["GET"])
async def key_changes() -> dict:
    requester = authenticate()
    since = request.args.get("from")
    if since is None:
        raise missing_param("from")
    until = request.args.get("to")
    return services().device_sync.device_lists(
        requester.user_id,
        parse_token(since, "from"),
        parse_token(until, "to") if until is not None else services().globals.current_count(),
    )


@client_route(
    blueprint,
    "/keys/device_signing/upload",
    methods=["POST"],
    # Element asks the unstable path first, to learn the auth stages it needs.
    versions=("r0", "v3", "unstable"),
)
async def upload_cross_signing_keys() -> dict:
    requester = authenticate()
    body = await json_object()
    uploaded = {}
    for usage, field in CROSS_SIGNING_BODY_FIELDS:
        key = optional_object(body, field)
        if key is not None:
            uploaded[usage] = key
    cross_signing = services().cross_signing
    if cross_signing.needs_authentication(requester.user_id, uploaded):
        await user_interactive_auth(body, PASSWORD_FLOWS, user_id=requester.user_id)
    cross_signing.upload(requester.user_id, uploaded)
    return {}


@client_route(blueprint, "/keys/signatures/upload", methods=["POST"])
async def upload_signatures() -> dict:
    requester = authenticate()
    body = await json_object()
    for user_id, signed in body.items():
        if not isinstance(signed, dict):
            raise bad_json(f"The signed keys of {user_id} must be an object of key ids.")
    return {"failures": services().key_signatures.upload(requester.user_id, body)}
