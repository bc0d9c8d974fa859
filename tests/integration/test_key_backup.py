"""Server-side key backups over HTTP: versions, keys at three sizes, replacement, etag and count.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Server-side key backups", and `data/api/client-server/key_backup.yaml`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
AUTH_DATA = {"public_key": "abcdefg", "signatures": {}}
ROOM = "!garden:localhost"
OTHER_ROOM = "!kitchen:localhost"


def key_data(
    *, verified: bool = False, first_index: int = 0, forwarded: int = 0, text: str = "secret"
) -> dict[str, Any]:
    return {
        "first_message_index": first_index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ephemeral": "e", "ciphertext": text, "mac": "m"},
    }


async def create_backup(user: User, auth_data: dict[str, Any] = AUTH_DATA) -> str:
    body = {"algorithm": ALGORITHM, "auth_data": auth_data}
    return ok(await user.post("/room_keys/version", body))["version"]


def session_path(room_id: str = ROOM, session_id: str = "session1") -> str:
    return f"/room_keys/keys/{path_part(room_id)}/{path_part(session_id)}"


async def put_session(
    user: User, version: str, data: dict[str, Any], session_id: str = "session1"
) -> dict[str, Any]:
    response = await user.request(
        "PUT", session_path(session_id=session_id), body=data, params={"version": version}
    )
    return ok(response)


async def get(user: User, path: str, version: str) -> Any:
    return await user.request("GET", path, params={"version": version})


# ---- versions


async def test_a_new_backup_is_the_current_one_with_no_keys(server):
    alice = await register(server)
    assert_error(await alice.get("/room_keys/version"), 404, "M_NOT_FOUND")
    version = await create_backup(alice)

    current = ok(await alice.get("/room_keys/version"))

    assert current == {
        "algorithm": ALGORITHM,
        "auth_data": AUTH_DATA,
        "count": 0,
        "etag": current["etag"],
        "version": version,
    }
    assert ok(await alice.get(f"/room_keys/version/{version}")) == current


async def test_the_newest_backup_is_the_current_one_and_older_ones_stay_readable(server):
    alice = await register(server)
    old = await create_backup(alice, {"public_key": "old"})
    new = await create_backup(alice, {"public_key": "new"})
    assert old != new
    assert ok(await alice.get("/room_keys/version"))["version"] == new
    assert ok(await alice.get(f"/room_keys/version/{old}"))["auth_data"] == {"public_key": "old"}


async def test_backups_are_per_user(server):
    alice, bob = await register(server), await register(server)
    version = await create_backup(alice)
    assert_error(await bob.get("/room_keys/version"), 404, "M_NOT_FOUND")
    assert_error(await bob.get(f"/room_keys/version/{version}"), 404, "M_NOT_FOUND")


async def test_updating_a_backup_replaces_its_auth_data_only(server):
    alice = await register(server)
    version = await create_backup(alice)
    new_auth = {"public_key": "rotated", "signatures": {}}
    body = {"algorithm": ALGORITHM, "auth_data": new_auth, "version": version}
    assert ok(await alice.put(f"/room_keys/version/{version}", body)) == {}
    backup = ok(await alice.get(f"/room_keys/version/{version}"))
    assert (backup["auth_data"], backup["algorithm"]) == (new_auth, ALGORITHM)


@pytest.mark.parametrize(
    "change",
    [{"algorithm": "org.example.other"}, {"version": "999"}],
    ids=["another algorithm", "another version in the body"],
)
async def test_an_update_cannot_change_the_algorithm_or_name_another_version(server, change):
    alice = await register(server)
    version = await create_backup(alice)
    body = {"algorithm": ALGORITHM, "auth_data": {}, **change}
    assert_error(await alice.put(f"/room_keys/version/{version}", body), 400, "M_INVALID_PARAM")
    assert ok(await alice.get(f"/room_keys/version/{version}"))["auth_data"] == AUTH_DATA


async def test_updating_an_unknown_backup_is_404(server):
    alice = await register(server)
    body = {"algorithm": ALGORITHM, "auth_data": {}}
    assert_error(await alice.put("/room_keys/version/41", body), 404, "M_NOT_FOUND")


async def test_deleting_a_backup_deletes_its_keys_and_a_second_delete_still_succeeds(server):
    alice = await register(server)
    version = await create_backup(alice)
    await put_session(alice, version, key_data())

    assert ok(await alice.request("DELETE", f"/room_keys/version/{version}")) == {}

    assert_error(await alice.get(f"/room_keys/version/{version}"), 404, "M_NOT_FOUND")
    assert_error(await get(alice, "/room_keys/keys", version), 404, "M_NOT_FOUND")
    assert ok(await alice.request("DELETE", f"/room_keys/version/{version}")) == {}


async def test_deleting_a_backup_that_never_existed_is_404(server):
    alice = await register(server)
    version = await create_backup(alice)
    never = str(int(version) + 1)
    assert_error(await alice.request("DELETE", f"/room_keys/version/{never}"), 404, "M_NOT_FOUND")
    assert_error(await alice.request("DELETE", "/room_keys/version/abc"), 404, "M_NOT_FOUND")


async def test_after_deleting_the_newest_backup_the_previous_one_is_current(server):
    alice = await register(server)
    first = await create_backup(alice)
    second = await create_backup(alice)
    ok(await alice.request("DELETE", f"/room_keys/version/{second}"))
    assert ok(await alice.get("/room_keys/version"))["version"] == first
    assert await create_backup(alice) not in (first, second), "versions are never reused"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"auth_data": {}}, "M_MISSING_PARAM"),
        ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
        ({"algorithm": ALGORITHM, "auth_data": "text"}, "M_BAD_JSON"),
        ({"algorithm": 7, "auth_data": {}}, "M_BAD_JSON"),
    ],
)
async def test_a_backup_needs_an_algorithm_and_auth_data(server, body, errcode):
    alice = await register(server)
    assert_error(await alice.post("/room_keys/version", body), 400, errcode)


async def test_backup_endpoints_need_an_access_token(server):
    response = await server.client.get("/_matrix/client/v3/room_keys/version")
    assert_error(response, 401, "M_MISSING_TOKEN")


# ---- keys


async def test_keys_stored_per_session_room_and_backup_read_back_at_each_size(server):
    alice = await register(server)
    version = await create_backup(alice)
    body = {
        "rooms": {
            ROOM: {"sessions": {"s1": key_data(text="one"), "s2": key_data(text="two")}},
        }
    }
    stored = ok(
        await alice.request("PUT", "/room_keys/keys", body=body, params={"version": version})
    )
    assert stored["count"] == 2
    room_body = {"sessions": {"s3": key_data(text="three")}}
    response = await alice.request(
        "PUT",
        f"/room_keys/keys/{path_part(OTHER_ROOM)}",
        body=room_body,
        params={"version": version},
    )
    assert ok(response)["count"] == 3

    everything = ok(await get(alice, "/room_keys/keys", version))
    one_room = ok(await get(alice, f"/room_keys/keys/{path_part(ROOM)}", version))
    one_session = ok(await get(alice, session_path(OTHER_ROOM, "s3"), version))

    assert everything == {"rooms": {**body["rooms"], OTHER_ROOM: room_body}}
    assert one_room == body["rooms"][ROOM]
    assert one_session == key_data(text="three")
    assert ok(await alice.get("/room_keys/version"))["count"] == 3


async def test_reading_keys_where_there_are_none(server):
    alice = await register(server)
    version = await create_backup(alice)
    assert ok(await get(alice, "/room_keys/keys", version)) == {"rooms": {}}
    assert ok(await get(alice, f"/room_keys/keys/{path_part(ROOM)}", version)) == {"sessions": {}}
    assert_error(await get(alice, session_path(), version), 404, "M_NOT_FOUND")


async def test_a_session_id_with_a_slash_is_one_session(server):
    alice = await register(server)
    version = await create_backup(alice)
    await put_session(alice, version, key_data(), session_id="base64/with+slash")
    assert ok(await get(alice, session_path(session_id="base64/with+slash"), version))


@pytest.mark.parametrize(
    ("stored", "uploaded", "kept"),
    [
        (
            key_data(verified=False, text="old"),
            key_data(verified=True, first_index=9, forwarded=9, text="new"),
            "new",
        ),
        (
            key_data(verified=True, text="old"),
            key_data(verified=False, first_index=0, text="new"),
            "old",
        ),
        (
            key_data(first_index=5, text="old"),
            key_data(first_index=2, forwarded=9, text="new"),
            "new",
        ),
        (key_data(first_index=2, text="old"), key_data(first_index=5, text="new"), "old"),
        (key_data(forwarded=3, text="old"), key_data(forwarded=1, text="new"), "new"),
        (key_data(forwarded=1, text="old"), key_data(forwarded=3, text="new"), "old"),
        (key_data(text="old"), key_data(text="new"), "old"),
    ],
    ids=[
        "verified beats unverified",
        "unverified never beats verified",
        "lower first_message_index wins",
        "higher first_message_index loses",
        "then lower forwarded_count wins",
        "higher forwarded_count loses",
        "a tie keeps the stored key",
    ],
)
async def test_of_two_keys_for_a_session_the_spec_decides_which_is_kept(
    server, stored, uploaded, kept
):
    alice = await register(server)
    version = await create_backup(alice)
    await put_session(alice, version, stored)
    await put_session(alice, version, uploaded)
    data = ok(await get(alice, session_path(), version))
    assert data["session_data"]["ciphertext"] == kept


async def test_the_etag_changes_when_keys_change_and_not_otherwise(server):
    alice = await register(server)
    version = await create_backup(alice)
    initial = ok(await alice.get("/room_keys/version"))["etag"]

    added = await put_session(alice, version, key_data(first_index=3))
    kept = await put_session(alice, version, key_data(first_index=7))
    replaced = await put_session(alice, version, key_data(first_index=1))

    assert added["etag"] != initial
    assert kept == added, "keeping the stored key changes nothing"
    assert replaced["etag"] != added["etag"] and replaced["count"] == 1
    assert ok(await alice.get("/room_keys/version"))["etag"] == replaced["etag"]


async def test_keys_go_only_to_the_current_backup(server):
    alice = await register(server)
    old = await create_backup(alice)
    current = await create_backup(alice)
    response = await alice.request("PUT", session_path(), body=key_data(), params={"version": old})
    body = assert_error(response, 403, "M_WRONG_ROOM_KEYS_VERSION")
    assert body["current_version"] == current


async def test_storing_keys_without_any_backup_is_404(server):
    alice = await register(server)
    response = await alice.request("PUT", session_path(), body=key_data(), params={"version": "1"})
    assert_error(response, 404, "M_NOT_FOUND")


async def test_the_backup_version_parameter_is_required(server):
    alice = await register(server)
    await create_backup(alice)
    assert_error(await alice.get("/room_keys/keys"), 400, "M_MISSING_PARAM")


@pytest.mark.parametrize(
    ("data", "errcode"),
    [
        ({k: v for k, v in key_data().items() if k != "session_data"}, "M_MISSING_PARAM"),
        ({**key_data(), "is_verified": "yes"}, "M_BAD_JSON"),
        ({**key_data(), "first_message_index": True}, "M_BAD_JSON"),
        ({**key_data(), "session_data": "opaque"}, "M_BAD_JSON"),
    ],
)
async def test_key_data_of_the_wrong_shape_is_refused(server, data, errcode):
    alice = await register(server)
    version = await create_backup(alice)
    response = await alice.request("PUT", session_path(), body=data, params={"version": version})
    assert_error(response, 400, errcode)


async def test_deleting_keys_by_session_room_and_backup_updates_count_and_etag(server):
    alice = await register(server)
    version = await create_backup(alice)
    for session_id in ("s1", "s2", "s3"):
        await put_session(alice, version, key_data(), session_id=session_id)
    ok(
        await alice.request(
            "PUT",
            f"/room_keys/keys/{path_part(OTHER_ROOM)}",
            body={"sessions": {"s4": key_data()}},
            params={"version": version},
        )
    )
    params = {"version": version}
    before = ok(await alice.get("/room_keys/version"))["etag"]

    one = ok(await alice.request("DELETE", session_path(session_id="s1"), params=params))
    room = ok(await alice.request("DELETE", f"/room_keys/keys/{path_part(ROOM)}", params=params))
    left = ok(await get(alice, "/room_keys/keys", version))["rooms"]
    everything = ok(await alice.request("DELETE", "/room_keys/keys", params=params))

    assert one["count"] == 3 and one["etag"] != before
    assert room["count"] == 1
    assert set(left) == {OTHER_ROOM}
    assert everything["count"] == 0
    assert ok(await get(alice, "/room_keys/keys", version)) == {"rooms": {}}


async def test_deleting_a_key_that_is_not_there_changes_nothing(server):
    alice = await register(server)
    version = await create_backup(alice)
    before = ok(await alice.get("/room_keys/version"))
    response = await alice.request("DELETE", session_path(), params={"version": version})
    assert ok(response) == {"etag": before["etag"], "count": 0}


async def test_keys_of_an_unknown_backup_are_404(server):
    alice = await register(server)
    await create_backup(alice)
    assert_error(await get(alice, "/room_keys/keys", "999"), 404, "M_NOT_FOUND")
    response = await alice.request("DELETE", "/room_keys/keys", params={"version": "999"})
    assert_error(response, 404, "M_NOT_FOUND")
