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
still answer 200, and the server must have logged no error. Below it, one
readable test per finding of the issue.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
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
from matrix_conduit.errors import MatrixError
from matrix_conduit.service import Services
from matrix_conduit.service.devices import DeviceLogin
from matrix_conduit.storage import open_database
from tests.support.matrix import (
    CLIENT_V1,
    CLIENT_V3,
    User,
    assert_error,
    ok,
    path_part,
    register,
)
from tests.support.server import make_config
from tests.support.shared_server import RunningServer, SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"

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

FIVE_THOUSAND_DIGITS = "9" * 5000
NESTING = 1000
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


def json_array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def json_object_text(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in members) + "}"


DEEP_ARRAY = "[" * NESTING + "]" * NESTING
DEEP_OBJECT = '{"a":' * NESTING + "{}" + "}" * NESTING
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


json_values = st.recursive(
    st.sampled_from(HOSTILE_LEAVES),
    lambda children: (
        st.lists(children, max_size=3).map(json_array)
        | st.lists(st.tuples(st.sampled_from(HOSTILE_KEYS), children), max_size=4).map(
            json_object_text
        )
    ),
    max_leaves=8,
)
hostile_bodies = st.one_of(
    st.lists(st.tuples(st.sampled_from(HOSTILE_KEYS), json_values), min_size=1, max_size=5).map(
        json_object_text
    ),
    st.sampled_from(DEEP_BODIES),
    json_values,
)

# ---- hostile query values, already percent-encoded

MAX_QUERY_LENGTH = 8000
MAX_URL_LENGTH = 14_000
"""Below hypercorn's 16 KiB limit for a request head: a longer one never reaches the app."""

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


PLAIN_HTTP = ssl.create_default_context()
"""The server is plain HTTP on 127.0.0.1; sharing one (unused) TLS context spares each
example's client the cost of building its own, which would dominate the run time."""


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


class ErrorLog(logging.Handler):
    """Collects what the server logs at ERROR or above (tracebacks among it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]


@contextlib.contextmanager
def server_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def no_traceback_in_the_server_log() -> Iterator[None]:
    """Whatever a test of this module sends, the server logs no error (issue 13: "no
    traceback for any of it")."""
    with server_errors() as errors:
        yield
    assert errors.lines() == []


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
@example(picks=[], body=every_field("[]", "{}", "true"), query=every_parameter("-1"))
@example(picks=[], body=every_field("null", "0", '""'), query=every_parameter(str(2**64)))
@example(
    picks=[],
    body=every_field(str(2**64), "-1", "1.5", r'"\u0000\n"'),
    query=f"{huge_numbers_for(['to', 'limit', 'next_batch', 'version'])}&dir=%ED%A0%80",
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


# ---- one test per finding of the issue

HOSTILE_NUMBERS = ["²", "١٢٣", FIVE_THOUSAND_DIGITS]
HOSTILE_NUMBER_IDS = ["superscript-two", "arabic-indic-digits", "5000-digits"]
LONE_SURROGATE = "\ud800"
"""Sent as the JSON escape `\\ud800` (what `json.dumps` writes for it): valid JSON syntax,
but no UTF-8 string, so no canonical JSON, no event, no response can hold it."""

bad_numbers = pytest.mark.parametrize("value", HOSTILE_NUMBERS, ids=HOSTILE_NUMBER_IDS)


async def send_text(
    user: User | None,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    text: str,
    *,
    prefix: str = CLIENT_V3,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """`method prefix+path` with `text` as the JSON body, as the user (or without login)."""
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = f"Bearer {user.access_token}"
    return await http.request(
        method, prefix + path, content=text.encode(), headers=headers, params=params
    )


def assert_one_of_errors(response: httpx.Response, *allowed: tuple[int, str]) -> None:
    """One of the allowed (status, errcode) pairs, in the spec's error shape."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert (response.status_code, body.get("errcode")) in allowed, (response.status_code, body)
    assert isinstance(body.get("error"), str), body


async def assert_still_served(user: User, room_id: str) -> None:
    """The user's `/sync`, own `/keys/query` and the room's `/messages` answer 200."""
    ok(await user.get("/sync", timeout=0))
    ok(await user.post("/keys/query", {"device_keys": {user.user_id: []}}))
    ok(await user.messages(room_id, limit=10))


async def member_and_room(server: SharedServer, room_version: str = "10") -> tuple[User, str]:
    user = await register(server)
    return user, await user.create_room(preset="public_chat", room_version=room_version)


async def test_a_path_no_route_serves_is_404_unrecognized_however_long(server: SharedServer):
    """Also under `/static`, which the web framework would serve from the package."""
    for path in ["/static/" + FIVE_THOUSAND_DIGITS, "/static/app.py", f"{CLIENT_V3}/{'x' * 5000}"]:
        assert_error(await server.client.get(path), 404, "M_UNRECOGNIZED")


# finding 1: Unicode digits and huge numbers in query parameters


@bad_numbers
async def test_unicode_digit_or_huge_since_on_sync_is_invalid_param(
    server: SharedServer, value: str
):
    user, _ = await member_and_room(server)
    assert_error(await user.get("/sync", since=value, timeout=0), 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "to", "limit"])
async def test_unicode_digit_or_huge_from_to_limit_on_messages_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, room_id = await member_and_room(server)
    assert_error(await user.messages(room_id, **{name: value}), 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "to", "limit"])
async def test_unicode_digit_or_huge_paging_on_relations_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, room_id = await member_and_room(server)
    event_id = await user.send(room_id)
    response = await user.request(
        "GET",
        f"/rooms/{path_part(room_id)}/relations/{path_part(event_id)}",
        params={name: value},
        prefix=CLIENT_V1,
    )
    assert_error(response, 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "limit"])
async def test_unicode_digit_or_huge_paging_on_threads_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, room_id = await member_and_room(server)
    response = await user.request(
        "GET", f"/rooms/{path_part(room_id)}/threads", params={name: value}, prefix=CLIENT_V1
    )
    assert_error(response, 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "to"])
async def test_unicode_digit_or_huge_token_on_key_changes_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, _ = await member_and_room(server)
    since = ok(await user.get("/sync", timeout=0))["next_batch"]
    params = {"from": since, "to": since, name: value}
    assert_error(await user.get("/keys/changes", **params), 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["since", "limit"])
async def test_unicode_digit_or_huge_paging_on_public_rooms_without_login_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    response = await server.client.get(f"{CLIENT_V3}/publicRooms", params={name: value})
    assert_error(response, 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "limit"])
async def test_unicode_digit_or_huge_paging_on_notifications_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, _ = await member_and_room(server)
    assert_error(await user.get("/notifications", **{name: value}), 400, "M_INVALID_PARAM")


@bad_numbers
async def test_unicode_digit_or_huge_next_batch_on_search_is_invalid_param(
    server: SharedServer, value: str
):
    user, room_id = await member_and_room(server)
    await user.send(room_id, "findable")
    response = await user.http.post(
        f"{CLIENT_V3}/search",
        params={"next_batch": value},
        json={"search_categories": {"room_events": {"search_term": "findable"}}},
        headers={"Authorization": f"Bearer {user.access_token}"},
    )
    assert_error(response, 400, "M_INVALID_PARAM")


@bad_numbers
@pytest.mark.parametrize("name", ["from", "limit", "max_depth"])
async def test_unicode_digit_or_huge_paging_on_hierarchy_is_invalid_param(
    server: SharedServer, name: str, value: str
):
    user, room_id = await member_and_room(server)
    response = await user.request(
        "GET", f"/rooms/{path_part(room_id)}/hierarchy", params={name: value}, prefix=CLIENT_V1
    )
    assert_error(response, 400, "M_INVALID_PARAM")


BACKUP_VERSION_REFUSALS = (
    (400, "M_INVALID_PARAM"),
    (404, "M_NOT_FOUND"),
    (403, "M_WRONG_ROOM_KEYS_VERSION"),
)
"""A backup version is an opaque string in the spec: one that cannot be ours may be
refused as malformed, as a backup that does not exist (Synapse), or, when keys are
stored, as not the current version (`key_backup.yaml`)."""


@bad_numbers
@pytest.mark.parametrize(
    ("method", "path", "in_query"),
    [
        ("GET", "/room_keys/version/{version}", False),
        ("PUT", "/room_keys/version/{version}", False),
        ("DELETE", "/room_keys/version/{version}", False),
        ("GET", "/room_keys/keys", True),
        ("PUT", "/room_keys/keys", True),
        ("DELETE", "/room_keys/keys", True),
        ("GET", "/room_keys/keys/!room:localhost", True),
        ("GET", "/room_keys/keys/!room:localhost/session", True),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_unicode_digit_or_huge_backup_version_is_refused_on_every_room_keys_route(
    server: SharedServer, method: str, path: str, in_query: bool, value: str
):
    user, _ = await member_and_room(server)
    body = {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "k"}}
    ok(await user.post("/room_keys/version", body))
    if in_query:
        response = await user.request(
            method, path, params={"version": value}, body={"rooms": {}} if method == "PUT" else None
        )
    else:
        response = await user.request(
            method,
            path.format(version=quote(value, safe="")),
            body={**body, "version": value} if method == "PUT" else None,
        )
    assert_one_of_errors(response, *BACKUP_VERSION_REFUSALS)


# finding 2: deeply nested JSON


async def test_deeply_nested_json_on_login_is_refused_as_not_json(server: SharedServer):
    body = json_object_text(
        [('"type"', '"m.login.password"'), ('"identifier"', DEEP_OBJECT), ('"password"', '"x"')]
    )
    response = await send_text(None, server.client, "POST", "/login", body)
    assert_one_of_errors(response, (400, "M_NOT_JSON"), (400, "M_BAD_JSON"))


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["arrays", "objects"])
async def test_deeply_nested_json_in_event_content_is_refused_and_the_room_still_reads(
    server: SharedServer, body: str
):
    user, room_id = await member_and_room(server)
    content = json_object_text([('"msgtype"', '"m.text"'), ('"body"', body)])
    response = await send_text(
        user, server.client, "PUT", f"/rooms/{path_part(room_id)}/send/m.room.message/deep", content
    )
    assert_one_of_errors(response, (400, "M_NOT_JSON"), (400, "M_BAD_JSON"))
    await assert_still_served(user, room_id)


async def test_deeply_nested_json_in_create_room_is_refused(server: SharedServer):
    user, _ = await member_and_room(server)
    body = json_object_text([('"creation_content"', DEEP_OBJECT)])
    response = await send_text(user, server.client, "POST", "/createRoom", body)
    assert_one_of_errors(response, (400, "M_NOT_JSON"), (400, "M_BAD_JSON"))


# finding 3: a lone surrogate in a JSON string is refused at the door


@dataclass
class Scene:
    """A user in a v10 room with a message and a second member: what the requests name."""

    user: User
    other: User
    room_id: str
    event_id: str


SURROGATE_REQUESTS: dict[str, Any] = {
    "message event": lambda s: (
        "PUT",
        f"/rooms/{path_part(s.room_id)}/send/m.room.message/surrogate",
        {"msgtype": "m.text", "body": LONE_SURROGATE},
    ),
    "key of event content": lambda s: (
        "PUT",
        f"/rooms/{path_part(s.room_id)}/send/org.example.event/surrogate-key",
        {LONE_SURROGATE: "value"},
    ),
    "state event": lambda s: (
        "PUT",
        f"/rooms/{path_part(s.room_id)}/state/m.room.topic/",
        {"topic": LONE_SURROGATE},
    ),
    "createRoom": lambda s: ("POST", "/createRoom", {"name": LONE_SURROGATE}),
    "global account data": lambda s: (
        "PUT",
        f"/user/{path_part(s.user.user_id)}/account_data/org.example.data",
        {"value": LONE_SURROGATE},
    ),
    "room account data": lambda s: (
        "PUT",
        f"/user/{path_part(s.user.user_id)}/rooms/{path_part(s.room_id)}"
        "/account_data/org.example.data",
        {"value": LONE_SURROGATE},
    ),
    "display name": lambda s: (
        "PUT",
        f"/profile/{path_part(s.user.user_id)}/displayname",
        {"displayname": LONE_SURROGATE},
    ),
    "avatar": lambda s: (
        "PUT",
        f"/profile/{path_part(s.user.user_id)}/avatar_url",
        {"avatar_url": f"mxc://localhost/{LONE_SURROGATE}"},
    ),
    "tag": lambda s: (
        "PUT",
        f"/user/{path_part(s.user.user_id)}/rooms/{path_part(s.room_id)}/tags/u.work",
        {"order": 0.5, "note": LONE_SURROGATE},
    ),
    "push rule": lambda s: (
        "PUT",
        "/pushrules/global/content/surrogate",
        {"pattern": LONE_SURROGATE, "actions": ["notify"]},
    ),
    "receipt": lambda s: (
        "POST",
        f"/rooms/{path_part(s.room_id)}/receipt/m.read/{path_part(s.event_id)}",
        {"thread_id": LONE_SURROGATE},
    ),
    "read marker": lambda s: (
        "POST",
        f"/rooms/{path_part(s.room_id)}/read_markers",
        {"m.fully_read": s.event_id, "m.read": f"${LONE_SURROGATE}"},
    ),
    "kick reason": lambda s: (
        "POST",
        f"/rooms/{path_part(s.room_id)}/kick",
        {"user_id": s.other.user_id, "reason": LONE_SURROGATE},
    ),
    "redaction reason": lambda s: (
        "PUT",
        f"/rooms/{path_part(s.room_id)}/redact/{path_part(s.event_id)}/surrogate",
        {"reason": LONE_SURROGATE},
    ),
    "report reason": lambda s: (
        "POST",
        f"/rooms/{path_part(s.room_id)}/report/{path_part(s.event_id)}",
        {"reason": LONE_SURROGATE},
    ),
    "login identifier": lambda s: (
        "POST",
        "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": LONE_SURROGATE},
            "password": "x",
        },
    ),
}


@pytest.mark.parametrize("what", list(SURROGATE_REQUESTS))
async def test_lone_surrogate_is_refused_as_bad_json_and_nothing_breaks(
    server: SharedServer, what: str
):
    user, room_id = await member_and_room(server)
    other = await register(server)
    await other.join(room_id)
    scene = Scene(user, other, room_id, await user.send(room_id))
    method, path, body = SURROGATE_REQUESTS[what](scene)

    response = await send_text(user, server.client, method, path, json.dumps(body))

    assert_error(response, 400, "M_BAD_JSON")
    await assert_still_served(user, room_id)
    await assert_still_served(other, room_id)


# finding 4: nothing that makes a response unencodable is stored, and no read fails


async def test_to_device_with_lone_surrogate_is_refused_and_sync_still_works(
    server: SharedServer,
):
    alice = await register(server)
    bob = await register(server)
    since = ok(await bob.get("/sync", timeout=0))["next_batch"]
    body = {"messages": {bob.user_id: {bob.device_id: {"body": LONE_SURROGATE}}}}

    response = await send_text(
        alice, server.client, "PUT", "/sendToDevice/org.example.secret/surrogate", json.dumps(body)
    )

    assert_error(response, 400, "M_BAD_JSON")
    ok(await bob.get("/sync", timeout=0, since=since))
    ok(await bob.get("/sync", timeout=0))


async def test_presence_status_msg_with_lone_surrogate_is_refused_and_room_members_still_sync(
    server: SharedServer,
):
    alice, room_id = await member_and_room(server)
    bob = await register(server)
    await bob.join(room_id)
    since = ok(await bob.get("/sync", timeout=0))["next_batch"]
    body = {"presence": "online", "status_msg": LONE_SURROGATE}
    status = f"/presence/{path_part(alice.user_id)}/status"

    response = await send_text(alice, server.client, "PUT", status, json.dumps(body))

    assert_error(response, 400, "M_BAD_JSON")
    ok(await bob.get("/sync", timeout=0, since=since))
    ok(await bob.get(status))
    await assert_still_served(alice, room_id)


async def test_device_display_name_with_lone_surrogate_is_refused_and_keys_query_still_works(
    server: SharedServer,
):
    alice, room_id = await member_and_room(server)
    bob = await register(server)
    await bob.join(room_id)
    body = {"display_name": LONE_SURROGATE}

    response = await send_text(
        alice, server.client, "PUT", f"/devices/{path_part(alice.device_id)}", json.dumps(body)
    )

    assert_error(response, 400, "M_BAD_JSON")
    ok(await bob.post("/keys/query", {"device_keys": {alice.user_id: []}}))
    ok(await alice.get("/devices"))


async def test_initial_device_display_name_with_lone_surrogate_is_refused_at_login(
    server: SharedServer,
):
    alice = await register(server, password="correct horse")
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "correct horse",
        "initial_device_display_name": LONE_SURROGATE,
    }

    response = await send_text(None, server.client, "POST", "/login", json.dumps(body))

    assert_error(response, 400, "M_BAD_JSON")
    ok(await alice.post("/keys/query", {"device_keys": {alice.user_id: []}}))


async def test_filter_with_lone_surrogate_is_refused_and_filters_still_read(
    server: SharedServer,
):
    alice, room_id = await member_and_room(server)
    filters = f"/user/{path_part(alice.user_id)}/filter"
    good = ok(await alice.post(filters, {"room": {"timeline": {"limit": 5}}}))["filter_id"]
    body = {"room": {"timeline": {"types": [LONE_SURROGATE]}}}

    response = await send_text(alice, server.client, "POST", filters, json.dumps(body))

    assert_error(response, 400, "M_BAD_JSON")
    ok(await alice.get(f"{filters}/{good}"))
    ok(await alice.get("/sync", timeout=0, filter=good))
    inline = json.dumps({"room": {"timeline": {"types": [LONE_SURROGATE]}}})
    assert_one_of_errors(
        await alice.get("/sync", timeout=0, filter=inline), (400, "M_BAD_JSON"), (400, "M_NOT_JSON")
    )
    await assert_still_served(alice, room_id)


async def test_key_backup_auth_data_with_lone_surrogate_is_refused_and_the_backup_still_reads(
    server: SharedServer,
):
    alice, _ = await member_and_room(server)
    good = {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "good"}}
    version = ok(await alice.post("/room_keys/version", good))["version"]
    bad = {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": LONE_SURROGATE}}

    created = await send_text(alice, server.client, "POST", "/room_keys/version", json.dumps(bad))
    updated = await send_text(
        alice,
        server.client,
        "PUT",
        f"/room_keys/version/{version}",
        json.dumps({**bad, "version": version}),
    )

    assert_error(created, 400, "M_BAD_JSON")
    assert_error(updated, 400, "M_BAD_JSON")
    assert ok(await alice.get("/room_keys/version"))["auth_data"] == good["auth_data"]
    assert ok(await alice.get(f"/room_keys/version/{version}"))["version"] == version


async def store_past_the_api(server: SharedServer, write: Any) -> None:
    """Store a value through a service directly, as an older version or another path might
    have; a service that refuses it (a `MatrixError`) stores nothing, which is fine too."""

    async def call() -> None:
        with contextlib.suppress(MatrixError):
            write()

    await server.call(call)


async def test_a_stored_lone_surrogate_in_a_to_device_message_never_makes_sync_fail(
    server: SharedServer,
):
    alice = await register(server)
    bob = await register(server)
    messages = {bob.user_id: {bob.device_id: {"body": LONE_SURROGATE}}}

    await store_past_the_api(
        server,
        lambda: server.services.to_device.send(
            alice.user_id, alice.device_id, "org.example.secret", "stored", messages
        ),
    )

    first = ok(await bob.get("/sync", timeout=0))
    ok(await bob.get("/sync", timeout=0, since=first["next_batch"]))


async def test_a_stored_lone_surrogate_in_a_status_message_never_makes_sync_fail(
    server: SharedServer,
):
    alice, room_id = await member_and_room(server)
    bob = await register(server)
    await bob.join(room_id)

    await store_past_the_api(
        server,
        lambda: server.services.presence.set_presence(alice.user_id, "online", LONE_SURROGATE),
    )

    ok(await bob.get("/sync", timeout=0))
    ok(await bob.get(f"/presence/{path_part(alice.user_id)}/status"))


async def test_a_stored_lone_surrogate_in_a_device_name_never_makes_keys_query_fail(
    server: SharedServer,
):
    alice, room_id = await member_and_room(server)
    bob = await register(server)
    await bob.join(room_id)

    await store_past_the_api(
        server,
        lambda: server.services.devices.set_display_name(
            alice.user_id, alice.device_id, LONE_SURROGATE
        ),
    )

    ok(await bob.post("/keys/query", {"device_keys": {alice.user_id: []}}))
    ok(await alice.get("/devices"))


# finding 5: numbers canonical JSON cannot hold, in event content


@pytest.mark.parametrize("room_version", ["5", "10"])
@pytest.mark.parametrize("number", ["1e400", "-1e400"], ids=["infinity", "minus-infinity"])
async def test_infinite_number_in_event_content_is_refused_in_every_room_version(
    server: SharedServer, room_version: str, number: str
):
    user, room_id = await member_and_room(server, room_version)
    content = json_object_text([('"msgtype"', '"m.text"'), ('"body"', '"x"'), ('"n"', number)])

    response = await send_text(
        user, server.client, "PUT", f"/rooms/{path_part(room_id)}/send/m.room.message/inf", content
    )

    assert_one_of_errors(response, (400, "M_BAD_JSON"), (400, "M_NOT_JSON"))
    await assert_still_served(user, room_id)


NOT_CANONICAL_NUMBERS = [1.5, 2**53, -(2**53), 10**30]
NOT_CANONICAL_IDS = ["float", "2**53", "-(2**53)", "10**30"]


@pytest.mark.parametrize("number", NOT_CANONICAL_NUMBERS, ids=NOT_CANONICAL_IDS)
async def test_float_or_integer_beyond_2_53_in_a_v10_room_event_is_bad_json(
    server: SharedServer, number: float | int
):
    user, room_id = await member_and_room(server, "10")

    message = await user.send_event(room_id, "org.example.number", {"n": number})
    state = await user.put_state(room_id, "org.example.number", {"n": number}, "k")

    assert_error(message, 400, "M_BAD_JSON")
    assert_error(state, 400, "M_BAD_JSON")
    await assert_still_served(user, room_id)


async def test_integers_at_the_canonical_bounds_are_accepted_in_a_v10_room(server: SharedServer):
    user, room_id = await member_and_room(server, "10")
    content = {"largest": 2**53 - 1, "smallest": -(2**53 - 1)}

    event_id = ok(await user.send_event(room_id, "org.example.number", content))["event_id"]

    event = ok(await user.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"))
    assert event["content"] == content


@pytest.mark.parametrize("number", NOT_CANONICAL_NUMBERS, ids=NOT_CANONICAL_IDS)
async def test_float_or_integer_beyond_2_53_in_a_v5_room_event_is_accepted(
    server: SharedServer, number: float | int
):
    user, room_id = await member_and_room(server, "5")

    event_id = ok(await user.send_event(room_id, "org.example.number", {"n": number}))["event_id"]

    event = ok(await user.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"))
    assert event["content"] == {"n": number}
    await assert_still_served(user, room_id)
