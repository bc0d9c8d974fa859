"""`/_matrix/key/v2/*`: our server keys, and other servers' keys as a notary.

Spec: `content/server-server-api.md` § Retrieving server keys;
`data/api/server-server/keys_server.yaml` and `keys_query.yaml`. These
endpoints are unauthenticated (servers fetch keys before they can check
signatures); with `allow_federation = false` they answer 403.
"""

from __future__ import annotations

from typing import Any

from ...core.ids import is_valid_server_name
from ...errors import bad_json, invalid_param
from ...service.federation.notary import MAX_SERVERS_PER_QUERY
from ..query import optional_query_int
from ..request import json_object, services
from .auth import open_blueprint

blueprint = open_blueprint("federation_keys", __name__)


@blueprint.get("/_matrix/key/v2/server")
@blueprint.get("/_matrix/key/v2/server/")
@blueprint.get("/_matrix/key/v2/server/<key_id>")
async def server_keys(key_id: str | None = None) -> dict:
    """Our key document (the deprecated `/{keyId}` form answers the same: all keys; the
    trailing slash is how Sydent asks, and Synapse serves it too)."""
    return services().federation.key_ring.own_key_document()


def _minimum_valid_until_ts(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"{where} must be an integer (milliseconds).")
    return value


def _server_name(server_name: str) -> str:
    if not is_valid_server_name(server_name):
        raise invalid_param(f"{server_name[:100]!r} is not a server name.")
    return server_name


@blueprint.get("/_matrix/key/v2/query/<server_name>")
async def query_one(server_name: str) -> dict:
    minimum = optional_query_int("minimum_valid_until_ts", minimum=0)
    documents = await services().federation.notary.query({_server_name(server_name): ((), minimum)})
    return {"server_keys": documents}


@blueprint.post("/_matrix/key/v2/query")
async def query_many() -> dict:
    body = await json_object()
    wanted = body.get("server_keys")
    if not isinstance(wanted, dict):
        raise bad_json("`server_keys` must be an object of server names.")
    if len(wanted) > MAX_SERVERS_PER_QUERY:
        raise invalid_param(f"At most {MAX_SERVERS_PER_QUERY} servers per query.")
    criteria: dict[str, tuple[list[str], int | None]] = {}
    for server_name, by_key in wanted.items():
        if not isinstance(by_key, dict):
            raise bad_json(f"`server_keys.{server_name[:100]}` must be an object of key ids.")
        minimums = []
        for key_id, key_criteria in by_key.items():
            if not isinstance(key_criteria, dict):
                raise bad_json(f"the criteria of {key_id[:100]} must be an object.")
            minimum = _minimum_valid_until_ts(
                key_criteria.get("minimum_valid_until_ts"), "minimum_valid_until_ts"
            )
            if minimum is not None:
                minimums.append(minimum)
        criteria[_server_name(server_name)] = (list(by_key), max(minimums, default=None))
    return {"server_keys": await services().federation.notary.query(criteria)}
