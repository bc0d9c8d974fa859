"""Media across two of our servers over TLS, and against stub peers of the test's own.

Spec: `content/server-server-api.md` § Content Repository and
`data/api/server-server/content_repository.yaml` (the signed
`/_matrix/federation/v1/media/download` and `/thumbnail`, answered in two
`multipart/mixed` parts; the fallback to `/_matrix/media/v3/download` with
`allow_remote=false` on 404 `M_UNRECOGNIZED`);
`content/client-server-api/modules/content_repo.md` (the client's download
and thumbnail of `mxc://` URIs of other servers; § Security considerations:
remote files beyond the server's limit are 502 `M_TOO_LARGE`, never proxied
or kept); `data/api/client-server/content-repo.yaml` (`allow_remote`).
"""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from matrix_conduit.service.federation import remote_media
from tests.support.federation import FederatingServer, restart, start_federating
from tests.support.images import png
from tests.support.matrix import assert_error, register
from tests.support.remote_media import (
    AUTHENTICATED,
    FEDERATION_MEDIA,
    LEGACY,
    UNRECOGNIZED,
    StubAnswer,
    StubRequest,
    download,
    image_size,
    json_answer,
    multipart_body,
    multipart_parts,
    serve_media_peer,
    stored_files,
    thumbnail,
    upload,
)

STUB_ADDRESS = "127.0.0.9"
PHOTO = png(640, 480)


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


# ---------------------------------------------------------------- the client's view


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [(AUTHENTICATED, ""), (AUTHENTICATED, "/other-name.png"), (LEGACY, "")],
)
async def test_a_remote_file_arrives_byte_identical_with_its_type_and_name(pair, prefix, suffix):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    media = await upload(bob, PHOTO, "image/png", filename="holiday.png")

    response = await download(alice, media + suffix, prefix)

    assert response.status_code == 200, response.text
    assert response.content == PHOTO
    assert response.headers["Content-Type"] == "image/png"
    name = suffix.removeprefix("/") or "holiday.png"
    assert response.headers["Content-Disposition"] == f'inline; filename="{name}"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_remote_file_is_served_from_here_once_its_server_is_down(nursery, pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    media = await upload(bob, PHOTO, "image/png", filename="holiday.png")
    assert (await download(alice, media)).content == PHOTO
    await b.stop()

    assert (await download(alice, media)).content == PHOTO
    assert (await download(alice, media, LEGACY, allow_remote="false")).content == PHOTO
    small = await thumbnail(alice, media, width=96, height=96, method="crop")
    assert small.status_code == 200, small.text
    assert image_size(small.content) == (96, 96)

    await a.stop()
    a = await restart(nursery, a)
    alice.http = a.client
    again = await download(alice, media)
    assert again.status_code == 200, again.text
    assert again.content == PHOTO
    assert again.headers["Content-Disposition"] == 'inline; filename="holiday.png"'


async def test_a_remote_thumbnail_is_made_here_from_the_original(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    media = await upload(bob, PHOTO, "image/png")

    response = await thumbnail(alice, media, width=32, height=32, method="crop")

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert image_size(response.content) == (32, 32)
    # The original came with it: the download needs B no more.
    await b.stop()
    assert (await download(alice, media)).content == PHOTO
    scaled = await thumbnail(alice, media, LEGACY, width=320, height=240, method="scale")
    assert image_size(scaled.content) == (320, 240)


async def test_media_the_remote_server_does_not_have_is_404_m_not_found(pair):
    a, b = pair
    alice = await register(a.server)

    assert_error(await download(alice, f"{b.name}/NoSuchMedia"), 404, "M_NOT_FOUND")
    response = await thumbnail(alice, f"{b.name}/NoSuchMedia", width=32, height=32)
    assert_error(response, 404, "M_NOT_FOUND")
    assert a.federation.destinations.backoff(b.name) is None


async def test_media_not_uploaded_yet_on_the_remote_server_is_504_m_not_yet_uploaded(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    created = await bob.http.post(
        "/_matrix/media/v1/create", headers={"Authorization": f"Bearer {bob.access_token}"}
    )
    media = created.json()["content_uri"].removeprefix("mxc://")

    assert_error(await download(alice, media, timeout_ms=0), 504, "M_NOT_YET_UPLOADED")


async def test_a_server_that_is_down_is_502_and_nothing_is_kept(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    media = await upload(bob, PHOTO, "image/png")
    await b.stop()

    body = assert_error(await download(alice, media), 502, "M_UNKNOWN")
    assert b.name in body["error"]
    assert_error(await thumbnail(alice, media, width=32, height=32), 502, "M_UNKNOWN")
    assert stored_files(a.config.database_path) == []


async def test_a_remote_file_over_max_request_size_is_502_m_too_large_and_not_kept(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", max_request_size=4096)
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server), await register(b.server)
    large = await upload(bob, b"x" * 8000, "text/plain")
    fits = await upload(bob, b"y" * 4000, "text/plain")

    assert_error(await download(alice, large), 502, "M_TOO_LARGE")
    assert_error(await thumbnail(alice, large, width=32, height=32), 502, "M_TOO_LARGE")

    assert stored_files(a.config.database_path) == []
    assert a.federation.destinations.backoff(b.name) is None  # B answered: it is up
    assert (await download(alice, fits)).content == b"y" * 4000


async def test_legacy_allow_remote_false_answers_only_what_is_here(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server)
    file = StubAnswer(200, [("Content-Type", "text/plain")], b"from the stub")

    async def respond(request: StubRequest) -> StubAnswer:
        return UNRECOGNIZED if request.path.startswith(FEDERATION_MEDIA) else file

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)
    media = f"{peer.name}/SomeMedia"

    assert_error(await download(alice, media, LEGACY, allow_remote="false"), 404, "M_NOT_FOUND")
    response = await thumbnail(alice, media, LEGACY, width=32, height=32, allow_remote="false")
    assert_error(response, 404, "M_NOT_FOUND")
    assert peer.requests == []

    assert (await download(alice, media, LEGACY)).content == b"from the stub"
    assert (await download(alice, media, LEGACY, allow_remote="false")).content == b"from the stub"
    assert len(peer.requests) == 2  # the federation endpoint, then the legacy one: once


# ---------------------------------------------------------------- the federation endpoints


async def test_the_federation_download_answers_json_then_the_file_in_multipart_mixed(pair):
    a, b = pair
    bob = await register(b.server)
    media_id = (await upload(bob, PHOTO, "image/png", filename="holiday.png")).split("/")[1]

    answer = await a.federation.client.request_raw(
        b.name, "GET", f"{FEDERATION_MEDIA}/download/{media_id}", accept="*/*"
    )

    assert answer.status == 200
    metadata, file = multipart_parts(answer.headers["content-type"], answer.body)
    assert metadata.headers == {"content-type": "application/json"}
    assert json.loads(metadata.body) == {}
    assert file.headers["content-type"] == "image/png"
    assert file.headers["content-disposition"] == 'inline; filename="holiday.png"'
    assert file.body == PHOTO


async def test_the_federation_thumbnail_answers_a_thumbnail_in_multipart_mixed(pair):
    a, b = pair
    bob = await register(b.server)
    media_id = (await upload(bob, PHOTO, "image/png")).split("/")[1]

    answer = await a.federation.client.request_raw(
        b.name,
        "GET",
        f"{FEDERATION_MEDIA}/thumbnail/{media_id}",
        query={"width": 96, "height": 96, "method": "crop", "animated": "false"},
        accept="*/*",
    )

    assert answer.status == 200
    metadata, file = multipart_parts(answer.headers["content-type"], answer.body)
    assert json.loads(metadata.body) == {}
    assert file.headers["content-type"] == "image/png"
    assert image_size(file.body) == (96, 96)


@pytest.mark.parametrize(
    ("path", "status", "errcode"),
    [
        ("/download/NoSuchMedia", 404, "M_NOT_FOUND"),
        ("/thumbnail/NoSuchMedia?width=32&height=32", 404, "M_NOT_FOUND"),
        ("/download/not.allowed", 400, "M_INVALID_PARAM"),
        ("/thumbnail/SomeMedia?width=0&height=32", 400, "M_INVALID_PARAM"),
        ("/thumbnail/SomeMedia?width=32", 400, "M_MISSING_PARAM"),
        ("/thumbnail/SomeMedia?width=32&height=32&method=stretch", 400, "M_INVALID_PARAM"),
        ("/download/SomeMedia?timeout_ms=soon", 400, "M_INVALID_PARAM"),
    ],
)
async def test_bad_federation_media_requests_get_the_spec_s_errors(pair, path, status, errcode):
    a, b = pair
    path, _, query = path.partition("?")
    params = dict(item.split("=") for item in query.split("&")) if query else None

    answer = await a.federation.client.request_raw(
        b.name, "GET", FEDERATION_MEDIA + path, query=params
    )

    assert answer.status == status, answer.body
    assert json.loads(answer.body)["errcode"] == errcode


async def test_the_federation_media_endpoints_need_a_signed_request(pair):
    _, b = pair
    bob = await register(b.server)
    media_id = (await upload(bob, PHOTO, "image/png")).split("/")[1]

    for path in (f"/download/{media_id}", f"/thumbnail/{media_id}?width=32&height=32"):
        assert_error(await b.client.get(FEDERATION_MEDIA + path), 401, "M_UNAUTHORIZED")


# ---------------------------------------------------------------- peers of the test's own


async def test_a_server_without_the_federation_endpoint_is_asked_on_the_legacy_path(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server)
    file = StubAnswer(
        200,
        [
            ("Content-Type", "application/pdf"),
            ("Content-Disposition", "attachment; filename*=utf-8''%C3%84rger.pdf"),
        ],
        b"%PDF-1.7 \r\n\x00\xff binary",
    )

    async def respond(request: StubRequest) -> StubAnswer:
        return UNRECOGNIZED if request.path.startswith(FEDERATION_MEDIA) else file

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)

    response = await download(alice, f"{peer.name}/OldMedia", timeout_ms=5000)

    assert response.status_code == 200, response.text
    assert response.content == file.body
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename*=utf-8''%C3%84rger.pdf"
    federation, legacy = peer.requests
    assert federation.path == f"{FEDERATION_MEDIA}/download/OldMedia"
    assert federation.headers["authorization"].startswith("X-Matrix ")
    assert legacy.path == f"/_matrix/media/v3/download/{peer.name}/OldMedia"
    assert legacy.query["allow_remote"] == ["false"]
    assert federation.query["timeout_ms"] == legacy.query["timeout_ms"] == ["5000"]


async def test_a_legacy_answer_over_the_limit_is_502_m_too_large(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", max_request_size=4096)
    alice = await register(a.server)

    async def respond(request: StubRequest) -> StubAnswer:
        if request.path.startswith(FEDERATION_MEDIA):
            return UNRECOGNIZED
        return StubAnswer(200, [("Content-Type", "text/plain")], b"z" * 5000)

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)

    assert_error(await download(alice, f"{peer.name}/Big"), 502, "M_TOO_LARGE")
    assert stored_files(a.config.database_path) == []


BOUNDARY = "b0undary"
GOOD_JSON_PART = ([("Content-Type", "application/json")], b"{}")
BROKEN_ANSWERS = {
    "truncated": StubAnswer(
        200,
        [("Content-Type", f"multipart/mixed; boundary={BOUNDARY}")],
        multipart_body(BOUNDARY, [GOOD_JSON_PART, ([], b"file")])[:-12],
    ),
    "one part": StubAnswer(
        200,
        [("Content-Type", f"multipart/mixed; boundary={BOUNDARY}")],
        multipart_body(BOUNDARY, [GOOD_JSON_PART]),
    ),
    "not multipart": StubAnswer(200, [("Content-Type", "image/png")], PHOTO),
    "no boundary": StubAnswer(200, [("Content-Type", "multipart/mixed")], b"--x\r\n"),
    "redirect": StubAnswer(
        200,
        [("Content-Type", f"multipart/mixed; boundary={BOUNDARY}")],
        multipart_body(BOUNDARY, [GOOD_JSON_PART, ([("Location", "https://10.0.0.1/x")], b"")]),
    ),
    "first part not json": StubAnswer(
        200,
        [("Content-Type", f"multipart/mixed; boundary={BOUNDARY}")],
        multipart_body(BOUNDARY, [([("Content-Type", "text/plain")], b"{}"), ([], b"file")]),
    ),
    "server error": json_answer(500, b'{"errcode":"M_UNKNOWN","error":"oops"}'),
}


@pytest.mark.parametrize("case", BROKEN_ANSWERS)
async def test_an_unusable_answer_is_502_and_nothing_is_kept(nursery, ca, tmp_path, case):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server)

    async def respond(request: StubRequest) -> StubAnswer:
        return BROKEN_ANSWERS[case]

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)

    assert_error(await download(alice, f"{peer.name}/Broken"), 502, "M_UNKNOWN")
    assert stored_files(a.config.database_path) == []
    assert len(peer.requests) == 1  # no legacy retry: the endpoint exists


async def test_a_well_formed_multipart_answer_from_another_implementation_is_taken(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server)
    content = b"--b0undar not quite\r\n--b0undaryX but still the file"
    answer = StubAnswer(
        200,
        [("Content-Type", f'multipart/mixed; boundary="{BOUNDARY}"')],
        b"preamble\r\n"
        + multipart_body(
            BOUNDARY,
            [
                ([("content-type", "application/json")], b'{"future": "field"}'),
                ([("Content-Type", "text/plain; charset=utf-8")], content),
            ],
        ),
    )

    async def respond(request: StubRequest) -> StubAnswer:
        return answer

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)

    response = await download(alice, f"{peer.name}/Other")

    assert response.status_code == 200, response.text
    assert response.content == content
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_concurrent_requests_for_one_remote_file_share_one_fetch(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    users = [await register(a.server) for _ in range(3)]
    release = trio.Event()
    file = multipart_body(BOUNDARY, [GOOD_JSON_PART, ([("Content-Type", "text/plain")], b"one")])

    async def respond(request: StubRequest) -> StubAnswer:
        await release.wait()
        return StubAnswer(200, [("Content-Type", f"multipart/mixed; boundary={BOUNDARY}")], file)

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)
    answers: list[bytes] = []

    async def fetch(user) -> None:
        response = await download(user, f"{peer.name}/Shared")
        answers.append(response.content)

    async with trio.open_nursery() as requests:
        for user in users:
            requests.start_soon(fetch, user)
        # Every request is in: the stub holds the one fetch, the others wait for it.
        await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        release.set()

    assert answers == [b"one"] * 3
    assert peer.paths() == [f"{FEDERATION_MEDIA}/download/Shared"]


async def test_a_peer_that_never_answers_is_502_within_timeout_ms(
    nursery, ca, tmp_path, monkeypatch
):
    monkeypatch.setattr(remote_media, "TRANSFER_ALLOWANCE_SECONDS", 0.5)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server)

    async def respond(request: StubRequest) -> StubAnswer:
        await trio.sleep_forever()
        raise AssertionError("never")

    peer = await serve_media_peer(nursery, ca, STUB_ADDRESS, respond)

    body = assert_error(
        await download(alice, f"{peer.name}/Slow", timeout_ms=500), 502, "M_UNKNOWN"
    )
    assert peer.name in body["error"]
    assert peer.requests[0].query["timeout_ms"] == ["500"]
