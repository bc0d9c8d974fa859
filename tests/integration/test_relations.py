"""Relations: `/relations`, `/threads` and bundled aggregations (edits, threads, references).

Spec: `content/client-server-api/_index.md` ("Aggregations of child events"),
modules `threading.md`, `event_replacements.md`, and the OpenAPI of
`relations.yaml` and `threads_list.yaml`.
"""

from __future__ import annotations

from typing import Any

from tests.support.matrix import CLIENT_V1, User, assert_error, ok, path_part, room_with_members
from tests.support.server import TestServer


def relates(rel_type: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": rel_type, "event_id": event_id, **extra}}


async def v1_get(user: User, path: str, **params: Any) -> Any:
    return await user.request("GET", path, params=params or None, prefix=CLIENT_V1)


async def get_event(user: User, room_id: str, event_id: str) -> dict[str, Any]:
    return ok(await user.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"))


async def test_thread_replies_are_listed_and_summarised_on_the_root(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    root = await alice.send(room_id, "root")
    await bob.send(room_id, "reply 1", **relates("m.thread", root))
    await bob.send(room_id, "reply 2", **relates("m.thread", root))
    page = ok(await v1_get(alice, f"/rooms/{path_part(room_id)}/relations/{path_part(root)}"))
    assert [e["content"]["body"] for e in page["chunk"]] == ["reply 2", "reply 1"]
    thread = (await get_event(alice, room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 2
    assert thread["latest_event"]["content"]["body"] == "reply 2"
    assert thread["current_user_participated"] is True  # alice sent the root


async def test_relations_filter_by_type_and_paginate(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    root = await alice.send(room_id, "root")
    for number in range(3):
        await bob.send(room_id, f"t{number}", **relates("m.thread", root))
    await bob.send_event(
        room_id,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}},
    )
    path = f"/rooms/{path_part(room_id)}/relations/{path_part(root)}"
    annotations = ok(await v1_get(alice, path + "/m.annotation"))["chunk"]
    assert [e["type"] for e in annotations] == ["m.reaction"]
    reactions = ok(await v1_get(alice, path + "/m.annotation/m.reaction"))["chunk"]
    assert len(reactions) == 1
    first = ok(await v1_get(alice, path + "/m.thread", limit=2))
    assert [e["content"]["body"] for e in first["chunk"]] == ["t2", "t1"]
    rest = ok(await v1_get(alice, path + "/m.thread", limit=2, **{"from": first["next_batch"]}))
    assert [e["content"]["body"] for e in rest["chunk"]] == ["t0"]
    assert "next_batch" not in rest


async def test_newest_edit_by_the_sender_is_bundled(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    original = await alice.send(room_id, "tpyo")
    new = {"m.new_content": {"msgtype": "m.text", "body": "typo"}}
    await alice.send(room_id, "* typo", **relates("m.replace", original), **new)
    await bob.send(room_id, "* hijack", **relates("m.replace", original), **new)
    event = await get_event(bob, room_id, original)
    assert event["content"]["body"] == "tpyo"  # content is never replaced
    edit = event["unsigned"]["m.relations"]["m.replace"]
    assert edit["sender"] == alice.user_id and edit["content"]["body"] == "* typo"


async def test_references_are_bundled(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    original = await alice.send(room_id, "question")
    reference = await alice.send(room_id, "see above", **relates("m.reference", original))
    event = await get_event(alice, room_id, original)
    assert event["unsigned"]["m.relations"]["m.reference"] == {"chunk": [{"event_id": reference}]}


async def test_one_event_bundles_its_edit_thread_and_references_and_no_reactions(
    server: TestServer,
):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    root = await alice.send(room_id, "root")
    new = {"m.new_content": {"msgtype": "m.text", "body": "root, edited"}}
    for number in range(5):
        await bob.send(room_id, f"reply {number}", **relates("m.thread", root))
        await carol.send_event(
            room_id,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": str(number)}},
        )
    await alice.send(room_id, "* root, edited", **relates("m.replace", root), **new)
    reference = await carol.send(room_id, "about root", **relates("m.reference", root))
    seen_by_bob = (await get_event(bob, room_id, root))["unsigned"]["m.relations"]
    assert set(seen_by_bob) == {"m.thread", "m.replace", "m.reference"}
    assert seen_by_bob["m.thread"]["count"] == 5
    assert seen_by_bob["m.thread"]["latest_event"]["content"]["body"] == "reply 4"
    assert seen_by_bob["m.thread"]["current_user_participated"] is True  # bob replied
    assert seen_by_bob["m.replace"]["content"]["body"] == "* root, edited"
    assert seen_by_bob["m.reference"] == {"chunk": [{"event_id": reference}]}
    seen_by_carol = (await get_event(carol, room_id, root))["unsigned"]["m.relations"]
    assert seen_by_carol["m.thread"]["current_user_participated"] is False  # reactions only


async def test_redacted_event_has_no_bundled_edit(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    original = await alice.send(room_id, "oops")
    await alice.send(room_id, "* fixed", **relates("m.replace", original))
    ok(await alice.put(f"/rooms/{path_part(room_id)}/redact/{path_part(original)}/r1", {}))
    event = await get_event(alice, room_id, original)
    assert "m.relations" not in event.get("unsigned", {})


async def test_threads_list_newest_activity_first_and_participation(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    first = await alice.send(room_id, "first root")
    second = await alice.send(room_id, "second root")
    await bob.send(room_id, "in second", **relates("m.thread", second))
    await alice.send(room_id, "in first", **relates("m.thread", first))
    listed = ok(await v1_get(bob, f"/rooms/{path_part(room_id)}/threads"))["chunk"]
    assert [e["event_id"] for e in listed] == [first, second]
    mine = ok(await v1_get(bob, f"/rooms/{path_part(room_id)}/threads", include="participated"))
    assert [e["event_id"] for e in mine["chunk"]] == [second]


async def test_relations_of_an_event_one_cannot_see_are_404(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1, preset="private_chat")
    outsider = (await room_with_members(server, 1))[1][0]
    root = await alice.send(room_id, "secret")
    response = await v1_get(outsider, f"/rooms/{path_part(room_id)}/relations/{path_part(root)}")
    assert_error(response, 404, "M_NOT_FOUND")
