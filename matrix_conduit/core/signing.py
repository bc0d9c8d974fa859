"""Server signing keys, signed JSON, and the `X-Matrix` request signature.

Spec:
- `content/appendices.md` § Signing JSON (Signing Details, Checking for a
  Signature), § Unpadded Base64, § Cryptographic Test Vectors;
- `content/server-server-api.md` § Request Authentication (the JSON that is
  signed for a request, and the `Authorization: X-Matrix` header with the
  parsing rules of RFC 9110 § 11.4);
- `data/api/server-server/definitions/keys.yaml` (key ids: `ed25519:` and a
  version of `[a-zA-Z0-9_]`).

Keys are signedjson/PyNaCl objects (`alg`, `version`, `sign`, `verify`). The
signed bytes always come from `core.canonical_json`, so that an event's hash,
id and signatures all see the same encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
from signedjson.key import (
    NACL_ED25519,
    decode_signing_key_base64,
    decode_verify_key_bytes,
    encode_signing_key_base64,
    encode_verify_key_base64,
)
from signedjson.key import generate_signing_key as _generate_signing_key
from signedjson.types import SigningKey, VerifyKey

from matrix_conduit.core.canonical_json import encode_canonical_json
from matrix_conduit.core.errors import (
    InvalidAuthorizationHeader,
    InvalidSigningKey,
    SignatureError,
    preview,
)
from matrix_conduit.core.ids import InvalidIdentifier, parse_server_name

__all__ = [
    "InvalidAuthorizationHeader",
    "InvalidSigningKey",
    "SignatureError",
    "SigningKey",
    "VerifyKey",
    "XMatrixAuth",
    "build_x_matrix_header",
    "decode_base64",
    "decode_signing_key",
    "decode_verify_key",
    "encode_base64",
    "encode_signing_key",
    "generate_signing_key",
    "key_id_of",
    "parse_x_matrix_header",
    "sign_json",
    "sign_request",
    "signed_key_ids",
    "verify_json",
    "verify_key_base64",
    "verify_request",
]

_KEY_VERSION = re.compile(r"[a-zA-Z0-9_]+")
_GENERATED_VERSION_LENGTH = 8
_SEED_BYTES = 32
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


# --- base64 -----------------------------------------------------------------


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64 (standard alphabet, or URL-safe for event ids v4+)."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.decode("ascii").rstrip("=")


def decode_base64(text: object) -> bytes:
    """Decode standard or URL-safe base64, padded or not (the spec says accept both).

    Unlike `base64.b64decode` this refuses characters outside the alphabets
    instead of skipping them, so a hash or signature has exactly one spelling
    per alphabet. Raises `ValueError`.
    """
    if not isinstance(text, str) or not _BASE64.fullmatch(text):
        raise ValueError(f"{preview(text)} is not base64")
    unpadded = text.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise ValueError(f"{preview(text)} has an impossible base64 length")
    standard = unpadded.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"{preview(text)} is not base64: {error}") from None


# --- keys -------------------------------------------------------------------


def key_id_of(key: SigningKey | VerifyKey) -> str:
    """`ed25519:<version>`, the name a key is published and referenced under."""
    return f"{key.alg}:{key.version}"


def generate_signing_key() -> SigningKey:
    """A fresh ed25519 key whose version is 8 random letters and digits."""
    alphabet = string.ascii_letters + string.digits
    version = "".join(secrets.choice(alphabet) for _ in range(_GENERATED_VERSION_LENGTH))
    return _generate_signing_key(version)


def encode_signing_key(key: SigningKey) -> str:
    """The stored form of a signing key: `ed25519 <version> <unpadded base64 seed>`.

    The same line format as Synapse's `*.signing.key` files, so keys can move
    between servers.
    """
    return f"{key.alg} {key.version} {encode_signing_key_base64(key)}"


def decode_signing_key(stored: str) -> SigningKey:
    """Read `encode_signing_key`'s form back; `InvalidSigningKey` says what is wrong."""
    parts = stored.split() if isinstance(stored, str) else []
    if len(parts) != 3:
        raise InvalidSigningKey("a stored signing key is '<algorithm> <version> <base64 seed>'")
    algorithm, version, seed_base64 = parts
    if algorithm != NACL_ED25519:
        raise InvalidSigningKey(f"signing key algorithm {preview(algorithm)} is not ed25519")
    if not _KEY_VERSION.fullmatch(version):
        raise InvalidSigningKey(f"signing key version {preview(version)} is not [a-zA-Z0-9_]+")
    try:
        seed = decode_base64(seed_base64)
    except ValueError as error:
        raise InvalidSigningKey(f"signing key seed: {error}") from None
    if len(seed) != _SEED_BYTES:
        raise InvalidSigningKey(f"signing key seed is {len(seed)} bytes, not 32")
    return decode_signing_key_base64(algorithm, version, seed_base64)


def verify_key_base64(key: SigningKey | VerifyKey) -> str:
    """The public key as published in `/_matrix/key/v2/server` (`verify_keys.*.key`)."""
    verify_key = getattr(key, "verify_key", key)
    return encode_verify_key_base64(verify_key)


def decode_verify_key(key_id: str, key_base64: str) -> VerifyKey:
    """A remote server's published key (`ed25519:<version>` + base64) as a VerifyKey.

    Raises `InvalidSigningKey` for other algorithms and malformed keys.
    """
    algorithm, _, version = key_id.partition(":") if isinstance(key_id, str) else ("", "", "")
    if algorithm != NACL_ED25519 or not _KEY_VERSION.fullmatch(version):
        raise InvalidSigningKey(f"key id {preview(key_id)} is not 'ed25519:<version>'")
    try:
        key_bytes = decode_base64(key_base64)
        return decode_verify_key_bytes(key_id, key_bytes)
    except (ValueError, TypeError, nacl.exceptions.CryptoError) as error:
        raise InvalidSigningKey(f"key {preview(key_id)}: {error}") from None


# --- signed JSON ------------------------------------------------------------


def signed_bytes(obj: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the object without `signatures` and `unsigned`."""
    return encode_canonical_json(
        {key: value for key, value in obj.items() if key not in ("signatures", "unsigned")}
    )


def sign_json(obj: Mapping[str, Any], server_name: str, key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with this server's signature added to `signatures`.

    Other servers' and keys' signatures are kept; `unsigned` stays in the
    object but out of the signed bytes (spec: Signing Details). The input is
    not modified.
    """
    return add_signature(obj, server_name, key, signed_bytes(obj))


def add_signature(
    obj: Mapping[str, Any], server_name: str, key: SigningKey, data: bytes
) -> dict[str, Any]:
    """`sign_json` for a caller that already has `signed_bytes(obj)` as `data`."""
    signature = key.sign(data).signature
    signed = dict(obj)
    signatures = {name: dict(by_key) for name, by_key in dict(obj.get("signatures") or {}).items()}
    signatures.setdefault(server_name, {})[key_id_of(key)] = encode_base64(signature)
    signed["signatures"] = signatures
    return signed


def signed_key_ids(obj: Mapping[str, Any], server_name: str) -> list[str]:
    """The ed25519 key ids under which `server_name` signed `obj` (others are ignored).

    Step 2 of "Checking for a Signature": algorithms we do not understand are
    dropped. Malformed `signatures` yield no key ids.
    """
    signatures = obj.get("signatures")
    by_key = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    if not isinstance(by_key, Mapping):
        return []
    return sorted(
        key_id
        for key_id in by_key
        if isinstance(key_id, str) and key_id.startswith(NACL_ED25519 + ":")
    )


def verify_json(
    obj: Mapping[str, Any],
    server_name: str,
    key_id: str,
    verify_key: VerifyKey,
    data: bytes | None = None,
) -> None:
    """Check `server_name`'s signature under `key_id`; `SignatureError` says why not.

    Follows "Checking for a Signature": the entry must exist, decode as
    base64, and verify over the Canonical JSON of the object without
    `signatures` and `unsigned` — `data`, when the caller has encoded it
    already (`signed_bytes(obj)`; an event's id is hashed from the same bytes).
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("object has no 'signatures'")
    by_key = signatures.get(server_name)
    if not isinstance(by_key, Mapping):
        raise SignatureError(f"object is not signed by {preview(server_name)}")
    if key_id not in by_key:
        raise SignatureError(f"object has no signature by {preview(server_name)} {key_id}")
    try:
        signature = decode_base64(by_key[key_id])
    except ValueError:
        raise SignatureError(
            f"signature by {preview(server_name)} {key_id} is not base64"
        ) from None
    try:
        verify_key.verify(signed_bytes(obj) if data is None else data, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise SignatureError(
            f"signature by {preview(server_name)} {key_id} does not verify"
        ) from None


# --- X-Matrix request authentication ---------------------------------------


@dataclass(frozen=True, slots=True)
class XMatrixAuth:
    """The parameters of an `Authorization: X-Matrix ...` header.

    `destination` is None when an older server left it out (spec 1.3 added
    it; recipients should accept its absence).
    """

    origin: str
    destination: str | None
    key_id: str
    signature: str


def _request_json(
    method: str, uri: str, origin: str, destination: str, content: object | None
) -> dict[str, Any]:
    """The object a request signature covers (Request Authentication, step 1)."""
    request: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        request["content"] = content
    return request


_HEADER_VALUE_TEXT = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
"""What a quoted-string may carry (qdtext and quoted-pair): no CR, LF or other controls."""


def _quote(name: str, value: str) -> str:
    if not _HEADER_VALUE_TEXT.fullmatch(value):
        raise ValueError(f"X-Matrix {name} {preview(value)} cannot be put in a header")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def build_x_matrix_header(origin: str, destination: str, key_id: str, signature: str) -> str:
    """The `Authorization` header value, in the form older servers parse best.

    One space after the scheme, lower-case names, quoted values, no spaces
    around commas (spec: "For compatibility with older servers, the sender
    should ...").
    """
    params = [
        _quote("origin", origin),
        _quote("destination", destination),
        _quote("key", key_id),
        _quote("sig", signature),
    ]
    return "X-Matrix " + ",".join(params)


def sign_request(
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: object | None,
    key: SigningKey,
) -> str:
    """The full `Authorization` header value for an outgoing federation request.

    `uri` is the path and query exactly as sent (`/_matrix/...?...`);
    `content` is the JSON body, or None when the request has none.
    """
    signed = sign_json(_request_json(method, uri, origin, destination, content), origin, key)
    key_id = key_id_of(key)
    return build_x_matrix_header(origin, destination, key_id, signed["signatures"][origin][key_id])


_SCHEME = re.compile(r"x-matrix +", re.IGNORECASE)
_OWS_COMMA = re.compile(r"[ \t]*(?:,[ \t]*)*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNQUOTED_VALUE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:]+")
"""A token, plus `:` (spec: allow colons in unquoted values for older servers)."""
_QUOTED_VALUE = re.compile(
    r'"((?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*)"'
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_BWS_EQUALS = re.compile(r"[ \t]*=[ \t]*")
_MAX_HEADER_LENGTH = 8192


def _parse_params(text: str, position: int) -> dict[str, str]:
    """RFC 9110 `#auth-param` from `position`: names lower-cased, values unescaped."""
    params: dict[str, str] = {}
    position = _OWS_COMMA.match(text, position).end()
    while position < len(text):
        name_match = _TOKEN.match(text, position)
        equals = name_match and _BWS_EQUALS.match(text, name_match.end())
        if not name_match or not equals:
            raise InvalidAuthorizationHeader(f"X-Matrix: expected name=value at {position}")
        name = name_match.group().lower()
        position = equals.end()
        quoted = _QUOTED_VALUE.match(text, position)
        if quoted:
            value = _QUOTED_PAIR.sub(lambda pair: pair.group(1), quoted.group(1))
            position = quoted.end()
        else:
            unquoted = _UNQUOTED_VALUE.match(text, position)
            if not unquoted:
                raise InvalidAuthorizationHeader(f"X-Matrix: bad value for {preview(name)}")
            value = unquoted.group()
            position = unquoted.end()
        if name in params:
            raise InvalidAuthorizationHeader(f"X-Matrix: {preview(name)} is given twice")
        params[name] = value
        separator = _OWS_COMMA.match(text, position)
        if separator.end() < len(text) and "," not in separator.group():
            raise InvalidAuthorizationHeader(f"X-Matrix: expected ',' at {separator.end()}")
        position = separator.end()
    return params


def _server_name_param(params: Mapping[str, str], name: str) -> str:
    try:
        parse_server_name(params[name])
    except InvalidIdentifier as error:
        raise InvalidAuthorizationHeader(f"X-Matrix {name}: {error}") from None
    return params[name]


def parse_x_matrix_header(value: object) -> XMatrixAuth:
    """Parse an `Authorization` header value; `InvalidAuthorizationHeader` if it is not one.

    Follows the spec's rules: case-insensitive scheme and names, any order,
    quoted (with backslash escapes) or unquoted values (colons allowed),
    spaces and tabs around commas, unknown names ignored. `origin`, `key` and
    `sig` are required; `origin` and `destination` must be server names. A
    name given twice is refused rather than guessed at.
    """
    if not isinstance(value, str) or len(value) > _MAX_HEADER_LENGTH:
        raise InvalidAuthorizationHeader(f"Authorization header is {preview(value)}")
    scheme = _SCHEME.match(value)
    if not scheme:
        raise InvalidAuthorizationHeader("Authorization header is not 'X-Matrix <params>'")
    params = _parse_params(value, scheme.end())
    missing = [name for name in ("origin", "key", "sig") if name not in params]
    if missing:
        raise InvalidAuthorizationHeader(f"X-Matrix header lacks {', '.join(missing)}")
    return XMatrixAuth(
        origin=_server_name_param(params, "origin"),
        destination=_server_name_param(params, "destination") if "destination" in params else None,
        key_id=params["key"],
        signature=params["sig"],
    )


def verify_request(
    auth: XMatrixAuth,
    method: str,
    uri: str,
    server_name: str,
    content: object | None,
    verify_key: VerifyKey,
) -> None:
    """Check an incoming request's signature; `SignatureError` if it is not authentic.

    `server_name` is this server's name: a header naming another destination
    is refused (spec: 401), and it is the `destination` in the signed JSON.
    `verify_key` is `auth.origin`'s key `auth.key_id`, which the caller looked up.
    """
    if auth.destination is not None and auth.destination != server_name:
        raise SignatureError(
            f"request is addressed to {preview(auth.destination)}, not {preview(server_name)}"
        )
    request = _request_json(method, uri, auth.origin, server_name, content)
    request["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    verify_json(request, auth.origin, auth.key_id, verify_key)
