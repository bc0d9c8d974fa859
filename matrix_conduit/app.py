"""The HTTP application: a QuartTrio app with the spec's error shapes and CORS.

Spec: `content/client-server-api/_index.md`, "API Standards" (errors, CORS in
"Web Browser Clients"). Routes live in `api/` (one blueprint per area); this
module only assembles them and makes every answer, including failures, look
the way Matrix clients expect: JSON `{"errcode", "error"}` with the right
status, CORS headers on every response, and OPTIONS answered without running
any endpoint logic.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from quart import Response, request
from quart.json.provider import DefaultJSONProvider
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .api import blueprints
from .api.rate_limits import retry_after_headers
from .config import Config
from .core.errors import CanonicalJsonError
from .errors import GATEWAY_STATUSES, MatrixError, bad_json
from .http_connection import ClosingHTTPConnection
from .request_log import install_request_log
from .service import Services
from .url_routing import RawPathMap

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


_REPLACEMENT_CHARACTER = "\ufffd".encode()


def _replace_unencodable(error: UnicodeError) -> tuple[bytes, int]:
    """U+FFFD for each unencodable character (as bytes: the UTF-8 codec takes no other str)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return _REPLACEMENT_CHARACTER * (error.end - error.start), error.end


codecs.register_error("matrix_conduit.replace", _replace_unencodable)


def encode_json_body(value: Any) -> bytes:
    """A response body: compact UTF-8 JSON that can always be encoded.

    Requests that would store a lone UTF-16 surrogate are refused at the door
    (`api.request.parse_json`), but a value stored before that, or reaching us
    some other way, must not turn every response that carries it into a 500:
    such a character is sent as U+FFFD instead. The replacement only runs
    when encoding fails, so well-formed answers cost nothing extra.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "matrix_conduit.replace")


class MatrixJSONProvider(DefaultJSONProvider):
    """Compact UTF-8 JSON, keys in insertion order: what clients expect, and cheap."""

    compact = True
    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = encode_json_body(self._prepare_response_obj(args, kwargs))
        return Response(body, content_type="application/json")


class MatrixApp(QuartTrio):
    """The app, holding the configuration and the services its handlers call."""

    json_provider_class = MatrixJSONProvider
    url_map_class = RawPathMap
    asgi_http_class = ClosingHTTPConnection

    def __init__(self, config: Config, services: Services) -> None:
        # No static files: the API is all there is (and `/static/<path>` would be a route
        # on which a long name reaches the file system).
        super().__init__(__name__, static_folder=None)
        self.matrix_config = config
        self.services = services
        self.metrics: Metrics | None = None
        """Prometheus metrics, when `[global.metrics]` turns them on."""


def error_response(error: MatrixError) -> Response:
    return Response(
        encode_json_body(error.to_json()),
        status=error.status,
        content_type="application/json",
    )


_HTTP_ERRORS = {
    404: ("M_UNRECOGNIZED", "Unrecognized request: no endpoint at this path."),
    405: ("M_UNRECOGNIZED", "Unrecognized request: this endpoint does not take that method."),
    408: ("M_UNKNOWN", "The request body did not arrive in time."),
    413: ("M_TOO_LARGE", "The request body is larger than this server accepts."),
}

_CLOSING_STATUSES = (408, 413)
"""Answers given before the body was read whole: the connection closes after them."""


def create_app(config: Config, services: Services) -> MatrixApp:
    app = MatrixApp(config, services)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_size
    app.config["BODY_TIMEOUT"] = config.client_body_timeout
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    install_request_log(app)
    if config.metrics.enabled:  # prometheus_client is imported only then (idle memory)
        from .metrics import install_metrics

        app.metrics = install_metrics(app, services, config.metrics)

    @app.before_request
    async def answer_preflight() -> Response | None:
        if request.method == "OPTIONS":
            return Response("{}", status=200, content_type="application/json")
        return None

    @app.after_request
    async def finish_response(response: Response) -> Response:
        response.headers.update(CORS_HEADERS)
        if response.status_code in _CLOSING_STATUSES:
            return response
        # Answering before the request body is in (a handler that never reads
        # it, or an error raised first) lets hypercorn finish the response while
        # h11 still expects body bytes: it then closes the keep-alive connection
        # without `Connection: close`, and the client's next request on it fails.
        with contextlib.suppress(Exception):  # too large: the connection closes anyway
            await request.body
        return response

    @app.errorhandler(MatrixError)
    async def matrix_error(error: MatrixError) -> Response:
        if error.status in GATEWAY_STATUSES:
            log.warning("%s %s: %s", request.method, request.path, error.message)
        elif error.status >= 500:
            log.error("%s %s failed", request.method, request.path, exc_info=error)
        response = error_response(error)
        response.headers.update(retry_after_headers(error))
        return response

    @app.errorhandler(CanonicalJsonError)
    async def not_canonical_json(error: CanonicalJsonError) -> Response:
        # Only what a client sent reaches signing unchecked: the event's values
        # are not allowed by its room version (floats, big integers in v6+).
        return error_response(bad_json(f"The event cannot be sent: {error}."))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        errcode, message = _HTTP_ERRORS.get(
            status, ("M_UNKNOWN", error.description or "The request failed.")
        )
        response = error_response(MatrixError(status, errcode, message))
        if status in _CLOSING_STATUSES:
            # The rest of the body is never read: the connection cannot carry
            # another request, so say so instead of letting the client find out.
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(MatrixError(500, "M_UNKNOWN", "Internal server error."))

    return app
