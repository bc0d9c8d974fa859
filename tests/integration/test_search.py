"""`POST /search`: messages of the user's rooms, ranked or recent, with context.

Spec: `content/client-server-api/modules/search.md`, `data/api/client-server/search.yaml`.
"""

from __future__ import annotations

from typing import Any

from tests.support.matrix import User, assert_error, ok, register, room_with_members
from tests.support.server import TestServer


async def search(user: User, term: str, **criteria: Any) -> dict[str, Any]:
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    return ok(await user.post("/search", body))["search_categories"]["room_events"]


def bodies(found: dict[str, Any]) -> list[str]:
    return [r["result"]["content"]["body"] for r in found["results"]]


async def test_search_finds_messages_with_every_word(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await alice.send(room_id, "the quick brown fox")
    await bob.send(room_id, "a slow brown dog")
    await bob.send(room_id, "quick thinking")
    found = await search(alice, "quick brown")
    assert bodies(found) == ["the quick brown fox"]
    assert found["count"] == 1
    assert found["highlights"] == ["brown", "quick"]


async def test_rank_orders_by_occurrences_and_recent_by_time(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    await alice.send(room_id, "tea tea tea")
    await alice.send(room_id, "tea once")
    assert bodies(await search(alice, "tea")) == ["tea tea tea", "tea once"]
    assert bodies(await search(alice, "tea", order_by="recent")) == ["tea once", "tea tea tea"]


async def test_search_never_shows_rooms_the_user_is_not_in(server: TestServer):
    _, (alice,) = await room_with_members(server, 1)
    other = await register(server)
    private = await other.create_room()
    await other.send(private, "hidden treasure")
    assert bodies(await search(alice, "treasure")) == []


async def test_search_pages_with_next_batch_and_filters_rooms(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    other_room = await alice.create_room()
    for number in range(3):
        await alice.send(room_id, f"page item {number}")
    await alice.send(other_room, "page elsewhere")
    first = await search(alice, "page", filter={"limit": 2, "rooms": [room_id]}, order_by="recent")
    assert bodies(first) == ["page item 2", "page item 1"]
    body = {
        "search_categories": {
            "room_events": {
                "search_term": "page",
                "filter": {"limit": 2, "rooms": [room_id]},
                "order_by": "recent",
            }
        }
    }
    rest = ok(
        await alice.request(
            "POST", "/search", body=body, params={"next_batch": first["next_batch"]}
        )
    )
    assert bodies(rest["search_categories"]["room_events"]) == ["page item 0"]


async def test_search_result_context_and_redacted_messages(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    await alice.send(room_id, "before")
    target = await alice.send(room_id, "needle here")
    await alice.send(room_id, "after")
    found = await search(alice, "needle", event_context={"before_limit": 1, "after_limit": 1})
    context = found["results"][0]["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["before"]
    assert [e["content"]["body"] for e in context["events_after"]] == ["after"]
    ok(await alice.put(f"/rooms/{room_id}/redact/{target}/r1", {}))
    assert bodies(await search(alice, "needle")) == []


async def test_search_without_words_is_400(server: TestServer):
    alice = await register(server)
    body = {"search_categories": {"room_events": {"search_term": "  !! "}}}
    assert_error(await alice.post("/search", body), 400, "M_INVALID_PARAM")
