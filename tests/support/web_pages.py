"""Web pages of the test's own, for URL previews: a plain HTTP server on loopback addresses.

`serving_pages(addresses)` starts one `http.server` (threads, so a slow page
holds only its own request) on a free port of each address and returns a
`WebPages` whose `url(address, path)` names a page there and whose `hits`
counts the requests each address received, so a test can show a refused
preview never reached its target. Each path is one kind of page:

- `/article`: an HTML page with OpenGraph title, description and image;
- `/plain`: HTML without `og:` tags (`<title>`, `description` meta, an `<img>`);
- `/image.png`: a PNG (`PNG_BYTES`);
- `/redirect?to=URL`: 302 to URL;
- `/counted/<name>`: a page whose title says how often it was requested;
- `/huge-declared`: declares a body of `HUGE` bytes;
- `/huge-streamed`: a chunked body that goes on for `HUGE` bytes;
- `/slow`: headers, then one byte every 0.2 s for at most 60 s (a slowloris);
- `/document.pdf`: neither HTML nor an image.

Every loop is bounded, and the server stops with the `with` block.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.images import png

PNG_BYTES = png(40, 30)
HUGE = 64 * 1024 * 1024
SLOW_BYTE_SECONDS = 0.2
SLOW_LIMIT_SECONDS = 60.0

ARTICLE = b"""<!doctype html>
<html><head>
<meta charset="utf-8">
<title>Not the og:title</title>
<meta property="og:title" content="Caf\xc3\xa9 opening">
<meta property="og:description" content="A new caf\xc3\xa9 opens on the square.">
<meta property="og:image" content="/image.png">
<meta property="og:type" content="article">
</head><body><p>Body text.</p></body></html>
"""

PLAIN = b"""<html><head><title>  A plain
page </title><meta name="description" content="Described in a meta tag"></head>
<body><h1>Heading</h1><p>Text.</p><img src="image.png"></body></html>
"""


@dataclass
class WebPages:
    ports: dict[str, int]
    hits: Counter[str] = field(default_factory=Counter)
    """Requests received, per address."""
    paths: Counter[str] = field(default_factory=Counter)
    """Requests received, per path (without the query)."""

    def url(self, address: str, path: str) -> str:
        return f"http://{address}:{self.ports[address]}{path}"


def _handler(pages: WebPages) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            address = self.connection.getsockname()[0]
            parts = urlsplit(self.path)
            pages.hits[address] += 1
            pages.paths[parts.path] += 1
            if parts.path == "/article":
                self._send(200, "text/html; charset=utf-8", ARTICLE)
            elif parts.path == "/plain":
                self._send(200, "text/html", PLAIN)
            elif parts.path == "/image.png":
                self._send(200, "image/png", PNG_BYTES)
            elif parts.path == "/document.pdf":
                self._send(200, "application/pdf", b"%PDF-1.4\n%%EOF\n")
            elif parts.path == "/redirect":
                target = parse_qs(parts.query)["to"][0]
                self._send(302, "text/plain", b"moved", location=target)
            elif parts.path.startswith("/counted/"):
                title = f"requested {pages.paths[parts.path]} times".encode()
                self._send(200, "text/html", b"<title>" + title + b"</title>")
            elif parts.path == "/huge-declared":
                self._send_headers(200, "text/html", length=HUGE)
            elif parts.path == "/huge-streamed":
                self._stream(b"<p>" + b"x" * 65536, HUGE // 65536, pause=0.0)
            elif parts.path == "/slow":
                self._stream(b"<", int(SLOW_LIMIT_SECONDS / SLOW_BYTE_SECONDS), SLOW_BYTE_SECONDS)
            else:
                self._send(404, "text/plain", b"not here")

        def _send_headers(
            self, status: int, content_type: str, *, length: int | None, location: str = ""
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if location:
                self.send_header("Location", location)
            if length is None:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status: int, content_type: str, body: bytes, location: str = "") -> None:
            self._send_headers(status, content_type, length=len(body), location=location)
            self.wfile.write(body)

        def _stream(self, chunk: bytes, count: int, pause: float) -> None:
            """A chunked body of `count` chunks, `pause` s apart; stops when the reader goes."""
            self._send_headers(200, "text/html", length=None)
            try:
                for _ in range(count):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    if pause:
                        time.sleep(pause)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the preview gave up, as it should
            self.close_connection = True

    return Handler


@contextmanager
def serving_pages(addresses: list[str]) -> Iterator[WebPages]:
    """The pages on a free port of each of `addresses`, until the block ends."""
    pages = WebPages({})
    servers = []
    for address in addresses:
        server = ThreadingHTTPServer((address, 0), _handler(pages))
        server.daemon_threads = True
        pages.ports[address] = server.server_address[1]
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield pages
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
