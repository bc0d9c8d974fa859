"""Reading query parameters, with the spec's 400 `M_INVALID_PARAM` when one is malformed.

Spec: `content/client-server-api/_index.md`, "Standard error response"
(`M_INVALID_PARAM`: a parameter has the wrong value). Every handler reads
numbers, flags and stream tokens from the query string through these
helpers, so that Unicode digits, huge numbers and other junk get the same
clear answer everywhere.
"""

from __future__ import annotations

from quart import request

from ..core.digits import parse_decimal
from ..errors import invalid_param, missing_param


def query_int(name: str, default: int | None = None, *, minimum: int | None = None) -> int:
    """An integer parameter; `default` when absent (or `M_MISSING_PARAM` if there is none).

    `minimum`: smaller values are refused (`limit=-1`), not clamped.
    """
    value = request.args.get(name)
    if value is None:
        if default is None:
            raise missing_param(name)
        return default
    number = parse_decimal(value, signed=True)
    if number is None:
        raise invalid_param(f"`{name}` must be an integer.")
    if minimum is not None and number < minimum:
        raise invalid_param(f"`{name}` must be at least {minimum}.")
    return number


def optional_query_int(name: str, *, minimum: int | None = None) -> int | None:
    """An integer parameter that may be absent (None)."""
    if request.args.get(name) is None:
        return None
    return query_int(name, minimum=minimum)


def query_bool(name: str, default: bool = False) -> bool:
    """A `true`/`false` parameter."""
    value = request.args.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise invalid_param(f"`{name}` must be true or false.")
    return value == "true"


def query_offset(name: str) -> int:
    """A paging token that is a plain non-negative offset (`next_batch`, hierarchy `from`)."""
    value = request.args.get(name, "0")
    number = parse_decimal(value)
    if number is None:
        raise invalid_param(f"`{name}` is not a valid token.")
    return number
