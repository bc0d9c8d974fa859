"""Hostile input, on every route: never a 5xx, always the spec's error shape, nothing poisoned.

Spec: `content/client-server-api/_index.md`, "Standard error response" (every
failure is `{"errcode": "M_...", "error": "..."}`; `M_NOT_JSON`, `M_BAD_JSON`,
`M_INVALID_PARAM`) and "Common error codes"; `content/appendices.md`,
"Canonical JSON" (integers in [-(2**53)+1, (2**53)-1], no floats) with
`content/rooms/v6.md` onwards, which make events that break it invalid.
Issue 13 lists what this guards.

The property test walks the app's own URL map (so a new route is covered
without touching this file): for each route it fills the path with the ids
of a real room, event and user where one is needed (or with hostile text),
and sends generated hostile JSON bodies (deep nesting, lone surrogates as
`\\ud800` escapes in keys and values, `1e400`, 5000-digit integers, floats,
wrong types, huge strings, nulls) and hostile query values (Unicode digits,
5000-digit numbers, negatives, empty, `%ED%A0%80`) with a valid access
token. After each request the same user's `/sync` (and, after a request the
server accepted, their `/keys/query` and `/rooms/{roomId}/messages`) must
still answer 200, and the server must have logged no error. One readable
test per finding of the issue is in `test_hostile_input.py`.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from matrix_conduit.app import create_app
from matrix_conduit.service import Services
from matrix_conduit.service.devices import DeviceLogin
from matrix_conduit.storage import open_database
from tests.support.hostile import (
    BACKUP_ALGORITHM,
    DEEP_ARRAY,
    DEEP_OBJECT,
    FIVE_THOUSAND_DIGITS,
    hostile_json,
    json_object_text,
    no_error_in_the_server_log,
    server_errors,
)
from tests.support.matrix import User, ok, path_part, register
from tests.support.server import make_config
from tests.support.shared_server import RunningServer, SharedServer, shared_server_fixtures

pytestmark = pytest.mark.slow

running_server, server = shared_server_fixtures()
no_error_logged = no_error_in_the_server_log()

# ---- the routes, from the app's URL map


@dataclass(frozen=True)
class Route:
    """One method of one URL rule of the app."""

    method: str
    rule: str
    """The werkzeug rule, e.g. `/_matrix/client/v3/rooms/<room_id>/send/<event_type>/<txn_id>`."""
    choices: tuple[tuple[str, tuple[str, ...]], ...]
    """For `any(...)` path variables: the only values that match."""

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"

    @property
    def variables(self) -> list[str]:
        return re.findall(r"<(?:[^:>]+:)?([^>]+)>", self.rule)

    def path(self, values: dict[str, str]) -> str:
        """The rule with each variable replaced by its (already encoded) value."""
        return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda match: values[match.group(1)], self.rule)


def routes_of_the_app() -> list[Route]:
    """Every (method, rule) the app built by `create_app` serves; r0 twins of v3 rules once."""
    with tempfile.TemporaryDirectory() as directory:
        config = make_config(Path(directory) / "db")
        database = open_database(config.storage_engine, config.database_path)
        try:
            rules = list(create_app(config, Services(config, database)).url_map.iter_rules())
        finally:
            database.close()
    routes: dict[str, Route] = {}
    for rule in rules:
        choices = tuple(
            (name, tuple(choice.strip() for choice in listed.split(",")))
            for listed, name in re.findall(r"<any\(([^)]*)\):(\w+)>", rule.rule)
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            route = Route(method, rule.rule, choices)
            twin = str(route).replace("/r0/", "/v3/")
            if "/r0/" not in rule.rule or twin not in routes:
                routes[twin] = route
    return list(routes.values())


ROUTES = routes_of_the_app()

# ---- hostile JSON, as text (so that it can hold what Python's json cannot write)

HUGE_STRING = '"' + "x" * 70_000 + '"'

HOSTILE_LEAVES = [
    r'"\ud800"',
    r'"\udfff"',
    r'"a\ud800b"',
    r'"\udc00\ud800"',
    "1e400",
    "-1e400",
    FIVE_THOUSAND_DIGITS,
    "-" + FIVE_THOUSAND_DIGITS,
    "1.5",
    "-0.0",
    "1e-400",
    str(2**53),
    str(-(2**53)),
    str(2**64),
    "true",
    "false",
    "null",
    "[]",
    "{}",
    '""',
    HUGE_STRING,
    r'"\u0000"',
    r'"line\nbreak"',
    '"²"',
    '"@hostile:localhost"',
    '"!hostile:localhost"',
    '"m.text"',
    '"hello"',
    "0",
    "-1",
]
FIELD_NAMES = [
    "auth",
    "auth_data",
    "algorithm",
    "avatar_url",
    "body",
    "content",
    "device_id",
    "device_keys",
    "display_name",
    "displayname",
    "enabled",
    "event_fields",
    "filter",
    "identifier",
    "initial_device_display_name",
    "initial_state",
    "invite",
    "limit",
    "m.fully_read",
    "m.read",
    "messages",
    "msgtype",
    "name",
    "new_version",
    "one_time_keys",
    "order",
    "password",
    "pattern",
    "actions",
    "conditions",
    "presence",
    "preset",
    "reason",
    "room",
    "room_alias_name",
    "room_id",
    "search_categories",
    "search_term",
    "status_msg",
    "tags",
    "timeline",
    "timeout",
    "topic",
    "type",
    "user",
    "user_id",
    "visibility",
]
HOSTILE_KEYS = [json.dumps(name) for name in FIELD_NAMES] + [
    r'"\ud800"',
    r'"key\udfff"',
    '""',
    '"' + "k" * 5000 + '"',
]


DEEP_BODIES = [
    DEEP_ARRAY,
    DEEP_OBJECT,
    json_object_text([('"content"', DEEP_ARRAY)]),
    json_object_text([('"body"', DEEP_OBJECT), ('"msgtype"', '"m.text"')]),
]


def every_field(*leaves: str) -> str:
    """An object with every field name the handlers read set to one of `leaves`, in turn."""
    return json_object_text(
        [(json.dumps(name), leaves[i % len(leaves)]) for i, name in enumerate(FIELD_NAMES)]
    )


hostile_bodies = hostile_json(HOSTILE_LEAVES, HOSTILE_KEYS, DEEP_BODIES)

# ---- hostile query values, already percent-encoded

MAX_QUERY_LENGTH = 8000
MAX_URL_LENGTH = 14_000
"""Below hypercorn's 16 KiB limit for a request head: a longer one never reaches the app.
Longer generated URLs are discarded; so would be a longer explicit example, silently: keep
each under it (two 5000-digit parameters at most)."""

NUMBER_AND_TOKEN_NAMES = ["since", "from", "to", "limit", "next_batch", "version"]
"""The parameters of finding 1: numbers or stream tokens, read on many routes."""
QUERY_NAMES = [
    *NUMBER_AND_TOKEN_NAMES,
    "timeout",
    "ts",
    "dir",
    "filter",
    "full_state",
    "set_presence",
    "max_depth",
    "suggested_only",
    "server",
    "include",
    "only",
    "width",
    "height",
    "method",
    "timeout_ms",
    "allow_remote",
    "format",
    "at",
    "membership",
    "not_membership",
    "before",
    "after",
    "username",
    "token",
    "kind",
    "url",
    "filename",
]
HOSTILE_QUERY_VALUES = [
    quote("²"),
    quote("١٢٣"),
    quote("𝟗"),
    FIVE_THOUSAND_DIGITS,
    "-" + FIVE_THOUSAND_DIGITS,
    str(2**64),
    "-1",
    "-0",
    "",
    "%ED%A0%80",
    "%00",
    "%0A",
    "1e400",
    "0x10",
    "+5",
    "%205",
    "NaN",
    "true",
    "t_1_2",
    "s1_" + FIVE_THOUSAND_DIGITS,
    quote(json.dumps({"limit": 1.5})),
    quote('{"room":{"timeline":{"limit":1e400}}}'),
    quote(r'{"event_fields":["\ud800"]}'),
    quote(DEEP_ARRAY),
    quote("{"),
]
hostile_queries = (
    st.lists(
        st.tuples(st.sampled_from(QUERY_NAMES), st.sampled_from(HOSTILE_QUERY_VALUES)),
        max_size=8,
        unique_by=lambda pair: pair[0],
    )
    .map(lambda pairs: "&".join(f"{name}={value}" for name, value in pairs))
    .filter(lambda query: len(query) <= MAX_QUERY_LENGTH)
)


def every_parameter(value: str, names: list[str] = QUERY_NAMES) -> str:
    return "&".join(f"{name}={value}" for name in names)


def huge_numbers_for(names: list[str]) -> str:
    return "&".join(f"{name}={FIVE_THOUSAND_DIGITS}" for name in names)


# ---- hostile path segments, already percent-encoded

HOSTILE_SEGMENTS = [
    quote("²"),
    quote("١٢٣"),
    FIVE_THOUSAND_DIGITS,
    "%ED%A0%80",
    "%00",
    "%0A",
    "%2F",
    "..",
    "%20",
    quote("!no-such-room:localhost"),
    quote("$no-such-event"),
    quote("@no-such-user:localhost"),
    quote("#no-such-alias:localhost"),
    quote("@not a user id"),
    quote("🙂\u202e"),
    "x" * 300,
]

# ---- the world the routes are called in


@dataclass
class World:
    """What every route's user can refer to: another user, and a file they uploaded."""

    neighbour_id: str
    neighbour_token: str
    media_id: str


@dataclass
class RouteUser:
    """The user of one route's examples, in a v10 room of their own with a message in it.

    The world's user is joined too (someone to invite, kick, share presence
    with), and the route's user has a filter and a key backup to name.
    """

    user_id: str
    device_id: str
    access_token: str
    room_id: str
    alias: str
    event_id: str
    filter_id: str
    backup_version: str
    since: str
    txn_ids: Iterator[int] = field(default_factory=itertools.count)

    def on(self, server: SharedServer) -> User:
        return User(self.user_id, self.device_id, self.access_token, server.client, "localhost")


PLAIN_HTTP = ssl.create_default_context()
"""The server is plain HTTP on 127.0.0.1; sharing one (unused) TLS context spares each
example's client the cost of building its own, which would dominate the run time."""


def run_against(running: RunningServer, async_fn: Any) -> Any:
    """`trio.run(async_fn(server))` with a client of our own (setup outside any test's loop)."""

    async def main() -> Any:
        async with httpx.AsyncClient(
            base_url=running.base_url, timeout=30, verify=PLAIN_HTTP, trust_env=False
        ) as client:
            return await async_fn(SharedServer(running, client))

    return trio.run(main)


async def build_world(server: SharedServer) -> World:
    neighbour = await register(server)
    uploaded = await neighbour.http.post(
        "/_matrix/media/v3/upload",
        content=b"a file",
        headers={
            "Authorization": f"Bearer {neighbour.access_token}",
            "Content-Type": "text/plain",
        },
    )
    media_id = ok(uploaded)["content_uri"].rsplit("/", 1)[1]
    return World(neighbour.user_id, neighbour.access_token, media_id)


async def new_route_user(world: World, server: SharedServer) -> RouteUser:
    user = await register(server)
    room_id = await user.create_room(
        preset="public_chat", room_version="10", room_alias_name=user.localpart
    )
    neighbour = User(world.neighbour_id, "", world.neighbour_token, server.client, "localhost")
    await neighbour.join(room_id)
    event_id = await user.send(room_id, "the route's message")
    filter_id = ok(await user.post(f"/user/{path_part(user.user_id)}/filter", {}))["filter_id"]
    backup = await user.post(
        "/room_keys/version", {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "k"}}
    )
    since = ok(await user.get("/sync", timeout=0))["next_batch"]
    return RouteUser(
        user.user_id,
        user.device_id,
        user.access_token,
        room_id,
        f"#{user.localpart}:localhost",
        event_id,
        filter_id,
        ok(backup)["version"],
        since,
    )


@pytest.fixture
async def example_server(running_server: RunningServer) -> AsyncIterator[SharedServer]:
    """The shared server with a client for one example (each runs in its own trio loop)."""
    async with httpx.AsyncClient(
        base_url=running_server.base_url, timeout=30, verify=PLAIN_HTTP, trust_env=False
    ) as client:
        yield SharedServer(running_server, client)


@pytest.fixture(scope="module")
def world(running_server: RunningServer) -> World:
    return run_against(running_server, build_world)


@pytest.fixture
def route_user(running_server: RunningServer, world: World) -> Iterator[RouteUser]:
    """A fresh user and room for each route, so that what one route did never blames another.

    After all of the route's examples, whatever they were answered, the user's
    `/sync`, `/keys/query` and `/messages` still answer 200.
    """
    user = run_against(running_server, functools.partial(new_route_user, world))
    yield user

    async def still_served(server: SharedServer) -> None:
        await assert_user_still_served(server, user, "all of the route's requests")
        ok(await user.on(server).get("/sync", timeout=0))  # and from scratch, as a new device

    run_against(running_server, still_served)


def valid_path_values(route: Route, world: World, user: RouteUser) -> dict[str, list[str]]:
    """For each path variable name, values that get the handler past its 404s."""
    txn_id = f"hostile{next(user.txn_ids)}"
    return {
        "room_id": [user.room_id],
        "room_id_or_alias": [user.room_id, user.alias],
        "event_id": [user.event_id],
        "user_id": [user.user_id, world.neighbour_id],
        "device_id": [user.device_id],
        "event_type": ["m.room.message", "m.room.topic", "org.example.hostile"],
        "txn_id": [txn_id],
        "state_key": ["hostile", user.user_id],
        "room_alias": [user.alias, f"#{txn_id}:localhost"],
        "filter_id": [user.filter_id],
        "receipt_type": ["m.read", "m.read.private", "m.fully_read"],
        "version": [user.backup_version],
        "session_id": ["session"],
        "scope": ["global"],
        "kind": ["override", "underride", "sender", "room", "content"],
        "rule_id": [".m.rule.master", "hostile"],
        "server_name": ["localhost"],
        "media_id": [world.media_id],
        "file_name": ["file.txt"],
        "protocol": ["irc"],
        "filename": ["file.txt"],
        **{name: list(choices) for name, choices in route.choices},
    }


PathPick = int | str
"""For one path variable: an index into its valid values, or a hostile segment."""

hostile_path_picks = st.lists(
    st.one_of(st.integers(min_value=0, max_value=2), st.sampled_from(HOSTILE_SEGMENTS)),
    max_size=4,
)


def fill_path(route: Route, valid: dict[str, list[str]], picks: list[PathPick]) -> str:
    """The route's path, the i-th variable filled as `picks[i]` says (a valid value if absent).

    A variable nobody knows a valid value for (a route added since) gets hostile text.
    """
    values = {}
    for position, name in enumerate(route.variables):
        pick = picks[position] if position < len(picks) else 0
        choices = valid.get(name)
        if isinstance(pick, str) or not choices:
            values[name] = pick if isinstance(pick, str) else HOSTILE_SEGMENTS[0]
        else:
            values[name] = quote(choices[pick % len(choices)], safe="")
    return route.path(values)


# ---- what every answer must look like


def assert_not_a_server_error(response: httpx.Response, what: str) -> None:
    """Below 500, and a 4xx is the spec's error body (or a user-interactive auth challenge)."""
    assert response.status_code < 500, (what, response.status_code, response.text[:500])
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"{what}: {response.status_code} answered with a body that is not JSON")
    assert isinstance(body, dict), (what, body)
    if response.status_code == 401 and "flows" in body:
        return  # "User-interactive authentication API": the challenge need not carry an errcode
    assert isinstance(body.get("errcode"), str) and body["errcode"].startswith("M_"), (what, body)
    assert isinstance(body.get("error"), str), (what, body)


async def assert_user_still_served(server: SharedServer, route_user: RouteUser, what: str) -> None:
    """The user's `/sync` (since their first), own `/keys/query` and room's `/messages`
    answer 200.

    A route that logged the user's device out (`/logout`, `DELETE /devices/...`)
    did nothing wrong: the same user then logs in on a new device.
    """
    user = route_user.on(server)
    sync = await user.get("/sync", timeout=0, since=route_user.since)
    if sync.status_code == 401 and sync.json().get("errcode") == "M_UNKNOWN_TOKEN":

        async def log_in() -> Any:
            return server.services.devices.log_in(route_user.user_id, DeviceLogin())

        tokens = await server.call(log_in)
        route_user.device_id, route_user.access_token = tokens.device_id, tokens.access_token
        user = route_user.on(server)
        sync = await user.get("/sync", timeout=0, since=route_user.since)
    for response in (
        sync,
        await user.post("/keys/query", {"device_keys": {user.user_id: []}}),
        await user.messages(route_user.room_id, limit=20),
    ):
        assert response.status_code == 200, (
            f"after {what}",
            response.request.url,
            response.status_code,
            response.text[:500],
        )


# ---- the property


@pytest.mark.parametrize("route", ROUTES, ids=str)
@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing request is shown as sent
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one user for all examples of a route, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
# What the door refuses (deep nesting, lone surrogates, numbers no JSON holds), with
# Unicode digits and huge numbers in every parameter a handler may read:
@example(picks=[], body=DEEP_OBJECT, query=every_parameter(quote("²")))
@example(
    picks=[],
    body=every_field(r'"\ud800"', "1e400", FIVE_THOUSAND_DIGITS),
    query=f"{huge_numbers_for(['since', 'from'])}&{every_parameter(quote('١٢٣'), QUERY_NAMES[2:])}",
)
# what passes the door and reaches the handlers: wrong types, nulls, extremes:
@example(
    picks=[],
    body=every_field("[]", "{}", "true"),
    query=f"{huge_numbers_for(['next_batch', 'version'])}&{every_parameter('-1', QUERY_NAMES[6:])}",
)
@example(picks=[], body=every_field("null", "0", '""'), query=every_parameter(str(2**64)))
@example(
    picks=[],
    body=every_field(str(2**64), "-1", "1.5", r'"\u0000\n"'),
    query=f"{huge_numbers_for(['to', 'limit'])}&dir=%ED%A0%80",
)
# hostile path segments:
@example(picks=[FIVE_THOUSAND_DIGITS] + ["%ED%A0%80"] * 3, body=every_field('"hello"'), query="")
@given(picks=hostile_path_picks, body=hostile_bodies, query=hostile_queries)
async def test_no_route_answers_hostile_input_with_a_server_error_or_poisons_the_user(
    example_server: SharedServer,
    world: World,
    route_user: RouteUser,
    route: Route,
    picks: list[PathPick],
    body: str,
    query: str,
):
    """Never a 5xx, every 4xx in the spec's error shape, no error in the server's log, and
    the user's `/sync`, `/keys/query` and `/messages` still answer 200 afterwards."""
    path = fill_path(route, valid_path_values(route, world, route_user), picks)
    url = f"{path}?{query}" if query else path
    assume(len(url) <= MAX_URL_LENGTH)
    sends_body = route.method in ("POST", "PUT", "DELETE")
    what = f"{route.method} {url[:300]} with body {body[:200]!r}"

    with server_errors() as errors:
        response = await example_server.client.request(
            route.method,
            url,
            content=body.encode() if sends_body else None,
            headers={
                "Authorization": f"Bearer {route_user.access_token}",
                "Content-Type": "application/json",
            },
        )
        assert_not_a_server_error(response, what)
        if response.status_code < 400:  # accepted, so it may have stored something: check now
            await assert_user_still_served(example_server, route_user, what)
        # a refused request stored nothing (one atomic batch per request, DESIGN.md);
        # `route_user` checks the user once more after all of the route's examples

    assert errors.lines() == [], what
