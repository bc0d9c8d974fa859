"""What one server process keeps in memory follows what the others change (issue #18).

Two real processes on one PostgreSQL database (tests/support/cluster.py); a
change made through the first is seen through the second: rooms' state and
power levels, membership, redactions, tokens, account data and push rules.
Checks made under the room's lock (may this user send?) hold at once; plain
reads see the news once it has travelled (`until_seen`: bounded, never timed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from tests.support import postgres
from tests.support.cluster import register_user, through, two_processes, two_processes_with_a_room
from tests.support.matrix import path_part

postgres_server = postgres.postgres_server

SEEN_LIMIT_SECONDS = 30
"""Far longer than news takes between processes: only news that never comes fails."""


async def until_seen(check: Callable[[], Awaitable[bool]]) -> None:
    with trio.fail_after(SEEN_LIMIT_SECONDS):
        while not await check():
            await trio.sleep(0.01)


async def test_a_user_demoted_through_one_process_cannot_act_through_the_other(
    tmp_path, postgres_server
):
    async with two_processes(tmp_path, postgres_server) as cluster:
        alice = await register_user(cluster.one, "alice")
        bob = await register_user(cluster.two, "bob")
        room_id = await alice.create_room(
            invite=[bob.user_id],
            power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 50}},
        )
        await bob.join(room_id)
        allowed = await bob.put_state(room_id, "m.room.topic", {"topic": "bob's"})
        assert allowed.status_code == 200
        levels = (await alice.get_state(room_id, "m.room.power_levels")).json()
        levels["users"][bob.user_id] = 0
        await alice.set_state(room_id, "m.room.power_levels", levels)

        refused = await bob.put_state(room_id, "m.room.topic", {"topic": "again"})
        assert refused.status_code == 403
        assert refused.json()["errcode"] == "M_FORBIDDEN"

        await alice.set_state(room_id, "m.room.topic", {"topic": "alice's"})

        async def topic_seen() -> bool:
            response = await bob.get_state(room_id, "m.room.topic")
            return response.json().get("topic") == "alice's"

        await until_seen(topic_seen)


async def test_a_user_banned_through_one_process_is_out_on_the_other(tmp_path, postgres_server):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        assert await bob.joined_rooms() == [room_id]
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]

        banned = await alice.membership_action(room_id, "ban", bob)
        assert banned.status_code == 200
        refused = await bob.send_event(room_id, "m.room.message", {"body": "hi"})
        assert refused.status_code == 403

        sync = (await bob.get("/sync", since=since, timeout=60_000)).json()
        assert room_id in sync["rooms"].get("leave", {})
        assert await bob.joined_rooms() == []


async def test_a_message_sent_through_one_process_is_in_messages_on_the_other(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        event_id = await alice.send(room_id, "first")
        assert event_id in [event["event_id"] for event in await bob.timeline(room_id)]


async def test_an_event_redacted_through_one_process_is_served_redacted_by_the_other(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        event_id = await alice.send(room_id, "a secret")
        path = f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"
        assert (await bob.get(path)).json()["content"]["body"] == "a secret"  # cached on two

        redacted = await alice.put(
            f"/rooms/{path_part(room_id)}/redact/{path_part(event_id)}/txn1", {}
        )
        assert redacted.status_code == 200

        async def served_redacted() -> bool:
            return "body" not in (await bob.get(path)).json()["content"]

        await until_seen(served_redacted)
        bodies = [event["content"].get("body") for event in await bob.timeline(room_id)]
        assert "a secret" not in bodies


async def test_a_token_logged_out_through_one_process_is_refused_by_the_other(
    tmp_path, postgres_server
):
    async with two_processes(tmp_path, postgres_server) as cluster:
        alice = await register_user(cluster.one, "alice")
        assert (await through(alice, cluster.two).get("/account/whoami")).status_code == 200
        assert (await alice.post("/logout")).status_code == 200
        refused = await through(alice, cluster.two).get("/account/whoami")
        assert refused.status_code == 401
        assert refused.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_account_data_and_push_rules_changed_through_one_process_show_on_the_other(
    tmp_path, postgres_server
):
    async with two_processes(tmp_path, postgres_server) as cluster:
        alice = await register_user(cluster.one, "alice")
        elsewhere = through(alice, cluster.two)
        rule_path = "/pushrules/global/override/.m.rule.master"
        assert (await elsewhere.get(rule_path)).json()["enabled"] is False  # cached on two
        since = (await elsewhere.get("/sync", timeout=0)).json()["next_batch"]

        user = path_part(alice.user_id)
        await alice.put(f"/user/{user}/account_data/org.example.colour", {"colour": "teal"})
        assert (await alice.put(f"{rule_path}/enabled", {"enabled": True})).status_code == 200

        seen: dict[str, dict] = {}
        with trio.fail_after(SEEN_LIMIT_SECONDS):
            while "org.example.colour" not in seen:
                sync = (await elsewhere.get("/sync", since=since, timeout=60_000)).json()
                since = sync["next_batch"]
                for event in sync.get("account_data", {}).get("events", []):
                    seen[event["type"]] = event["content"]
        assert seen["org.example.colour"] == {"colour": "teal"}

        async def rule_enabled() -> bool:
            return (await elsewhere.get(rule_path)).json()["enabled"] is True

        await until_seen(rule_enabled)
