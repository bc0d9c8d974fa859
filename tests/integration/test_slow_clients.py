"""Slow and idle clients: the server closes their connections within its configured timeouts.

A homeserver faces the open internet; a client that opens a connection and
then sends its request head slowly, never finishes it, sends less body than
its `Content-Length` announced, or keeps an idle keep-alive connection open
must not hold a connection (and its memory and file descriptor) for ever
("slowloris"). RFC 9112 §9.8 lets a server close such connections; issue 13
asks for bounded timeouts on headers, body and keep-alive, as a front-line
server would have.

The timeouts are `[global]` keys: `client_idle_timeout` for a request's
headers (a new connection's first request or a kept-alive one's next, which
`server.py` hands hypercorn as its keep-alive timeout) and
`client_body_timeout` for its whole body; set short here so the tests are
quick. Raw sockets, because HTTP client libraries hide who closed a
connection and when. No test measures speed: each only waits, with a
generous bound, for the server to close the connection.
"""

from __future__ import annotations

import pytest
import trio

from tests.support.hostile import no_error_in_the_server_log
from tests.support.matrix import ok, register
from tests.support.shared_server import SharedServer, shared_server_fixtures

SHORT_TIMEOUT_SECONDS = 2
GRACE_SECONDS = 10
"""How much longer than its timeout the server may take to close: generous, so a
loaded machine never fails these tests; a server without the timeout never closes."""

pytestmark = pytest.mark.slow

running_server, server = shared_server_fixtures(
    client_idle_timeout=SHORT_TIMEOUT_SECONDS, client_body_timeout=SHORT_TIMEOUT_SECONDS
)
no_error_logged = no_error_in_the_server_log()

VERSIONS = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n"


def bound(timeout: float) -> float:
    """How long to wait for the server to close a connection it should close after `timeout`."""
    return timeout + GRACE_SECONDS


async def connect(server: SharedServer) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", server.config.port)


async def until_closed(stream: trio.SocketStream, seconds: float) -> bytes:
    """Everything the server sends before it closes; fails if it keeps the connection open."""
    received = bytearray()
    with trio.move_on_after(seconds) as waited:
        try:
            while chunk := await stream.receive_some():
                received += chunk
        except trio.BrokenResourceError:  # closed with a reset: closed all the same
            pass
    assert not waited.cancelled_caught, (
        f"the connection was still open after {seconds} s; received {bytes(received)[:200]!r}"
    )
    return bytes(received)


def assert_no_success(received: bytes) -> None:
    """What the server said before closing, if anything, is an error status."""
    if received:
        status_line = received.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 4"), status_line


async def test_request_head_that_never_ends_is_closed_within_the_idle_timeout(
    server: SharedServer,
):
    seconds = bound(server.config.client_idle_timeout)
    stream = await connect(server)
    await stream.send_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n")

    assert_no_success(await until_closed(stream, seconds))
    await stream.aclose()


async def trickle_until_closed(stream: trio.SocketStream, data: bytes, seconds: float) -> bool:
    """Send `data` a byte at a time, each well within any per-read timeout; True if the
    server closed the connection within `seconds`."""
    with trio.move_on_after(seconds):
        try:
            for byte in data:
                await stream.send_all(bytes([byte]))
                await trio.sleep(SHORT_TIMEOUT_SECONDS / 4)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return True
    with trio.move_on_after(1):  # the server may have closed while we slept: a read tells
        try:
            while await stream.receive_some():  # an error answer (408) before the close
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_request_head_trickled_a_byte_at_a_time_is_closed_within_the_idle_timeout(
    server: SharedServer,
):
    """Slowloris proper: each byte arrives before a per-read timeout would fire, so only a
    deadline for the whole head closes the connection."""
    seconds = bound(server.config.client_idle_timeout)
    stream = await connect(server)
    head = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000

    assert await trickle_until_closed(stream, head, seconds), (
        f"a client trickling its request head held the connection for {seconds} s"
    )
    await stream.aclose()


async def test_body_trickled_a_byte_at_a_time_is_closed_within_the_body_timeout(
    server: SharedServer,
):
    seconds = bound(server.config.client_body_timeout)
    stream = await connect(server)
    await stream.send_all(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )

    assert await trickle_until_closed(stream, b" " * 1000, seconds), (
        f"a client trickling its request body held the connection for {seconds} s"
    )
    await stream.aclose()


async def test_body_shorter_than_its_content_length_is_closed_within_the_body_timeout(
    server: SharedServer,
):
    seconds = bound(server.config.client_body_timeout)
    stream = await connect(server)
    await stream.send_all(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"type":'
    )

    assert_no_success(await until_closed(stream, seconds))
    await stream.aclose()


async def test_idle_keep_alive_connection_is_closed_within_the_idle_timeout(
    server: SharedServer,
):
    seconds = bound(server.config.client_idle_timeout)
    stream = await connect(server)
    await stream.send_all(VERSIONS)

    received = await until_closed(stream, seconds)

    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    await stream.aclose()


async def test_connection_that_never_sends_anything_is_closed(server: SharedServer):
    seconds = bound(server.config.client_idle_timeout)
    stream = await connect(server)

    assert await until_closed(stream, seconds) == b""
    await stream.aclose()


@pytest.mark.parametrize("slow_clients", [20])
async def test_slow_clients_do_not_keep_others_from_being_served(
    server: SharedServer, slow_clients: int
):
    streams = [await connect(server) for _ in range(slow_clients)]
    for stream in streams:
        await stream.send_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: local")

    response = await server.client.get("/_matrix/client/versions")

    assert response.status_code == 200
    for stream in streams:
        await stream.aclose()


async def test_long_poll_longer_than_the_timeouts_is_still_answered(server: SharedServer):
    """The timeouts are for clients that do not send; a `/sync` that waits for news longer
    than any of them is the server's own doing and must still get its answer."""
    longest = max(server.config.client_idle_timeout, server.config.client_body_timeout)
    user = await register(server)
    since = ok(await user.get("/sync", timeout=0))["next_batch"]
    long_poll_ms = int((longest + 2) * 1000)

    response = await user.get("/sync", timeout=long_poll_ms, since=since)

    assert response.status_code == 200, response.text
