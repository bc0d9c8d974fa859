"""`python -m bench memory`: RSS under load and budgets, big rooms, a user in many rooms.

Issue 19's figures (numbers only, never assertions). The real server runs as
`python -m matrix_conduit` (LevelDB in a temporary directory, `log = "warn"`);
its RSS (`VmRSS`, and the high-water mark `VmHWM`) and CPU time come from
`/proc/<pid>/`. Big databases are built first in this process with the
services themselves (no HTTP, no password hashing), then served.

Parts (`python -m bench.memory PART... [--members N --events N --rooms N]`):

- `entries`: bytes per cache entry, measured with tracemalloc (the constants of
  `matrix_conduit/lru.py`).
- `idle`: RSS of a fresh server three seconds after it answers.
- `standard`: a load like the one issue 19 compared with Synapse: 8 senders and
  20 long-polling listeners in one room, 5 rooms of 200 state events, initial
  syncs; RSS after it.
- `bigroom`: a room of `--members` (10,000) members and `--events` (100,000)
  events, served with the default `cache_memory_mb` and with 64: a new user
  joins (a state change), sends messages, changes their display name (another),
  syncs, pages back through the whole history with `/messages`, reads
  `/members`; server CPU of each step and RSS after, against the budget.
- `sync`: a user in `--rooms` (1,000) rooms and one in 10, each room with a few
  messages: initial `/sync` and an incremental one when nothing happened
  (all rooms quiet, 200 of them): median wall time, mean server CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import trio

from bench.versions import cpu_seconds
from tests.support.process import ServerProcess, server_process, write_config

CLIENT = "/_matrix/client/v3"
SERVER = "localhost"
QUIET_SYNCS = 200
MIB = 1024 * 1024


# ---- process figures


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon of a process, MiB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


def _mib(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} MiB" for name, value in figures.items())


@contextmanager
def serving(directory: Path, **config: Any) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    path = write_config(directory, log="warn", allow_registration=True, **config)
    with (
        server_process(path) as server,
        httpx.Client(base_url=server.base_url, timeout=600) as client,
    ):
        yield server, client


def register(client: httpx.Client, name: str) -> str:
    body = {"username": name, "auth": {"type": "m.login.dummy"}}
    answer = client.post(f"{CLIENT}/register", json=body)
    answer.raise_for_status()
    return answer.json()["access_token"]


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def timed(server: ServerProcess, action: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, server CPU seconds, result) of one action."""
    cpu = cpu_seconds(server.process.pid)
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, cpu_seconds(server.process.pid) - cpu, result


# ---- entries


def entries() -> None:
    """Bytes per entry of each kind of cache, as `lru.py`'s constants were measured."""
    from matrix_conduit.lru import LRUCache
    from matrix_conduit.service.rooms.state_compressor import Layer
    from matrix_conduit.storage.kv import u64

    count = 10_000
    event = {
        "type": "m.room.message",
        "room_id": "!abcdefghijklmnopqr:example.org",
        "sender": "@someone:example.org",
        "origin_server_ts": 1_700_000_000_000,
        "depth": 1234,
        "content": {"msgtype": "m.text", "body": "Hello there, how are you doing today?"},
        "prev_events": ["$" + "a" * 43],
        "auth_events": ["$" + "b" * 43, "$" + "c" * 43, "$" + "d" * 43],
        "hashes": {"sha256": "e" * 43},
        "signatures": {"example.org": {"ed25519:a_abcd": "x" * 86}},
        "unsigned": {"age_ts": 1_700_000_000_000},
        "event_id": "$" + "f" * 43,
    }
    raw = json.dumps(event, separators=(",", ":")).encode()
    keys = [("m.room.member", f"@user{i:06d}:example.org") for i in range(count)]
    ids = [f"$abcdefghijklmnopqrstuvwxyz{i:017d}" for i in range(count)]

    def fill_events() -> object:
        cache: LRUCache[str, object] = LRUCache(10**9)
        for number in range(count):
            cache.put(f"$ev{number:040d}", json.loads(raw), 0)
        return cache

    def fill_short_ids() -> object:
        cache: LRUCache[str, int] = LRUCache(10**9)
        for number, event_id in enumerate(ids):
            cache.put(event_id, 10**12 + number, 0)
        return cache

    def fill_state_keys() -> object:
        cache: LRUCache[tuple[str, str], int] = LRUCache(10**9)
        for number in range(count):
            cache.put(("m.room.member", f"@user{number:06d}:example.org"), 10**12 + number, 0)
        return cache

    def fill_layer() -> object:
        full = frozenset(u64(10**12 + i) + u64(2 * 10**12 + i) for i in range(count))
        layer = Layer(1, full, frozenset(), None)
        layer.mapping()
        return layer

    cases: list[tuple[str, Callable[[], object]]] = [
        (f"event ({len(raw)} bytes of JSON)", fill_events),
        ("event id -> short id", fill_short_ids),
        ("state key -> short id", fill_state_keys),
        ("state map slot (strings shared)", lambda: dict(zip(keys, ids, strict=True))),
        ("compressor layer entry", fill_layer),
        ("member set slot (strings shared)", lambda: frozenset(key[1] for key in keys)),
    ]
    print("bytes per cache entry (tracemalloc, 10,000 entries):")
    for label, fill in cases:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        print(f"  {label}: {(after - before) / count:.0f}")


# ---- idle


def idle() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as directory,
        serving(Path(directory)) as (server, _client),
    ):
        time.sleep(3)
        print(f"idle: {_mib(memory_of(server.process.pid))}")


# ---- the standard load


async def _standard_load(url: str, tokens: list[str], room_id: str, messages: int) -> None:
    senders, listeners = tokens[:8], tokens[8:]
    sent = 0

    async def send(token: str) -> None:
        nonlocal sent
        async with httpx.AsyncClient(base_url=url, headers=headers(token), timeout=60) as client:
            while sent < messages:
                sent += 1
                path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{sent}"
                body = {"msgtype": "m.text", "body": f"message {sent} " + "x" * 100}
                (await client.put(path, json=body)).raise_for_status()

    async def listen(token: str, done: trio.Event) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers(token), timeout=60) as client:
            since = (await client.get(f"{CLIENT}/sync")).json()["next_batch"]
            while not done.is_set():
                params = {"since": since, "timeout": "5000"}
                since = (await client.get(f"{CLIENT}/sync", params=params)).json()["next_batch"]

    done = trio.Event()
    async with trio.open_nursery() as listening:
        for token in listeners:
            listening.start_soon(listen, token, done)
        async with trio.open_nursery() as sending:
            for token in senders:
                sending.start_soon(send, token)
        done.set()


def standard(messages: int = 2000) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as directory,
        serving(Path(directory)) as (server, client),
    ):
        tokens = [register(client, f"user{number}") for number in range(28)]
        room = client.post(
            f"{CLIENT}/createRoom", json={"preset": "public_chat"}, headers=headers(tokens[0])
        ).json()["room_id"]
        for token in tokens[1:]:
            client.post(f"{CLIENT}/join/{quote(room)}", headers=headers(token))
        for number in range(5):
            state_room = client.post(
                f"{CLIENT}/createRoom",
                json={"preset": "public_chat"},
                headers=headers(tokens[0]),
            ).json()["room_id"]
            for key in range(200):
                client.put(
                    f"{CLIENT}/rooms/{quote(state_room)}/state/org.example.state/k{key}",
                    json={"value": key, "room": number},
                    headers=headers(tokens[0]),
                ).raise_for_status()
        trio.run(_standard_load, server.base_url, tokens, room, messages)
        for token in tokens:
            client.get(f"{CLIENT}/sync", headers=headers(token)).raise_for_status()
        print(
            f"standard load ({messages} messages, 8 senders, 20 listeners, 5 rooms of 200"
            f" state events, 28 initial syncs): {_mib(memory_of(server.process.pid))}"
        )


# ---- building big databases with the services


@contextmanager
def offline_services(directory: Path) -> Iterator[Any]:
    from matrix_conduit.config import build_config
    from matrix_conduit.service import Services
    from matrix_conduit.storage import open_database

    config = build_config(
        {"server_name": SERVER, "database_backend": "leveldb", "database_path": str(directory)}
    )
    db = open_database("leveldb", str(directory / "db"))
    try:
        services = Services(config, db)
        # Nobody in these rooms ever used sliding sync: its per-member index hook has
        # nothing to write, but asks each member of the room per event.
        index = getattr(getattr(services, "sliding_sync", None), "index", None)
        hooks = services.rooms.timeline.appending
        if index is not None and index.note_event in hooks:
            hooks.remove(index.note_event)
        yield services
    finally:
        db.close()


async def _build_big_room(services: Any, members: int, events: int) -> str:
    from matrix_conduit.service.rooms.create import RoomSettings

    rooms = services.rooms
    creator = f"@creator:{SERVER}"
    room_id = await rooms.creation.create(
        creator, RoomSettings(room_version="10", preset="public_chat")
    )
    started = time.process_time()
    for number in range(members - 1):
        await rooms.membership.join(room_id, f"@member{number:05d}:{SERVER}")
    joined = time.process_time()
    messages = max(0, events - members - 6)
    for number in range(messages):
        sender = f"@member{number % (members - 1):05d}:{SERVER}"
        body = {"msgtype": "m.text", "body": f"message {number} in the big room"}
        await rooms.builder.send(room_id, sender, "m.room.message", body)
    print(
        f"  built: {members} members ({(joined - started) / max(1, members - 1) * 1000:.2f} ms"
        f" CPU per join), {messages} messages"
        f" ({(time.process_time() - joined) / max(1, messages) * 1000:.2f} ms CPU each),"
        " in this process"
    )
    return room_id


def bigroom(
    members: int = 10_000,
    events: int = 100_000,
    budgets: tuple = (None, 64.0),
    database: Path | None = None,
) -> None:
    """The big-room part; with `database`, the room built there is kept and served again
    by later runs (building it takes minutes; each run's readers only add to it)."""
    with contextlib.ExitStack() as stack:
        if database is None:
            database = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        print(f"big room: {members} members, {events} events")
        kept = database / "room_id"
        if kept.exists():
            room_id = kept.read_text()
            print(f"  served again from {database}")
        else:
            with offline_services(database) as services:
                room_id = trio.run(_build_big_room, services, members, events)
            kept.write_text(room_id)
        _serve_big_room(database, room_id, budgets)


def _serve_big_room(path: Path, room_id: str, budgets: tuple) -> None:
    run = int(time.time())
    for budget in budgets:
        overrides = {} if budget is None else {"cache_memory_mb": budget}
        label = "default budget (96 MiB)" if budget is None else f"cache_memory_mb = {budget:g}"
        with serving(path, **overrides) as (server, client):
            print(f" {label}: at start {_mib(memory_of(server.process.pid))}")
            _use_big_room(server, client, room_id, f"reader{int(budget or 0)}x{run}")
            print(f"  after: {_mib(memory_of(server.process.pid))}")


def _use_big_room(server: ServerProcess, client: httpx.Client, room_id: str, name: str) -> None:
    """A new user joins, talks, changes name, syncs and reads the whole history."""
    auth = headers(register(client, name))
    room = quote(room_id)
    user = quote(f"@{name}:{SERVER}")

    def join() -> None:
        client.post(f"{CLIENT}/join/{room}", headers=auth).raise_for_status()

    def send(number: int) -> None:
        path = f"{CLIENT}/rooms/{room}/send/m.room.message/m{number}"
        client.put(path, json={"msgtype": "m.text", "body": "hello"}, headers=auth)

    def rename(number: int) -> None:
        path = f"{CLIENT}/profile/{user}/displayname"
        client.put(path, json={"displayname": f"Reader {number}"}, headers=auth)

    def initial_sync() -> None:
        lazy = json.dumps({"room": {"state": {"lazy_load_members": True}}})
        client.get(f"{CLIENT}/sync", params={"filter": lazy}, headers=auth).raise_for_status()

    def page_back() -> int:
        pages, token_from = 0, None
        while True:
            params = {"dir": "b", "limit": "1000"}
            if token_from is not None:
                params["from"] = token_from
            path = f"{CLIENT}/rooms/{room}/messages"
            answer = client.get(path, params=params, headers=auth).json()
            pages += 1
            token_from = answer.get("end")
            if token_from is None or not answer.get("chunk"):
                return pages

    def members() -> None:
        client.get(f"{CLIENT}/rooms/{room}/members", headers=auth).raise_for_status()

    wall, cpu, _ = timed(server, join)
    print(f"  join (state change): {wall * 1000:.1f} ms, server CPU {cpu * 1000:.1f} ms")
    # /proc counts CPU in 10 ms ticks: many of each, the total divided.
    _, cpu, _ = timed(server, lambda: [send(number) for number in range(100)])
    print(f"  message: server CPU {cpu * 10:.2f} ms each (100 sent)")
    _, cpu, _ = timed(server, lambda: [rename(number) for number in range(50)])
    print(f"  display name change (a state change): server CPU {cpu * 20:.2f} ms each (50)")
    wall, cpu, _ = timed(server, initial_sync)
    print(f"  initial sync (lazy members): {wall * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms")
    print(f"   RSS then: {_mib(memory_of(server.process.pid))}")
    wall, cpu, pages = timed(server, page_back)
    print(f"  paged back through the history: {pages} pages, {wall:.1f} s, CPU {cpu:.1f} s")
    print(f"   RSS then: {_mib(memory_of(server.process.pid))}")
    wall, cpu, _ = timed(server, members)
    print(f"  /members: {wall * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms")


# ---- a user in many rooms


async def _build_rooms(services: Any, user: str, rooms: int) -> None:
    from matrix_conduit.service.rooms.create import RoomSettings

    for number in range(rooms):
        room_id = await services.rooms.creation.create(
            user, RoomSettings(room_version="10", preset="private_chat", name=f"room {number}")
        )
        for message in range(3):
            body = {"msgtype": "m.text", "body": f"message {message}"}
            await services.rooms.builder.send(room_id, user, "m.room.message", body)


async def _account(services: Any, name: str) -> str:
    from matrix_conduit.service.devices import DeviceLogin

    registered = await services.registration.register(
        username=name, password=None, login=DeviceLogin()
    )
    return registered.tokens.access_token


def many_rooms(rooms: int = 1000) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as directory:
        path = Path(directory)
        with offline_services(path) as services:
            many = trio.run(_account, services, "many")
            few = trio.run(_account, services, "few")
            trio.run(_build_rooms, services, f"@many:{SERVER}", rooms)
            trio.run(_build_rooms, services, f"@few:{SERVER}", 10)
        with serving(path) as (server, client):
            for label, token in ((f"{rooms} rooms", many), ("10 rooms", few)):
                _sync_figures(server, client, label, headers(token))
            print(f"  server after: {_mib(memory_of(server.process.pid))}")


def _sync_figures(server: ServerProcess, client: httpx.Client, label: str, auth: dict) -> None:
    def sync(params: dict[str, str]) -> httpx.Response:
        return client.get(f"{CLIENT}/sync", params=params, headers=auth)

    # /proc counts CPU in 10 ms ticks: CPU figures are totals divided by the calls.
    initial = [timed(server, lambda: sync({})) for _ in range(3)]
    quiet = {"since": initial[-1][2].json()["next_batch"], "timeout": "0"}
    incremental = [timed(server, lambda: sync(quiet)) for _ in range(QUIET_SYNCS)]
    initial_wall = statistics.median(wall for wall, _, _ in initial)
    initial_cpu = sum(cpu for _, cpu, _ in initial) / len(initial)
    quiet_wall = statistics.median(wall for wall, _, _ in incremental) * 1000
    quiet_cpu = sum(cpu for _, cpu, _ in incremental) / len(incremental) * 1000
    print(
        f"user in {label}: initial sync {initial_wall:.3f} s (CPU {initial_cpu:.3f} s);"
        f" incremental, all quiet: {quiet_wall:.1f} ms (CPU {quiet_cpu:.1f} ms)"
    )


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "entries": lambda _: entries(),
    "idle": lambda _: idle(),
    "standard": lambda args: standard(args.messages),
    "bigroom": lambda args: bigroom(args.members, args.events, database=args.database),
    "sync": lambda args: many_rooms(args.rooms),
}


def run(connections: int = 8, duration: float = 10.0, warmup: float = 2.0) -> None:
    """`python -m bench memory`: every part with its defaults."""
    arguments = argparse.Namespace(
        messages=2000, members=10_000, events=100_000, rooms=1000, database=None
    )
    for part in PARTS.values():
        part(arguments)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=", ".join(PARTS))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument(
        "--database",
        type=Path,
        help="bigroom: build the room in this directory once, serve it from there after",
    )
    arguments = parser.parse_args()
    for name in arguments.parts or PARTS:
        if name not in PARTS:
            parser.error(f"unknown part {name} (known: {', '.join(PARTS)})")
        PARTS[name](arguments)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
