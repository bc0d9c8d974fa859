"""Reading typed fields of a JSON request body, with the spec's 400s when they are wrong.

Spec: `content/client-server-api/_index.md`, "Standard error response":
a missing required field is `M_MISSING_PARAM`, a field of the wrong type is
`M_BAD_JSON`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.ids import is_valid_user_id
from ..errors import bad_json, invalid_param, missing_param


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_json(f"`{key}` must be a string.")
    return value


def required_str(body: dict[str, Any], key: str) -> str:
    value = optional_str(body, key)
    if value is None:
        raise missing_param(key)
    return value


def optional_bool(body: dict[str, Any], key: str, *, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_json(f"`{key}` must be true or false.")
    return value


def optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad_json(f"`{key}` must be an integer.")
    return value


def optional_object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise bad_json(f"`{key}` must be a JSON object.")
    return value


def optional_str_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_json(f"`{key}` must be a list of strings.")
    return value


def required_user_map(
    body: dict[str, Any], key: str, value_is_valid: Callable[[object], bool], shape: str
) -> dict[str, Any]:
    """A required object keyed by user ids (`/keys/query`, `/sendToDevice`...).

    Each value must pass `value_is_valid`; `shape` says what it should be in
    the `M_BAD_JSON` message. A key that is not a user id is `M_INVALID_PARAM`.
    """
    value = body.get(key)
    if value is None:
        raise missing_param(key)
    if not isinstance(value, dict) or not all(value_is_valid(v) for v in value.values()):
        raise bad_json(f"`{key}` must map user ids to {shape}.")
    for user_id in value:
        if not is_valid_user_id(user_id):
            raise invalid_param(f"{user_id!r} is not a user id.")
    return value
