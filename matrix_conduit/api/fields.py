"""Reading typed fields of a JSON request body, with the spec's 400s when they are wrong.

Spec: `content/client-server-api/_index.md`, "Standard error response":
a missing required field is `M_MISSING_PARAM`, a field of the wrong type is
`M_BAD_JSON`.
"""

from __future__ import annotations

from typing import Any

from ..errors import bad_json, missing_param


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
