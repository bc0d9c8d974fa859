"""Routing on the path as the client wrote it, so `%2F` stays inside its segment.

Spec: `content/client-server-api/_index.md`, "API Standards": path
parameters are percent-encoded, and identifiers may hold any character
(room-version-3 event ids carry `/` and `+`, state keys and txn ids can hold
`/`, aliases can be Unicode). ASGI servers hand the framework a path that is
already decoded, where `a%2Fb` has become `a/b` and no longer matches its
route. Synapse routes on the raw path instead; so do we:

- the routing path is built from `raw_path`, each segment decoded except for
  `/` and `%`, which stay escaped (`%2F`, `%25`);
- the converters every route uses turn those two escapes back, so a handler
  receives each parameter exactly decoded;
- the `path` converter also accepts newlines (werkzeug's stops at them).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import unquote

from quart.routing import QuartMap
from quart.wrappers.base import BaseRequestWebsocket
from werkzeug.routing import BaseConverter, MapAdapter


def _routing_segment(raw_segment: str) -> str:
    return unquote(raw_segment, errors="replace").replace("%", "%25").replace("/", "%2F")


def routing_path(raw_path: bytes) -> str:
    """The path to route on: decoded segment by segment, `/` and `%` kept escaped."""
    text = raw_path.decode("latin-1")
    return "/".join(_routing_segment(segment) for segment in text.split("/"))


def _decode(value: str) -> str:
    return value.replace("%2F", "/").replace("%25", "%") if "%" in value else value


class SegmentConverter(BaseConverter):
    """One path segment (the default converter), with `/` and `%` restored."""

    def to_python(self, value: str) -> Any:
        return _decode(value)


class RestOfPathConverter(SegmentConverter):
    """`<path:...>`: the rest of the path, newlines included."""

    regex = "[^/](?:.|\\n)*?"
    part_isolating = False
    weight = 200


class RawPathMap(QuartMap):
    """A URL map that matches requests on `routing_path` of their raw path."""

    default_converters: ClassVar[dict[str, type[BaseConverter]]] = {
        **QuartMap.default_converters,
        "default": SegmentConverter,
        "string": SegmentConverter,
        "path": RestOfPathConverter,
    }

    def bind_to_request(
        self, request: BaseRequestWebsocket, subdomain: str | None, server_name: str | None
    ) -> MapAdapter:
        adapter = super().bind_to_request(request, subdomain, server_name)
        raw_path = request.scope.get("raw_path")
        if raw_path:
            adapter.path_info = routing_path(raw_path)
        return adapter
