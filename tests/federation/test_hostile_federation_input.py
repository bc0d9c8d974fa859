"""Hostile input from another server, on every federation route: signed, so it reaches handlers.

Spec: `content/server-server-api.md` § Request Authentication, § Transactions
(at most 50 PDUs and 100 EDUs), § Checks performed on receipt of a PDU (a
malformed or badly signed PDU is dropped, one that fails authorization is
rejected: never stored in a form a later read fails on), § EDUs;
`content/appendices.md` "Canonical JSON" with `content/rooms/v6.md` onwards
(no floats, integers within ±(2**53 - 1)); `content/client-server-api/_index.md`
"Standard error response" (every 4xx is `{"errcode": "M_...", "error": "..."}`).
Issue 13 is the client-side half (`tests/integration/test_hostile_input_properties.py`).

The property walks every `/_matrix/federation/*` and `/_matrix/key/*` route of
the app's URL map (a new route is covered without touching this file). Each
request is signed by server B, a real second server of ours, with its real
key (`tests/support/hostile_federation.py`), so the X-Matrix gate passes and
the body reaches the handler. Server A is the target; bob of B is joined to
alice's rooms on A (one of room version 10, one of 12) with power level 100,
so bob's PDUs get past authorization and can change the rooms' state. What is
generated:
- for `/send`: transactions of up to 3 PDUs built on either room's real tips and
  changed (fields set to hostile values or removed: floats and 2**64 in a v10
  event, depth 2**53 - 1, lone surrogates, huge strings, nulls, wrong types,
  ids malformed, of another server or of another room, 21 prev_events,
  signatures and hashes of the wrong shape; state bob may set with content of
  the wrong type),
  signed by B after the change, before it, or not at all; 51 PDUs or 101
  EDUs; EDUs of every type A handles with one field changed or garbage
  content; the transaction's own `origin`, `pdus`, `edus` of the wrong type;
- for the membership `PUT`s: such a PDU as the body (or the invite's `event`),
  the path's event id its own;
- for every route: hostile JSON (deep nesting, `1e400`, 5000 digits, lone
  surrogates in keys and values), hostile path segments where ids go
  (malformed, another server's, 5000 digits, `%ED%A0%80`), hostile query values.

After each request: never a 5xx, every 4xx in the spec's error shape, and —
once A's background worker has handled whatever it queued — nothing logged
at ERROR (a traceback from the worker counts). After an accepted request
alice's `/sync` and `/messages` on A still answer 200. After all of a
route's examples: every read of alice's (`/sync` since the setup and from
scratch, `/messages` of each room, the room directory, members, the user
directory, the hierarchy, `/keys/query` for bob) answers 200, alice can still
write in both shared rooms, a valid message B signs is taken into each of them
and read by alice, and one bob sends on B through B's own outbox reaches her
(B is not blamed or blocked for what was sent in its name). Readable tests
per class of input are in `test_hostile_federation_examples.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import trio
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from tests.integration.test_hostile_input_properties import (
    HOSTILE_LEAVES,
    HOSTILE_SEGMENTS,
    MAX_URL_LENGTH,
    Route,
    assert_not_a_server_error,
    json_object_text,
    routes_of_the_app,
)
from tests.support.hostile import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    FIVE_THOUSAND_DIGITS,
    hostile_json,
    no_error_in_the_server_log,
    server_errors,
)
from tests.support.hostile_federation import (
    DELETE,
    EDU_PATHS,
    NOBODY,
    Peering,
    Raw,
    World,
    assert_peer_still_accepted,
    assert_peer_users_still_heard,
    assert_target_still_serves,
    changed,
    dumps_with_raw,
    edu_path,
    edu_templates,
    pdu_id,
    peering_fixture,
    try_sign,
    txn_id,
)

pytestmark = pytest.mark.slow

peering = peering_fixture()
no_error_logged = no_error_in_the_server_log()

FEDERATION_ROUTES = [
    route
    for route in routes_of_the_app()
    if route.rule.startswith(("/_matrix/federation/", "/_matrix/key/"))
]
TRANSACTION_RULE = re.compile(r"/_matrix/federation/v\d+/send/")
MEMBERSHIP_RULE = re.compile(r"/_matrix/federation/v\d+/(send_join|send_leave|send_knock|invite)/")

# ---- hostile values (Python values: a PDU holding them can still be signed)

DOOR_VALUES: list[Any] = [
    "\ud800",
    "a\udfffb",
    Raw("1e400"),
    Raw(FIVE_THOUSAND_DIGITS),
    Raw(DEEP_ARRAY),
]
"""What the gate refuses in any body (400 `M_BAD_JSON`/`M_NOT_JSON`): rarely picked, so
that most transactions reach the PDU checks."""
HOSTILE_VALUES: list[Any] = [
    1.5,
    -0.0,
    2**53 - 1,
    2**53,
    -(2**53),
    2**64,
    True,
    False,
    None,
    [],
    {},
    "",
    "x" * 70_000,
    "\u0000",
    "²",
    "m.text",
    "hello",
    0,
    -1,
    {"a": {"b": [None]}},
    f"@bob:{NOBODY}",
    f"!room:{NOBODY}",
    f"$event:{NOBODY}",
    "@",
    "!",
    "$",
    "not an id",
    "@bob:-not-a-server-",
]
ID_LISTS: list[Any] = [
    ["$nope"] * 21,
    ["$nope"] * 11,
    [5],
    [None],
    [["$nope", {}]],
    [f"$event:{NOBODY}"],
    ["\ud800"],
    "$nope",
    ["{lonely_message}"],
    ["{message}", "{message}"],
]
SIGNATURES: list[Any] = [
    [],
    "sig",
    {"{peer}": "sig"},
    {"{peer}": {"ed25519:x": 5}},
    {"{peer}": {}},
    {NOBODY: {"ed25519:a": "c2ln"}},
    {"{peer}": {"ed25519:auto": "!!not base64!!"}},
    {"{peer}": {"not a key id": "c2ln"}},
]
HASHES: list[Any] = [{"sha256": 5}, {}, "x", {"sha256": "AAAA"}, {"sha256": None}]

PDU_FIELDS = [
    "type",
    "sender",
    "room_id",
    "origin",
    "origin_server_ts",
    "depth",
    "prev_events",
    "auth_events",
    "hashes",
    "signatures",
    "content",
    "state_key",
    "redacts",
    "unsigned",
    "event_id",
]
CONTENT_KEYS = [
    "body",
    "msgtype",
    "membership",
    "name",
    "topic",
    "url",
    "join_rule",
    "history_visibility",
    "algorithm",
    "guest_access",
    "alias",
    "alt_aliases",
    "pinned",
    "m.relates_to",
    "redacts",
    "displayname",
    "avatar_url",
    "creator",
    "room_version",
    "predecessor",
    "allow",
]
PDU_KINDS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "message": ("m.room.message", {"msgtype": "m.text", "body": "hostile"}, None),
    "name": ("m.room.name", {"name": "a name"}, ""),
    "topic": ("m.room.topic", {"topic": "a topic"}, ""),
    "history": ("m.room.history_visibility", {"history_visibility": "shared"}, ""),
    "join_rules": ("m.room.join_rules", {"join_rule": "public"}, ""),
    "encryption": ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, ""),
    "guest_access": ("m.room.guest_access", {"guest_access": "forbidden"}, ""),
    "aliases": ("m.room.canonical_alias", {"alias": None}, ""),
    "pinned": ("m.room.pinned_events", {"pinned": []}, ""),
    "avatar": ("m.room.avatar", {"url": "mxc://a/b"}, ""),
    "own_member": ("m.room.member", {"membership": "join", "displayname": "bob"}, "{bob}"),
    "create": ("m.room.create", {"room_version": "10"}, ""),
    "redaction": ("m.room.redaction", {"redacts": "{message}"}, None),
    "custom_state": ("org.example.hostile", {"x": 1}, "{bob}"),
    "carla": ("m.room.member", {"membership": "invite"}, "{carla}"),
}
MEMBERSHIP_KINDS: dict[str, tuple[str, dict[str, Any], str]] = {
    "send_join": ("{carol}", {"membership": "join"}, "{carol}"),
    "send_leave": ("{dave}", {"membership": "leave"}, "{dave}"),
    "send_knock": ("{dave}", {"membership": "knock"}, "{dave}"),
    "invite": ("{bob}", {"membership": "invite"}, "{carla}"),
}
"""For the membership routes: (sender, content, state_key) of the m.room.member event each
takes (carol of B joins, dave of B, never in the room, leaves; bob invites carla of A)."""
"""What bob's PDUs are built as. No valid change among them takes bob's rights away
(server ACLs, power levels and other members have examples of their own), so the
check after a route can demand that B's next valid message is accepted."""

# A change: (field, index into the values for it) or (field, None) = removed.
field_changes = st.lists(
    st.tuples(st.sampled_from(PDU_FIELDS), st.none() | st.integers(0, 200)), max_size=3
)
content_changes = st.lists(
    st.tuples(st.sampled_from(CONTENT_KEYS), st.none() | st.integers(0, 200)), max_size=3
)
SIGNING = ["after", "after", "before", "none"]
"""B signs the PDU after the changes, before them (hashes or signatures then fail), or never."""

pdu_recipes = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(sorted(PDU_KINDS)),
        "fields": field_changes,
        "content": content_changes,
        "signing": st.sampled_from(SIGNING),
        "v12": st.booleans(),
    }
)
edu_recipes = st.fixed_dictionaries(
    {
        "type": st.sampled_from(sorted(EDU_PATHS)),
        "path": st.integers(0, 20),
        "value": st.none() | st.integers(0, 200),
        "garbage": st.booleans(),
    }
)
transaction_recipes = st.fixed_dictionaries(
    {
        "pdus": st.lists(pdu_recipes, min_size=1, max_size=3),
        "edus": st.lists(edu_recipes, max_size=3),
        "many": st.sampled_from([None, None, None, None, "pdus", "edus"]),
        "envelope": st.just([])
        | st.just([])
        | st.just([])
        | st.lists(
            st.tuples(
                st.sampled_from(["origin", "origin_server_ts", "pdus", "edus"]),
                st.integers(0, 200),
            ),
            max_size=1,
        ),
    }
)

# ---- hostile JSON text, for every route (it also holds what no Python value writes)

FEDERATION_FIELD_NAMES = [
    "pdus",
    "edus",
    "origin",
    "origin_server_ts",
    "earliest_events",
    "latest_events",
    "limit",
    "min_depth",
    "server_keys",
    "minimum_valid_until_ts",
    "event",
    "room_version",
    "invite_room_state",
    "content",
    "type",
    "sender",
    "room_id",
    "state_key",
    "membership",
    "auth_events",
    "prev_events",
    "signatures",
    "event_id",
]
TEXT_LEAVES = [
    *HOSTILE_LEAVES,
    json.dumps(f"@bob:{NOBODY}"),
    json.dumps(f"!room:{NOBODY}"),
    json.dumps(["$nope"] * 21),
    json.dumps({"127.0.0.66:1": {"ed25519:a": {"minimum_valid_until_ts": 2**64}}}),
]
TEXT_KEYS = [json.dumps(name) for name in FEDERATION_FIELD_NAMES] + [
    r'"\ud800"',
    '""',
    '"' + "k" * 5000 + '"',
]
hostile_texts = hostile_json(
    TEXT_LEAVES,
    TEXT_KEYS,
    [DEEP_ARRAY, DEEP_OBJECT, json_object_text([('"pdus"', DEEP_ARRAY)])],
)
near_changes = st.lists(st.tuples(st.integers(0, 20), st.none() | st.integers(0, 200)), max_size=2)
bodies = st.one_of(
    transaction_recipes.map(lambda recipe: ("transaction", recipe)),
    near_changes.map(lambda changes: ("near", changes)),
    pdu_recipes.map(lambda recipe: ("pdu", recipe)),
    hostile_texts.map(lambda text: ("text", text)),
)


def every_field(*leaves: str) -> str:
    return json_object_text(
        [
            (json.dumps(name), leaves[i % len(leaves)])
            for i, name in enumerate(FEDERATION_FIELD_NAMES)
        ]
    )


# ---- hostile queries and paths, already percent-encoded ("{...}": a real value)

QUERY_NAMES = [
    "event_id",
    "user_id",
    "field",
    "room_alias",
    "access_token",
    "minimum_valid_until_ts",
    "limit",
    "v",
    "ver",
]
QUERY_VALUES = [
    "{message}",
    "{join}",
    "{alice}",
    "{bob}",
    "displayname",
    "avatar_url",
    "10",
    quote(f"#alias:{NOBODY}"),
    quote("#nope:{target}"),
    quote(f"@x:{NOBODY}"),
    quote("²"),
    FIVE_THOUSAND_DIGITS,
    "-" + FIVE_THOUSAND_DIGITS,
    str(2**64),
    "-1",
    "",
    "%ED%A0%80",
    "%00",
    "1e400",
    "NaN",
    quote(DEEP_ARRAY),
    quote("$nope"),
]
hostile_queries = st.lists(
    st.tuples(st.sampled_from(QUERY_NAMES), st.sampled_from(QUERY_VALUES)), max_size=4
)
BASE_QUERIES: list[tuple[re.Pattern[str], list[tuple[str, str]]]] = [
    (re.compile(r"/query/profile$"), [("user_id", "{alice}"), ("field", "displayname")]),
    (re.compile(r"/query/directory$"), [("room_alias", "{alias}")]),
    (re.compile(r"/(state|state_ids)/"), [("event_id", "{message}")]),
    (re.compile(r"/make_(join|knock)/"), [("ver", "10")]),
    (re.compile(r"/openid/userinfo$"), [("access_token", "{openid}")]),
    (re.compile(r"/key/v2/query/"), [("minimum_valid_until_ts", "0")]),
    (re.compile(r"/backfill/"), [("v", "{message}"), ("limit", "10")]),
]
"""The query a route needs to get past its 400s; the hostile pairs change or extend it."""


def route_query(route: Route, hostile: list[tuple[str, str]]) -> str:
    """The route's base query with each hostile (name, value) replacing or added to it."""
    pairs = next((list(base) for rule, base in BASE_QUERIES if rule.search(route.rule)), [])
    for name, value in hostile:
        position = next((i for i, (known, _) in enumerate(pairs) if known == name), None)
        if position is None:
            pairs.append((name, value))
        else:
            pairs[position] = (name, value)
    return "&".join(f"{name}={value}" for name, value in pairs)


PATH_SEGMENTS = [
    *HOSTILE_SEGMENTS,
    quote(f"!room:{NOBODY}", safe=""),
    quote(f"$event:{NOBODY}", safe=""),
    quote(f"@x:{NOBODY}", safe=""),
    quote("@x:-not-a-server-", safe=""),
    quote(NOBODY, safe=""),
    quote("ed25519:" + "x" * 300, safe=""),
]
hostile_path_picks = st.lists(
    st.one_of(st.integers(min_value=0, max_value=3), st.sampled_from(PATH_SEGMENTS)),
    max_size=3,
)


def placeholders(peering: Peering) -> dict[str, str]:
    world = peering.world
    return {
        "{message}": world.message_id,
        "{join}": world.join_id,
        "{lonely_message}": world.lonely_message_id,
        "{alice}": world.alice_id,
        "{bob}": world.bob_id,
        "{carol}": f"@carol:{world.peer}",
        "{dave}": f"@dave:{world.peer}",
        "{carla}": world.carla_id,
        "{alias}": world.alias,
        "{openid}": world.openid_token,
        "{target_key}": world.target_key_id,
        "{target}": world.target,
        "{peer}": world.peer,
    }


def filled(text: str, peering: Peering, encode: bool = False) -> str:
    for name, value in placeholders(peering).items():
        text = text.replace(name, quote(value, safe="") if encode else value)
    return text


def valid_path_values(route: Route, peering: Peering, body_event_id: str | None) -> dict:
    world = peering.world
    event_ids = [world.message_id, world.join_id, world.lonely_message_id]
    return {
        "room_id": [
            world.room_id,
            world.v12_room_id,
            world.lonely_room_id,
            f"!unknown:{world.target}",
        ],
        "event_id": [body_event_id, *event_ids] if body_event_id else event_ids,
        "user_id": (
            [world.alice_id, world.carla_id, world.bob_id]
            if "/user/devices/" in route.rule  # our users' devices
            else [world.bob_id, f"@carol:{world.peer}", world.alice_id]  # the origin's users
        ),
        "txn_id": [txn_id()],
        "key_id": [world.target_key_id, "ed25519:nope"],
        "server_name": [world.target, world.peer, NOBODY],
        **{name: list(choices) for name, choices in route.choices},
    }


def fill_path(route: Route, valid: dict[str, list[str]], picks: list[Any]) -> str:
    values = {}
    for position, name in enumerate(route.variables):
        pick = picks[position] if position < len(picks) else 0
        choices = valid.get(name)
        if isinstance(pick, str) or not choices:
            values[name] = pick if isinstance(pick, str) else PATH_SEGMENTS[0]
        else:
            values[name] = quote(choices[pick % len(choices)], safe="")
    return route.path(values)


# ---- building the bodies on the room's real tips


def value_for(field: str, index: int | None, peering: Peering) -> Any:
    if index is None:
        return DELETE
    pool = {"prev_events": ID_LISTS, "auth_events": ID_LISTS, "signatures": SIGNATURES}.get(
        field, HASHES if field == "hashes" else None
    )
    if pool is not None and index % 2 == 0:
        value = pool[index // 2 % len(pool)]
        return json.loads(filled(json.dumps(value), peering))
    return hostile_value(index)


def hostile_value(index: int) -> Any:
    """Mostly a value the gate lets through; one time in 40 one it refuses."""
    if index >= 195:
        return DOOR_VALUES[index % len(DOOR_VALUES)]
    return HOSTILE_VALUES[index % len(HOSTILE_VALUES)]


async def build_pdu(peering: Peering, recipe: dict[str, Any], membership: str = "") -> Any:
    """A PDU on the tips of the v10 or the v12 room, changed and signed as `recipe` says; for
    a membership route (`membership`: `send_join`...) the member event it takes, unless
    the recipe is a message."""
    if recipe.get("v12"):
        peering = peering.v12
    sender = None
    if membership and recipe["kind"] != "message":
        sender, content, state_key = MEMBERSHIP_KINDS[membership]
        event_type, sender = "m.room.member", filled(sender, peering)
    else:
        event_type, content, state_key = PDU_KINDS[recipe["kind"]]
    content = json.loads(filled(json.dumps(content), peering))
    if state_key is not None:
        state_key = filled(state_key, peering)
    pdu: Any = {
        **await peering.template(event_type, content, state_key, sender),
        "origin": peering.world.peer,
    }
    if recipe["signing"] == "before":
        pdu = try_sign(peering, pdu)
    for key, index in recipe["content"]:
        pdu = changed(pdu, ("content", key), value_for(key, index, peering))
    for field, index in recipe["fields"]:
        pdu = changed(pdu, (field,), value_for(field, index, peering))
    if recipe["signing"] == "after":
        pdu = try_sign(peering, pdu)
    return pdu


def build_edu(peering: Peering, recipe: dict[str, Any]) -> Any:
    edu_type = recipe["type"]
    content = edu_templates(peering.world)[edu_type]
    value = hostile_value(recipe["value"]) if recipe["value"] is not None else DELETE
    if recipe["garbage"]:
        return {"edu_type": edu_type, "content": value if value is not DELETE else "garbage"}
    paths = EDU_PATHS[edu_type]
    path = edu_path(peering.world, paths[recipe["path"] % len(paths)])
    return {"edu_type": edu_type, "content": changed(content, path, value)}


async def build_transaction(peering: Peering, recipe: dict[str, Any]) -> str:
    pdus = [await build_pdu(peering, pdu) for pdu in recipe["pdus"]]
    edus = [build_edu(peering, edu) for edu in recipe["edus"]]
    if recipe["many"] == "pdus":
        message = await build_pdu(
            peering, {"kind": "message", "fields": [], "content": [], "signing": "after"}
        )
        pdus = [*pdus, *[message] * (51 - len(pdus))]
    elif recipe["many"] == "edus":
        typing = build_edu(peering, {"type": "m.typing", "path": 0, "value": None, "garbage": 0})
        edus = [*edus, *[typing] * (101 - len(edus))]
    body: dict[str, Any] = {
        "origin": peering.world.peer,
        "origin_server_ts": 1,
        "pdus": pdus,
        "edus": edus,
    }
    for field, index in recipe["envelope"]:
        body[field] = hostile_value(index)
    return dumps_with_raw(body)


async def build_body(peering: Peering, route: Route, kind: str, recipe: Any) -> tuple[str, Any]:
    """The body's text, and the event id its PDU has (for a membership route's path)."""
    if kind == "text":
        return recipe, None
    if TRANSACTION_RULE.match(route.rule):
        if kind == "pdu":
            recipe = {"pdus": [recipe], "edus": [], "many": None, "envelope": []}
        elif kind == "near":  # a valid message, and an EDU of some type per change
            message = {"kind": "message", "fields": [], "content": [], "signing": "after"}
            message["v12"] = any(index == 0 for _, index in recipe)
            edus = [
                {
                    "type": sorted(EDU_PATHS)[path % len(EDU_PATHS)],
                    "path": path // len(EDU_PATHS),
                    "value": index,
                    "garbage": False,
                }
                for path, index in recipe
            ]
            recipe = {"pdus": [message], "edus": edus, "many": None, "envelope": []}
        return await build_transaction(peering, recipe), None
    if kind == "near":
        return near_valid_body(peering, route, recipe)
    if kind == "transaction":
        recipe = recipe["pdus"][0]
    membership = MEMBERSHIP_RULE.match(route.rule)
    pdu = await build_pdu(peering, recipe, membership.group(1) if membership else "")
    version = "12" if recipe.get("v12") else "10"
    if "/invite/" in route.rule and "/v2/" in route.rule:
        body = {"room_version": version, "event": pdu, "invite_room_state": []}
        return dumps_with_raw(body), pdu_id(pdu, version)
    return dumps_with_raw(pdu), pdu_id(pdu, version)


def near_valid_bodies(world: World) -> list[tuple[re.Pattern[str], dict[str, Any], list[tuple]]]:
    """(rule, a valid body, the paths a change may go to) of the routes with a plain body."""
    return [
        (
            re.compile(r"/_matrix/federation/v\d+/get_missing_events/"),
            {
                "earliest_events": [world.join_id],
                "latest_events": [world.message_id],
                "limit": 10,
                "min_depth": 0,
            },
            [
                ("earliest_events",),
                ("latest_events",),
                ("limit",),
                ("min_depth",),
                ("earliest_events", "0"),
                ("latest_events", "0"),
            ],
        ),
        (
            re.compile(r"/_matrix/key/v2/query$"),
            {
                "server_keys": {
                    world.target: {world.target_key_id: {"minimum_valid_until_ts": 0}},
                    world.peer: {},
                }
            },
            [
                ("server_keys",),
                ("server_keys", world.target),
                ("server_keys", world.target, world.target_key_id),
                ("server_keys", world.target, world.target_key_id, "minimum_valid_until_ts"),
                ("server_keys", world.peer),
                ("server_keys", NOBODY),
                ("server_keys", "not a server name!"),
            ],
        ),
        (
            re.compile(r"/_matrix/federation/v2/invite/"),
            {"room_version": "10", "event": {}, "invite_room_state": []},
            [("room_version",), ("invite_room_state",), ("invite_room_state", "0"), ("event",)],
        ),
    ]


def near_valid_body(peering: Peering, route: Route, changes: list[tuple[int, int | None]]):
    for rule, body, paths in near_valid_bodies(peering.world):
        if rule.search(route.rule):
            for path, index in changes:
                new = hostile_value(index) if index is not None else DELETE
                body = changed(body, paths[path % len(paths)], new)
            return dumps_with_raw(body), None
    return dumps_with_raw({"hostile": hostile_value(changes[0][1] or 0) if changes else 1}), None


# ---- the property


@pytest.fixture
def route_checked(peering: Peering) -> Iterator[None]:
    """After all of a route's examples: A still serves alice, and still takes B's messages."""
    yield

    async def still_served() -> None:
        async with peering.client() as client:
            await assert_target_still_serves(peering, client, "all of the route's requests")
            await assert_peer_still_accepted(peering, client, "all of the route's requests")
            await assert_peer_still_accepted(peering.v12, client, "all of the route's requests")
        for view in (peering, peering.v12):
            await assert_peer_users_still_heard(view, "all of the route's requests")

    trio.run(still_served)


def examples_for(route: Route) -> int:
    if TRANSACTION_RULE.match(route.rule):
        return 200
    if route.method in ("PUT", "POST"):
        return 10
    return 6


SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing request is shown as sent
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("route", FEDERATION_ROUTES, ids=str)
def test_no_federation_route_answers_a_signed_hostile_request_with_a_server_error(
    peering: Peering, route_checked: None, route: Route
):
    """Never a 5xx, every 4xx in the spec's error shape, nothing logged at ERROR (the
    background worker included), and alice's `/sync` and `/messages` still 200.

    Each route gets its own number of examples (`examples_for`), so the property is
    built per route; each example runs in a trio loop of its own.
    """

    @settings(SETTINGS, max_examples=examples_for(route))
    # what the door refuses (deep nesting, lone surrogates, numbers no JSON holds):
    @example(picks=[], body=("text", DEEP_OBJECT), query=[("event_id", "%ED%A0%80")])
    @example(
        picks=[],
        body=("text", every_field(r'"\ud800"', "1e400", FIVE_THOUSAND_DIGITS)),
        query=[("limit", FIVE_THOUSAND_DIGITS), ("event_id", quote("²"))],
    )
    # what passes the door and reaches the handlers: wrong types, nulls, extremes:
    @example(picks=[], body=("text", every_field("[]", "{}", "true", "null")), query=[("ver", "")])
    @example(
        picks=[],
        body=("text", every_field(str(2**64), "-1", "1.5", '"\\u0000\\n"')),
        query=[("minimum_valid_until_ts", "-1")],
    )
    @example(picks=[FIVE_THOUSAND_DIGITS, "%ED%A0%80", "%ED%A0%80"], body=("text", "{}"), query=[])
    @given(picks=hostile_path_picks, body=bodies, query=hostile_queries)
    def property(picks: list[Any], body: tuple[str, Any], query: list[tuple[str, str]]) -> None:
        trio.run(one_request, peering, route, picks, body, query)

    property()


async def one_request(
    peering: Peering,
    route: Route,
    picks: list[Any],
    body: tuple[str, Any],
    hostile_query: list[tuple[str, str]],
) -> None:
    kind, recipe = body
    async with peering.client() as client:
        sends_body = route.method in ("POST", "PUT", "DELETE")
        text, body_event_id = (
            await build_body(peering, route, kind, recipe) if sends_body else (None, None)
        )
        path = fill_path(route, valid_path_values(route, peering, body_event_id), picks)
        query = filled(route_query(route, hostile_query), peering, encode=True)
        url = f"{path}?{query}" if query else path
        assume(len(url) <= MAX_URL_LENGTH)
        what = f"{route.method} {url[:300]} with body {(text or '')[:300]!r}"

        with server_errors() as errors:
            response = await peering.signed_request(client, route.method, url, text)
            assert_not_a_server_error(response, what)
            refused = response.status_code == 401 and response.json()["errcode"] == "M_UNAUTHORIZED"
            assert not refused, f"{what}: B's signature was refused: {response.text[:300]}"
            await peering.inbound_drained()  # the worker's tracebacks belong to this example
            if response.status_code < 400:
                alice = peering.alice(client)
                for check in (
                    await alice.get("/sync", timeout=0, since=peering.world.since),
                    await alice.messages(peering.world.room_id, limit=20),
                    await alice.messages(peering.world.v12_room_id, limit=20),
                ):
                    assert check.status_code == 200, (what, check.status_code, check.text[:500])
        assert errors.lines() == [], what
