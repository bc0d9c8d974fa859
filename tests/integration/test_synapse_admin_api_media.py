"""Synapse's media admin API: deleting an upload, quarantining media.

Synapse's admin API "Media" (`DELETE /_synapse/admin/v1/media/{serverName}/
{mediaId}`: local media only; `POST v1/media/quarantine/{serverName}/{mediaId}`
and `unquarantine`: quarantined media is not served, 404, on every path).
"""

from __future__ import annotations

import pytest

from tests.support.matrix import User, assert_error, ok, register
from tests.support.shared_server import shared_server_fixtures
from tests.support.synapse_admin import AdminApi, admin_user

running_server, server = shared_server_fixtures()

DOWNLOAD_PATHS = ("/_matrix/client/v1/media/download", "/_matrix/media/v3/download")


async def upload(user: User, data: bytes) -> str:
    """`POST /upload`; the `server/mediaId` of the new `mxc://` URI."""
    response = await user.http.post(
        "/_matrix/media/v3/upload",
        content=data,
        headers={"Authorization": f"Bearer {user.access_token}", "Content-Type": "text/plain"},
    )
    return ok(response)["content_uri"].removeprefix("mxc://")


async def download_status(user: User, media: str, prefix: str) -> int:
    response = await user.http.get(
        f"{prefix}/{media}", headers={"Authorization": f"Bearer {user.access_token}"}
    )
    return response.status_code


@pytest.fixture
async def api(server) -> AdminApi:
    return AdminApi(await admin_user(server))


async def test_quarantined_media_is_404_everywhere_until_released(server, api):
    alice = await register(server)
    media = await upload(alice, b"look at this")
    for prefix in DOWNLOAD_PATHS:
        assert await download_status(alice, media, prefix) == 200

    assert ok(await api.post(f"/v1/media/quarantine/{media}")) == {}
    for prefix in DOWNLOAD_PATHS:
        assert await download_status(alice, media, prefix) == 404

    assert ok(await api.post(f"/v1/media/unquarantine/{media}")) == {}
    assert await download_status(alice, media, DOWNLOAD_PATHS[0]) == 200


async def test_remote_media_can_be_quarantined_before_it_is_fetched(server, api):
    """Federation is off on this server: quarantined or not, the answer is 404; the
    quarantine is kept for when it is fetched."""
    ok(await api.post("/v1/media/quarantine/elsewhere.org/abcdef"))
    assert server.services.media.is_quarantined("elsewhere.org", "abcdef")


async def test_deleted_media_is_gone_and_its_file_too(server, api):
    bob = await register(server)
    media = await upload(bob, b"a file only bob uploaded, once")
    media_id = media.split("/")[1]
    answer = ok(await api.delete(f"/v1/media/{media}"))
    assert answer == {"deleted_media": [media_id], "total": 1}
    for prefix in DOWNLOAD_PATHS:
        assert await download_status(bob, media, prefix) == 404
    assert_error(await api.delete(f"/v1/media/{media}"), 404, "M_NOT_FOUND")


async def test_a_file_two_uploads_share_stays_for_the_other(server, api):
    carol = await register(server)
    first = await upload(carol, b"the same bytes twice")
    second = await upload(carol, b"the same bytes twice")
    ok(await api.delete(f"/v1/media/{first}"))
    assert await download_status(carol, second, DOWNLOAD_PATHS[0]) == 200


async def test_media_admin_errors(api):
    assert_error(await api.delete("/v1/media/elsewhere.org/abc"), 400, "M_INVALID_PARAM")
    assert_error(await api.delete("/v1/media/localhost/no-such-media"), 404, "M_NOT_FOUND")
    assert_error(await api.delete("/v1/media/localhost/bad%21id"), 400, "M_INVALID_PARAM")
    assert_error(
        await api.post("/v1/media/quarantine/not%20a%20server/abc"), 400, "M_INVALID_PARAM"
    )
