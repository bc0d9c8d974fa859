"""Canonical JSON: the one byte encoding of a JSON value that gets hashed and signed.

Spec: `content/appendices.md` § Canonical JSON (shortest UTF-8 encoding, keys
sorted by code point, integers in [-(2**53)+1, (2**53)-1] without exponent or
fraction, no floats), and the room version fragments `v1-canonical-json.md`
(rooms v1–v5 MUST NOT enforce it strictly) and `v6-canonical-json.md` (v6+
MUST, else 400 `M_BAD_JSON` / the event is dropped).

Two jobs, kept apart:
- `check_canonical_json` decides whether a value is acceptable (`strict` is
  the room version's `strict_canonical_json`);
- `encode_canonical_json` produces the bytes. It tolerates what rooms v1–v5
  tolerate (big integers, floats), following the spec's example where the JSON
  number `1e10` encodes as `10000000000`: a float with an integral value is
  written as that integer; any other float as Python's shortest round-trip
  form, which is what Synapse emits for such legacy events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from canonicaljson import encode_canonical_json as _encode

from matrix_conduit.core.errors import CanonicalJsonError, preview

MIN_CANONICAL_INT = -(2**53) + 1
MAX_CANONICAL_INT = 2**53 - 1

MAX_NESTING = 100
"""Objects and arrays nested deeper than this are refused.

Real events and request bodies nest a handful of levels. serde_json, which
Conduit and its forks parse with, stops at 128; Python's recursive codecs
fail near 1,000 (a `RecursionError` in every later read of a stored value).
The bound also stops reference cycles.
"""

_SCALARS = (str, int, float, bool, type(None))


def _path_text(path: tuple[str | int, ...]) -> str:
    if not path:
        return "the value"
    parts = "".join(f"[{step}]" if isinstance(step, int) else f"[{preview(step)}]" for step in path)
    return f"value at {parts}"


def _walk(value: object) -> Iterator[tuple[tuple[str | int, ...], object]]:
    """Every (path, value) in a JSON tree, depth first, without recursion.

    Raises for what JSON cannot hold at all: keys that are not strings (or not
    UTF-8 encodable), foreign types, absurd nesting.
    """
    stack: list[tuple[tuple[str | int, ...], object]] = [((), value)]
    while stack:
        path, current = stack.pop()
        if len(path) >= MAX_NESTING and isinstance(current, dict | list | tuple):
            raise CanonicalJsonError(f"JSON is nested more than {MAX_NESTING} levels deep")
        if isinstance(current, dict):
            for key, child in current.items():
                if not isinstance(key, str) or _has_lone_surrogate(key):
                    raise CanonicalJsonError(
                        f"{_path_text(path)} has a key that is not a UTF-8 string: {preview(key)}"
                    )
                stack.append(((*path, key), child))
        elif isinstance(current, list | tuple):
            stack.extend(((*path, index), child) for index, child in enumerate(current))
        elif not isinstance(current, _SCALARS):
            raise CanonicalJsonError(f"{_path_text(path)} is {preview(current)}, not JSON")
        yield path, current


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_scalar(path: tuple[str | int, ...], value: object, *, strict: bool) -> bool:
    """Raise if `value` is not allowed; True if it is a float (to be normalised)."""
    if isinstance(value, str):
        if _has_lone_surrogate(value):
            raise CanonicalJsonError(f"{_path_text(path)} contains a lone UTF-16 surrogate")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJsonError(f"{_path_text(path)} is {value}, which JSON cannot encode")
        if strict:
            raise CanonicalJsonError(f"{_path_text(path)} is a float; only integers are allowed")
        return True
    elif (
        strict
        and isinstance(value, int)
        and not isinstance(value, bool)
        and not MIN_CANONICAL_INT <= value <= MAX_CANONICAL_INT
    ):
        raise CanonicalJsonError(
            f"{_path_text(path)} is an integer outside [-(2**53)+1, (2**53)-1]"
        )
    return False


def _scan(value: object, *, strict: bool) -> bool:
    """Check the whole tree; True if it holds floats.

    The common case — valid JSON — takes the quick recursive check; only when
    it finds a problem does the path-tracking walk run, to say where.
    """
    try:
        return _quick_scan(value, strict, 0)
    except (_Invalid, RecursionError):
        pass
    has_float = False
    for path, current in _walk(value):
        has_float |= _check_scalar(path, current, strict=strict)
    return has_float  # a JSON subclass (OrderedDict, IntEnum...) the quick check passed over


class _Invalid(Exception):
    """The quick scan found something the full walk will describe."""


def _quick_scan(value: object, strict: bool, depth: int) -> bool:
    kind = type(value)
    if kind is str:
        if not value.isascii() and _has_lone_surrogate(value):  # type: ignore[union-attr]
            raise _Invalid
        return False
    if kind is dict:
        if depth >= MAX_NESTING:
            raise _Invalid
        has_float = False
        for key, child in value.items():  # type: ignore[union-attr]
            if type(key) is not str or (not key.isascii() and _has_lone_surrogate(key)):
                raise _Invalid
            has_float |= _quick_scan(child, strict, depth + 1)
        return has_float
    if kind is list or kind is tuple:
        if depth >= MAX_NESTING:
            raise _Invalid
        has_float = False
        for child in value:  # type: ignore[union-attr]
            has_float |= _quick_scan(child, strict, depth + 1)
        return has_float
    if kind is int:
        if strict and not MIN_CANONICAL_INT <= value <= MAX_CANONICAL_INT:  # type: ignore[operator]
            raise _Invalid
        return False
    if kind is bool or value is None:
        return False
    if kind is float:
        if strict or not math.isfinite(value):  # type: ignore[arg-type]
            raise _Invalid
        return True
    raise _Invalid  # subclasses and foreign types: the walk judges them


def check_canonical_json(value: object, *, strict: bool) -> None:
    """Raise `CanonicalJsonError` (naming where) if `value` has no Canonical JSON form.

    Always rejected: non-JSON types, non-string keys, NaN and infinities, lone
    surrogates (no UTF-8 form). With `strict` (room versions 6+, and anything
    this server creates) also floats and integers outside the safe range.
    """
    _scan(value, strict=strict)


def _integral_floats_as_ints(value: Any) -> Any:
    """A copy of `value` where floats with an integral value are ints (`1e10` → 10000000000)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [_integral_floats_as_ints(child) for child in value]
    return value


def encode_canonical_json(value: object) -> bytes:
    """The Canonical JSON bytes of `value`, as hashed and signed.

    Raises `CanonicalJsonError` for values with no JSON form at all; big
    integers and floats are encoded (see the module docstring), so check with
    `check_canonical_json(..., strict=True)` first where the room version asks.
    """
    has_float = _scan(value, strict=False)
    try:
        return _encode(_integral_floats_as_ints(value) if has_float else value)
    except (ValueError, RecursionError) as error:
        raise CanonicalJsonError(f"value cannot be encoded as JSON: {error}") from None


def _reject_constant(name: str) -> object:
    raise CanonicalJsonError(f"JSON may not contain {name}")


def decode_json(data: bytes | str) -> object:
    """Parse JSON text from the network, refusing what Canonical JSON can never hold.

    Unlike `json.loads` this rejects `NaN`/`Infinity`, invalid UTF-8, lone
    surrogate escapes and non-JSON bytes with `CanonicalJsonError`. Range and
    float checks are the caller's, with `check_canonical_json` and the room
    version.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text, parse_constant=_reject_constant)
    except CanonicalJsonError:
        raise
    except (ValueError, TypeError, RecursionError) as error:
        raise CanonicalJsonError(f"not valid JSON: {preview(str(error))}") from None
    _scan(value, strict=False)
    return value
