"""Custom profile fields and `DELETE /profile/{userId}/{keyName}` over HTTP.

Spec: `content/client-server-api/_index.md`, "Profiles" and "`m.profile_fields`
capability" (v1.16); `data/api/client-server/profile.yaml`: any key of the
namespaced grammar can be set, read and deleted by its owner; a key over 255
bytes is `M_KEY_TOO_LARGE`, a profile of 64 KiB or more `M_PROFILE_TOO_LARGE`,
a body without the key `M_MISSING_PARAM`, a key outside the grammar
`M_INVALID_PARAM`.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import assert_error, ok, path_part, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()


def field_path(user_id: str, key_name: str) -> str:
    return f"/profile/{path_part(user_id)}/{path_part(key_name)}"


async def test_a_custom_field_is_set_read_listed_and_deleted(server):
    alice = await register(server)
    value = {"pronouns": ["she", "her"], "since": 2024}

    ok(
        await alice.put(
            field_path(alice.user_id, "org.example.pronouns"), {"org.example.pronouns": value}
        )
    )
    ok(await alice.put(field_path(alice.user_id, "m.tz"), {"m.tz": "Europe/Berlin"}))

    field = ok(await alice.get(field_path(alice.user_id, "org.example.pronouns")))
    assert field == {"org.example.pronouns": value}
    profile = ok(await alice.get(f"/profile/{path_part(alice.user_id)}"))
    assert profile["org.example.pronouns"] == value
    assert profile["m.tz"] == "Europe/Berlin"
    assert profile["displayname"].startswith(alice.localpart)

    deleted = await alice.request("DELETE", field_path(alice.user_id, "org.example.pronouns"))
    assert ok(deleted) == {}
    gone = await alice.get(field_path(alice.user_id, "org.example.pronouns"))
    assert_error(gone, 404, "M_NOT_FOUND")
    assert "org.example.pronouns" not in ok(await alice.get(f"/profile/{path_part(alice.user_id)}"))


async def test_deleting_the_display_name_removes_it_and_a_missing_field_is_fine(server):
    alice = await register(server)

    ok(await alice.request("DELETE", field_path(alice.user_id, "displayname")))
    ok(await alice.request("DELETE", field_path(alice.user_id, "org.example.never_set")))

    assert_error(await alice.get(field_path(alice.user_id, "displayname")), 404, "M_NOT_FOUND")
    assert server.services.users.displayname(alice.user_id) is None


async def test_a_stored_null_is_a_value_not_a_deletion(server):
    alice = await register(server)

    ok(await alice.put(field_path(alice.user_id, "org.example.flag"), {"org.example.flag": None}))

    assert ok(await alice.get(field_path(alice.user_id, "org.example.flag"))) == {
        "org.example.flag": None
    }


@pytest.mark.parametrize(
    ("key_name", "body", "errcode"),
    [
        ("org.example." + "k" * 250, None, "M_KEY_TOO_LARGE"),
        ("NotNamespaced", None, "M_INVALID_PARAM"),
        ("org.example.big", {"org.example.big": "x" * (64 * 1024)}, "M_PROFILE_TOO_LARGE"),
        ("org.example.absent", {"org.example.other": 1}, "M_MISSING_PARAM"),
        ("m.tz", {"m.tz": 3600}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_fields_get_400_with_the_spec_errcode(server, key_name, body, errcode):
    alice = await register(server)

    response = await alice.put(field_path(alice.user_id, key_name), body or {key_name: "v"})

    assert_error(response, 400, errcode)
    assert key_name not in ok(await alice.get(f"/profile/{path_part(alice.user_id)}"))


async def test_the_profile_limit_counts_every_field(server):
    """64 KiB is the whole profile's limit, not one field's."""
    alice = await register(server)
    half = "y" * (40 * 1024)
    ok(await alice.put(field_path(alice.user_id, "org.example.one"), {"org.example.one": half}))

    response = await alice.put(
        field_path(alice.user_id, "org.example.two"), {"org.example.two": half}
    )

    assert_error(response, 400, "M_PROFILE_TOO_LARGE")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_others_may_not_change_or_delete_a_field(server, method):
    alice, eve = await register(server), await register(server)
    ok(await alice.put(field_path(alice.user_id, "org.example.x"), {"org.example.x": 1}))

    response = await eve.request(
        method, field_path(alice.user_id, "org.example.x"), body={"org.example.x": 2}
    )

    assert_error(response, 403, "M_FORBIDDEN")
    assert ok(await eve.get(field_path(alice.user_id, "org.example.x"))) == {"org.example.x": 1}


async def test_capabilities_advertise_profile_fields(server):
    alice = await register(server)

    capabilities = ok(await alice.get("/capabilities"))["capabilities"]

    assert capabilities["m.profile_fields"] == {"enabled": True}


async def test_deactivation_clears_custom_fields(server):
    alice = await register(server, password="pw-for-deactivation")
    ok(await alice.put(field_path(alice.user_id, "org.example.x"), {"org.example.x": 1}))

    ok(
        await alice.post(
            "/account/deactivate",
            {
                "auth": {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": alice.user_id},
                    "password": "pw-for-deactivation",
                }
            },
        )
    )

    assert server.services.users.custom_profile_fields(alice.user_id) == {}
