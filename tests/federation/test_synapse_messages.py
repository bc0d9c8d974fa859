"""Messages, state under power levels, and redactions between ours and a real Synapse.

Each test runs in both directions (`DIRECTIONS`: whose server holds the
room, whose user visits it), and each side's view is its own client API's
long-poll `/sync`. Spec: `content/server-server-api.md` "Transactions",
"PDUs", "Authorization rules" (`content/rooms/v*.md`), "Redactions".
"""

from __future__ import annotations

import pytest
import trio

from tests.support.matrix import ok
from tests.support.synapse_rooms import (
    DIRECTIONS,
    Account,
    Sync,
    has_bodies,
    visited_room,
)

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


def _ids_of(sync: Sync, room_id: str) -> dict[str, list[str]]:
    """Each message body the stream showed, with the event ids it came with."""
    seen: dict[str, list[str]] = {}
    for event in sync.events(room_id, "m.room.message"):
        seen.setdefault(event["content"].get("body"), []).append(event["event_id"])
    return seen


async def test_messages_from_both_servers_reach_the_other_side_once_and_in_order(both, direction):
    room_id, home, visitor, home_sync, visitor_sync = await visited_room(both, direction)
    sent: dict[str, str] = {}

    for author, reader in ((home, visitor_sync), (visitor, home_sync)) * 2:
        text = f"turn {len(sent) + 1} by {author.user_id}"
        sent[text] = await author.send(room_id, text)
        await reader.until(has_bodies(room_id, text))
    visitor_burst = [f"visitor burst {n}" for n in range(1, 6)]
    home_burst = [f"home burst {n}" for n in range(1, 6)]
    for text in visitor_burst:
        sent[text] = await visitor.send(room_id, text)
    for text in home_burst:
        sent[text] = await home.send(room_id, text)
    await home_sync.until(has_bodies(room_id, *visitor_burst))
    await visitor_sync.until(has_bodies(room_id, *home_burst))
    sent["last"] = await home.send(room_id, "last")  # anything repeated would come before it
    await visitor_sync.until(has_bodies(room_id, "last"))
    await home_sync.until(has_bodies(room_id, "last"))

    turns = [text for text in sent if text.startswith("turn")]
    for sync in (home_sync, visitor_sync):
        bodies = sync.bodies(room_id)
        assert _ids_of(sync, room_id) == {text: [event_id] for text, event_id in sent.items()}
        assert [b for b in bodies if b.startswith("turn")] == turns
        assert [b for b in bodies if b.startswith("visitor burst")] == visitor_burst
        assert [b for b in bodies if b.startswith("home burst")] == home_burst
        assert bodies[-1] == "last"


async def test_a_user_of_the_other_server_changes_the_topic_only_once_made_moderator(
    both, direction
):
    room_id, home, visitor, home_sync, visitor_sync = await visited_room(both, direction)

    refused = await visitor.put_state(room_id, "m.room.topic", {"topic": "too early"})

    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_FORBIDDEN"
    levels = ok(await home.state(room_id, "m.room.power_levels"))
    levels["users"][visitor.user_id] = 50
    levels_id = ok(await home.put_state(room_id, "m.room.power_levels", levels))["event_id"]
    await visitor_sync.until(lambda sync: sync.event(room_id, levels_id))
    topic = await visitor.put_state(room_id, "m.room.topic", {"topic": "now allowed"})
    topic_id = ok(topic)["event_id"]
    seen = await home_sync.until(lambda sync: sync.event(room_id, topic_id))
    assert seen["sender"] == visitor.user_id
    assert ok(await home.state(room_id, "m.room.topic"))["topic"] == "now allowed"
    assert all(e["content"].get("topic") != "too early" for e in home_sync.events(room_id))


def _redaction_of(sync: Sync, room_id: str, event_id: str) -> dict | None:
    for event in sync.events(room_id, "m.room.redaction"):
        if event_id in (event.get("redacts"), event["content"].get("redacts")):
            return event
    return None


async def _redacted_for(reader: Account, room_id: str, event_id: str) -> bool:
    event = ok(await reader.event(room_id, event_id))
    return event["content"] == {} and "redacted_because" in event.get("unsigned", {})


async def test_a_message_its_author_redacts_is_redacted_on_the_other_server(both, direction):
    room_id, home, visitor, home_sync, _ = await visited_room(both, direction)
    message_id = await visitor.send(room_id, "regrettable")
    await home_sync.until(has_bodies(room_id, "regrettable"))

    redaction_id = await visitor.redact(room_id, message_id, "oops")

    redaction = await home_sync.until(lambda sync: _redaction_of(sync, room_id, message_id))
    assert redaction["event_id"] == redaction_id
    assert redaction["sender"] == visitor.user_id
    assert await _redacted_for(home, room_id, message_id)


async def test_a_moderator_redacts_the_message_of_a_user_of_the_other_server(both, direction):
    room_id, home, visitor, home_sync, visitor_sync = await visited_room(both, direction)
    message_id = await visitor.send(room_id, "spam")
    await home_sync.until(has_bodies(room_id, "spam"))

    redaction_id = await home.redact(room_id, message_id, "moderated")

    redaction = await visitor_sync.until(lambda sync: _redaction_of(sync, room_id, message_id))
    assert redaction["event_id"] == redaction_id
    assert redaction["sender"] == home.user_id
    assert await _redacted_for(visitor, room_id, message_id)


async def test_topics_set_at_once_on_both_servers_resolve_to_the_same_topic_on_both(
    both, direction
):
    """A fork: each server's event has only its own side's tip as prev_event; state
    resolution (v2; v2.1 for Synapse's v12 rooms) must pick the same winner on both."""
    room_id, home, visitor, home_sync, visitor_sync = await visited_room(both, direction)
    levels = ok(await home.state(room_id, "m.room.power_levels"))
    levels["users"][visitor.user_id] = 50
    levels_id = ok(await home.put_state(room_id, "m.room.power_levels", levels))["event_id"]
    await visitor_sync.until(lambda sync: sync.event(room_id, levels_id))

    async with trio.open_nursery() as nursery:
        for author, topic in ((home, "home's topic"), (visitor, "visitor's topic")):
            nursery.start_soon(author.put_state, room_id, "m.room.topic", {"topic": topic})

    topics = {"home's topic", "visitor's topic"}
    for sync in (home_sync, visitor_sync):
        await sync.until(
            lambda s: (
                topics <= {e["content"].get("topic") for e in s.events(room_id, "m.room.topic")}
            )
        )
    await home.send(room_id, "merge")  # an event on top of both tips
    await visitor_sync.until(has_bodies(room_id, "merge"))
    await visitor.send(room_id, "merged")
    await home_sync.until(has_bodies(room_id, "merged"))
    on_home = ok(await home.state(room_id, "m.room.topic"))["topic"]
    on_visitor = ok(await visitor.state(room_id, "m.room.topic"))["topic"]
    assert on_home == on_visitor
    assert on_home in topics


async def test_more_messages_than_one_transaction_holds_arrive_in_order_once(both, direction):
    """A transaction carries at most 50 PDUs: 60 from each side need two or more."""
    room_id, home, visitor, home_sync, visitor_sync = await visited_room(both, direction)
    from_home = [f"home {n}" for n in range(60)]
    from_visitor = [f"visitor {n}" for n in range(60)]

    for text in from_home:
        await home.send(room_id, text)
    await visitor_sync.until(has_bodies(room_id, *from_home))
    await home_sync.until(has_bodies(room_id, *from_home))  # no sync sees 100+ new events
    for text in from_visitor:
        await visitor.send(room_id, text)
    await home_sync.until(has_bodies(room_id, *from_visitor))
    await visitor_sync.until(has_bodies(room_id, *from_visitor))
    for sync in (home_sync, visitor_sync):
        bodies = sync.bodies(room_id)
        assert [b for b in bodies if b.startswith("home ")] == from_home
        assert [b for b in bodies if b.startswith("visitor ")] == from_visitor


async def test_a_message_from_the_other_server_counts_as_an_unread_notification(both, direction):
    """Push rules apply to remote events: in a room of two, `.m.rule.room_one_to_one`
    notifies; a mention of the reader (`.m.rule.is_user_mention`) highlights too."""
    room_id, home, visitor, home_sync, _ = await visited_room(both, direction)
    await home_sync.until(lambda sync: sync.unread.get(room_id, {}).get("notification_count") == 0)

    mention = {
        "msgtype": "m.text",
        "body": f"hey {home.user_id}",
        "m.mentions": {"user_ids": [home.user_id]},
    }
    event_id = ok(await visitor.send_event(room_id, "m.room.message", mention))["event_id"]

    await home_sync.until(lambda sync: sync.event(room_id, event_id))
    counts = await home_sync.until(
        lambda sync: (
            sync.unread.get(room_id, {}).get("highlight_count", 0) >= 1 and sync.unread[room_id]
        )
    )
    assert counts["notification_count"] >= 1
