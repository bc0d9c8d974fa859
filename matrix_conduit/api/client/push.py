"""Push rules, pushers and the notification list.

Spec: `content/client-server-api/modules/push.md` and the OpenAPI of
`pushrules.yaml` (`/pushrules/...`), `pusher.yaml` (`/pushers`,
`/pushers/set`), `notifications.yaml` (`/notifications`).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError, bad_json
from ..auth import authenticate
from ..query import query_int, query_offset
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("push", __name__)


@client_route(blueprint, "/pushrules/", methods=["GET"])
async def all_rules() -> dict:
    requester = authenticate()
    return services().push_rules.ruleset(requester.user_id)


@client_route(blueprint, "/pushrules/global/", methods=["GET"])
async def global_rules() -> dict:
    requester = authenticate()
    return services().push_rules.ruleset(requester.user_id)["global"]


@client_route(blueprint, "/pushrules/global/<kind>/", methods=["GET"])
async def rules_of_kind(kind: str) -> list:
    """Not in pushrules.yaml any more, but Synapse serves it and clients still ask."""
    requester = authenticate()
    return services().push_rules.rules_of_kind(requester.user_id, kind)


@client_route(blueprint, "/pushrules/<scope>/<kind>/<rule_id>", methods=["GET"])
async def get_rule(scope: str, kind: str, rule_id: str) -> dict:
    requester = authenticate()
    return services().push_rules.find(requester.user_id, scope, kind, rule_id)


@client_route(blueprint, "/pushrules/<scope>/<kind>/<rule_id>", methods=["PUT"])
async def put_rule(scope: str, kind: str, rule_id: str) -> dict:
    requester = authenticate()
    if scope != "global":
        raise MatrixError(400, "M_INVALID_PARAM", "Only the `global` scope exists.")
    body = await json_object()
    services().push_rules.put_rule(
        requester.user_id,
        kind,
        rule_id,
        body,
        before=request.args.get("before"),
        after=request.args.get("after"),
    )
    return {}


@client_route(blueprint, "/pushrules/<scope>/<kind>/<rule_id>", methods=["DELETE"])
async def delete_rule(scope: str, kind: str, rule_id: str) -> dict:
    requester = authenticate()
    services().push_rules.delete_rule(requester.user_id, scope, kind, rule_id)
    return {}


@client_route(
    blueprint,
    "/pushrules/<scope>/<kind>/<rule_id>/<any(enabled, actions):attr>",
    methods=["GET"],
)
async def get_attribute(scope: str, kind: str, rule_id: str, attr: str) -> dict:
    requester = authenticate()
    rule = services().push_rules.find(requester.user_id, scope, kind, rule_id)
    return {attr: rule.get(attr, True if attr == "enabled" else [])}


@client_route(
    blueprint,
    "/pushrules/<scope>/<kind>/<rule_id>/<any(enabled, actions):attr>",
    methods=["PUT"],
)
async def put_attribute(scope: str, kind: str, rule_id: str, attr: str) -> dict:
    requester = authenticate()
    body = await json_object()
    value = body.get(attr)
    if attr == "enabled" and not isinstance(value, bool):
        raise bad_json("`enabled` must be true or false.")
    if attr == "actions" and not isinstance(value, list):
        raise bad_json("`actions` must be a list.")
    services().push_rules.set_attribute(requester.user_id, scope, kind, rule_id, attr, value)
    return {}


@client_route(blueprint, "/pushers", methods=["GET"])
async def get_pushers() -> dict:
    requester = authenticate()
    return {"pushers": services().pushers.of_user(requester.user_id)}


@client_route(blueprint, "/pushers/set", methods=["POST"])
async def set_pusher() -> dict:
    requester = authenticate()
    services().pushers.set(requester.user_id, await json_object())
    return {}


@client_route(blueprint, "/notifications", methods=["GET"])
async def notifications() -> dict:
    requester = authenticate()
    since = request.args.get("from")
    found, next_token = services().notifications.list(
        requester.user_id,
        before=query_offset("from") if since is not None else None,
        limit=max(1, min(query_int("limit", 20), 100)),
        only_highlight=request.args.get("only") == "highlight",
    )
    answer: dict = {"notifications": found}
    if next_token is not None:
        answer["next_token"] = str(next_token)
    return answer
