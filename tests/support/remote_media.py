"""Media across servers, for `tests/federation/test_*remote_media*` and `test_synapse_media`.

Clients' uploads, downloads and thumbnails over HTTP for a user of either
server (ours or Synapse: both `tests.support.matrix.User` and
`tests.support.synapse_rooms.Account` have `http`, `access_token` and
`server_name`); a reader of the spec's two-part `multipart/mixed` media answer
written for the tests (splitting on the boundary, nothing shared with the
server's parser); and `serve_media_peer`, a real HTTPS peer of the test's own
(h11 on trio, one request per connection) whose answers the test writes
byte for byte: a server without the federation media endpoint, one that
never answers, one that sends broken multipart.
"""

from __future__ import annotations

import functools
import io
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import h11
import httpx
import trio
from PIL import Image

from matrix_conduit.service.media_files import INCOMING_PREFIX, MEDIA_DIRECTORY
from tests.support.federation_ca import FederationCa, free_port_on
from tests.support.matrix import ok

AUTHENTICATED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"
FEDERATION_MEDIA = "/_matrix/federation/v1/media"


class MediaUser(Protocol):
    http: httpx.AsyncClient
    access_token: str
    server_name: str


def _bearer(user: MediaUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_token}"}


async def upload(
    user: MediaUser, data: bytes, content_type: str = "image/png", filename: str | None = None
) -> str:
    """`POST /_matrix/media/v3/upload`; the `server/mediaId` of the new `mxc://` URI."""
    response = await user.http.post(
        f"{LEGACY}/upload",
        content=data,
        params={"filename": filename} if filename else None,
        headers={**_bearer(user), "Content-Type": content_type},
    )
    content_uri = ok(response)["content_uri"]
    assert content_uri.startswith(f"mxc://{user.server_name}/"), content_uri
    return content_uri.removeprefix("mxc://")


async def download(
    user: MediaUser, media: str, prefix: str = AUTHENTICATED, **params: Any
) -> httpx.Response:
    """`GET {prefix}/download/{media}` (`media` is `server/mediaId[/fileName]`)."""
    headers = _bearer(user) if prefix == AUTHENTICATED else {}
    return await user.http.get(f"{prefix}/download/{media}", headers=headers, params=params)


async def thumbnail(
    user: MediaUser, media: str, prefix: str = AUTHENTICATED, **params: Any
) -> httpx.Response:
    headers = _bearer(user) if prefix == AUTHENTICATED else {}
    return await user.http.get(f"{prefix}/thumbnail/{media}", headers=headers, params=params)


def image_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def stored_files(database_path: str) -> list[Path]:
    """Every complete file of a server's content-addressed media store."""
    directory = Path(database_path) / MEDIA_DIRECTORY
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and not path.name.startswith(INCOMING_PREFIX)
    )


# ---------------------------------------------------------------- multipart/mixed


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes


def multipart_parts(content_type: str, body: bytes) -> list[Part]:
    """The parts of a `multipart/mixed` body, read the plain way (RFC 2046 § 5.1.1)."""
    kind, _, parameters = content_type.partition(";")
    assert kind.strip() == "multipart/mixed", content_type
    boundary = parameters.strip().removeprefix("boundary=").strip('"').encode()
    assert boundary, content_type
    delimiter = b"--" + boundary
    preamble, *sections = body.split(b"\r\n" + delimiter)
    assert preamble.startswith(delimiter), body[:200]
    first = preamble[len(delimiter) :]
    sections = [first, *sections]
    assert sections[-1].startswith(b"--"), "no closing delimiter"
    parts = []
    for section in sections[:-1]:
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert separator, section[:200]
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers, content))
    return parts


def multipart_body(boundary: str, parts: list[tuple[list[tuple[str, str]], bytes]]) -> bytes:
    """A `multipart/mixed` body of `parts` (headers, content), for the stub peer to send."""
    output = b""
    for headers, content in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        output += f"--{boundary}\r\n{head}\r\n".encode() + content + b"\r\n"
    return output + f"--{boundary}--\r\n".encode()


# ---------------------------------------------------------------- a peer of the test's own


@dataclass
class StubAnswer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def json_answer(status: int, body: bytes) -> StubAnswer:
    return StubAnswer(status, [("Content-Type", "application/json")], body)


UNRECOGNIZED = json_answer(404, b'{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}')


@dataclass
class StubRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


StubResponder = Callable[[StubRequest], Awaitable[StubAnswer]]


@dataclass
class MediaPeer:
    """A stub server: its name and every request it got, in order."""

    name: str
    requests: list[StubRequest]

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


async def serve_media_peer(
    nursery: trio.Nursery, ca: FederationCa, address: str, respond: StubResponder
) -> MediaPeer:
    """A real HTTPS server at `address` answering each request with `respond(request)`."""
    port = free_port_on(address)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*ca.certificate_for(address))
    peer = MediaPeer(f"{address}:{port}", [])

    async def handle(stream: trio.SSLStream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            request = await _next_request(stream, connection)
            if request is None:
                return
            peer.requests.append(request)
            answer = await respond(request)
            headers = [
                *answer.headers,
                ("Content-Length", str(len(answer.body))),
                ("Connection", "close"),
            ]
            for event in (
                h11.Response(status_code=answer.status, headers=headers),
                h11.Data(data=answer.body),
                h11.EndOfMessage(),
            ):
                await stream.send_all(connection.send(event))
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # the client went away: nothing to answer

    await nursery.start(functools.partial(trio.serve_ssl_over_tcp, handle, port, tls, host=address))
    return peer


async def _next_request(stream: trio.SSLStream, connection: h11.Connection) -> StubRequest | None:
    request: h11.Request | None = None
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            target = urlsplit(request.target.decode("ascii"))
            return StubRequest(
                request.method.decode(),
                target.path,
                parse_qs(target.query),
                {name.decode().lower(): value.decode() for name, value in request.headers},
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None
