"""Reading requests: the JSON body, query parameters, and the services to call.

Every handler goes through these helpers, so that every malformed request gets
the same clear answer: `M_NOT_JSON` when the body is not JSON at all,
`M_BAD_JSON` when it is JSON of the wrong shape.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from quart import current_app, request

from ..errors import MatrixError, bad_json

if TYPE_CHECKING:
    from ..app import MatrixApp
    from ..config import Config
    from ..service import Services


def app() -> MatrixApp:
    return cast("MatrixApp", current_app)


def services() -> Services:
    return app().services


def config() -> Config:
    return app().matrix_config


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes) -> Any:
    """Strict JSON (no NaN/Infinity), or `M_NOT_JSON`."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise MatrixError(
            400, "M_NOT_JSON", f"The request body is not valid JSON: {error}"
        ) from None


async def json_object(*, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object.

    `optional`: an empty body counts as `{}` (endpoints whose body may be
    omitted, such as `/logout`).
    """
    data = await request.get_data(cache=True)
    if optional and not data.strip():
        return {}
    value = parse_json(data)
    if not isinstance(value, dict):
        raise bad_json("The request body must be a JSON object.")
    return value
