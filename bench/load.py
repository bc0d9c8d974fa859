"""A keep-alive HTTP/1.1 load generator, run in its own process: `python -m bench.load`.

    python -m bench.load URL --connections 8 --warmup 2 --duration 10

Each connection sends one GET, reads the whole response (Content-Length),
sends the next, for `warmup` seconds and then `duration` seconds. It prints
`measuring` when the measured part starts (so the caller can sample the
server's CPU time) and, at its end, one JSON line: completed requests,
non-200 answers, measured seconds, and its own CPU seconds.

Raw sockets and `selectors` rather than an HTTP library: the generator must
cost far less CPU per request than the server it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import time
from urllib.parse import urlsplit

CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


class Connection:
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.address = (host, port)
        self.request = request
        self.open()

    def open(self) -> None:
        self.socket = socket.create_connection(self.address)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def send_request(self) -> None:
        self.socket.sendall(self.request)

    def receive(self) -> list[bytes] | None:
        """Status codes of the responses completed by the data available now.

        None when the server has closed the connection: hypercorn does so
        after `keep_alive_max_requests` (1000) requests on one connection.
        """
        data = self.socket.recv(65536)
        if not data:
            return None
        self.buffer += data
        statuses = []
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = CONTENT_LENGTH.search(self.buffer, 0, head_end)
            if length is None:
                raise ConnectionError("a response without Content-Length")
            end = head_end + 4 + int(length.group(1))
            if len(self.buffer) < end:
                break
            statuses.append(bytes(self.buffer[9:12]))
            del self.buffer[:end]
        return statuses


def generate_load(url: str, connections: int, warmup: float, duration: float) -> dict:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        connection = Connection(parts.hostname, parts.port, request)
        selector.register(connection.socket, selectors.EVENT_READ, connection)
        connection.send_request()

    measuring_from = time.monotonic() + warmup
    end = measuring_from + duration
    measuring = False
    completed = errors = 0
    cpu_at_start = 0.0
    while (now := time.monotonic()) < end:
        if not measuring and now >= measuring_from:
            measuring = True
            cpu_at_start = time.process_time()
            print("measuring", flush=True)
        for key, _ in selector.select(timeout=0.1):
            connection: Connection = key.data
            try:
                statuses = connection.receive()
            except ConnectionResetError:
                statuses = None
            if statuses is None:  # closed by the server: the request in flight goes again
                selector.unregister(connection.socket)
                connection.socket.close()
                connection.open()
                selector.register(connection.socket, selectors.EVENT_READ, connection)
                connection.send_request()
                continue
            if statuses:
                connection.send_request()
            if measuring:
                completed += len(statuses)
                errors += sum(status != b"200" for status in statuses)
    return {
        "requests": completed,
        "errors": errors,
        "seconds": duration,
        "client_cpu_seconds": time.process_time() - cpu_at_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    arguments = parser.parse_args()
    result = generate_load(
        arguments.url, arguments.connections, arguments.warmup, arguments.duration
    )
    print(json.dumps({**result, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()
