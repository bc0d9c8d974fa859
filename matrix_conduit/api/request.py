"""Reading requests: the JSON body, query parameters, and the services to call.

Every handler goes through these helpers, so that every malformed request gets
the same clear answer: `M_NOT_JSON` when the body is not JSON at all,
`M_BAD_JSON` when it is JSON of the wrong shape or holds what JSON cannot
carry onward (spec: `content/client-server-api/_index.md`, "Standard error
response"; `content/appendices.md`, "Canonical JSON").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from quart import current_app, request

from ..core.canonical_json import MAX_NESTING, check_canonical_json
from ..core.errors import CanonicalJsonError
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


def _not_json(reason: str) -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", f"The request body is not valid JSON: {reason}")


def parse_json(data: bytes) -> Any:
    """Strict JSON that can be stored and sent on, or a 400.

    `M_NOT_JSON` for text that is not JSON (NaN/Infinity, digits beyond
    Python's limit, nesting the parser cannot follow); `M_BAD_JSON` for JSON
    that no response or signature could carry: lone UTF-16 surrogates
    (`"\\ud800"` has no UTF-8 form), numbers too big for a float (`1e400`),
    nesting deeper than `MAX_NESTING`. Refused here, it is never stored, so
    no later read can fail on it.
    """
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise _not_json(f"it is nested more than {MAX_NESTING} levels deep") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise _not_json(str(error)) from None
    try:
        check_canonical_json(value, strict=False)
    except CanonicalJsonError as error:
        raise bad_json(f"The request body cannot be accepted: {error}.") from None
    return value


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
