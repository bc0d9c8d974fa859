"""`Connection: close` and HTTP/1.0 requests get their answer, then the server closes.

Health checks, `ab` and simple scripts wait for the server to close such a
connection; with QuartTrio on hypercorn's trio worker it stayed open
(`matrix_conduit/http_connection.py` explains the fix). Raw sockets, because
HTTP client libraries hide who closed the connection. The trio timeouts only
turn a hang into a failure; nothing here measures time.
"""

from __future__ import annotations

import json
import re

import pytest
import trio

from tests.support.shared_server import SharedServer, shared_server_fixtures

HANG_GUARD_SECONDS = 10
CLOSE = "Connection: close"

running_server, server = shared_server_fixtures()


async def connect(server: SharedServer) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", server.config.port)


async def read_until_server_closes(stream: trio.SocketStream) -> bytes:
    """Everything the server sends; fails if the server keeps the connection open."""
    received = bytearray()
    with trio.fail_after(HANG_GUARD_SECONDS):
        while chunk := await stream.receive_some():
            received += chunk
    return bytes(received)


async def read_one_response(stream: trio.SocketStream) -> bytes:
    """One response on a kept-alive connection: the head and `Content-Length` bytes."""
    received = bytearray()
    with trio.fail_after(HANG_GUARD_SECONDS):
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some()
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += await stream.receive_some()
    assert len(body) == length, "the server answered more than one response"
    return head + b"\r\n\r\n" + body


def request(method: str, path: str, version: str = "HTTP/1.1", *headers: str) -> bytes:
    lines = [f"{method} {path} {version}", "Host: localhost", *headers, "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("raw_request", "status_line"),
    [
        (
            request("GET", "/_matrix/client/versions", "HTTP/1.1", CLOSE),
            b"HTTP/1.1 200",
        ),
        (request("GET", "/_matrix/client/versions", "HTTP/1.0"), b"HTTP/1.1 200"),
        (request("GET", "/unknown", "HTTP/1.1", CLOSE), b"HTTP/1.1 404"),
        (request("GET", "/unknown", "HTTP/1.0"), b"HTTP/1.1 404"),
    ],
    ids=["close-200", "http10-200", "close-404", "http10-404"],
)
async def test_connection_is_closed_after_the_answer(
    server: SharedServer, raw_request: bytes, status_line: bytes
):
    stream = await connect(server)
    await stream.send_all(raw_request)

    received = await read_until_server_closes(stream)

    assert received.startswith(status_line)
    assert json.loads(received.partition(b"\r\n\r\n")[2])
    await stream.aclose()


async def test_keep_alive_connection_serves_several_requests(server: SharedServer):
    stream = await connect(server)
    for _ in range(3):
        await stream.send_all(request("GET", "/_matrix/client/versions"))
        assert (await read_one_response(stream)).startswith(b"HTTP/1.1 200")

    await stream.send_all(request("GET", "/_matrix/client/versions", "HTTP/1.1", CLOSE))
    assert (await read_until_server_closes(stream)).startswith(b"HTTP/1.1 200")
    await stream.aclose()
