"""Calls to an identity server a client names: lookup, store-invite, bind, unbind.

Spec: `content/identity-service-api.md` and `data/api/identity/` (v2 only:
`/hash_details` + `/lookup` with the `sha256` or `none` algorithm,
`/store-invite`, `/3pid/bind`, `/3pid/unbind`), reached as
`https://<id_server>` as `content/client-server-api/_index.md` says of
`id_server` ("the hostname plus optional port, without the protocol").

The identity server is chosen by the client, so every request goes through
`GuardedHttp` with the `federation_ip_range_*` lists (the same protection as
for the servers other users name), and its answers are bounded (`MAX_BYTES`,
`TIMEOUT_SECONDS`). A user's own requests carry the client's
`id_access_token`; `unbind`, which the homeserver asks on its own
authority, is signed with the server's key (`Authorization: X-Matrix`, as
the identity service API's "3pid/unbind" allows and Synapse does).

Errors for the client: 400 `M_SERVER_NOT_TRUSTED` for an identity server at
a denied address (the spec's code for "a third-party server this server does
not trust"), the identity server's own errcode for a request it refused
(with 403 for its 401/403, 400 otherwise), 502 `M_UNKNOWN` when it cannot
be reached or answers nonsense.
"""

from __future__ import annotations

import hashlib
import json
from base64 import urlsafe_b64encode
from typing import Any
from urllib.parse import quote

from ..core.canonical_json import encode_canonical_json
from ..core.ids import is_valid_server_name
from ..core.signing import build_x_matrix_header, key_id_of, sign_json
from ..errors import MatrixError, invalid_param
from .globals import Globals
from .guarded_http import FetchError, FetchForbidden, GuardedHttp

MAX_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 30.0
MEDIUMS = ("email", "msisdn")
_TOKEN_ERRCODES = ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN")
"""Passed to a client as they are, these would read as *its* session ending (a logout)."""


def check_id_server(id_server: str) -> None:
    """400 `M_INVALID_PARAM` unless `id_server` is a host name or address with an optional port."""
    if not is_valid_server_name(id_server):
        raise invalid_param(f"id_server {id_server!r} is not a host name with an optional port.")


def check_medium(medium: str) -> None:
    if medium not in MEDIUMS:
        raise MatrixError(
            400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", f"Unknown medium {medium!r} (email, msisdn)."
        )


class IdentityServers:
    def __init__(self, globals_: Globals, fetcher: GuardedHttp) -> None:
        self._globals = globals_
        self._fetcher = fetcher

    async def lookup(
        self, id_server: str, access_token: str, medium: str, address: str
    ) -> str | None:
        """The Matrix user id bound to `medium`/`address` on `id_server`, if any (v2 lookup)."""
        details = await self._request(id_server, "GET", "/hash_details", access_token=access_token)
        algorithms = details.get("algorithms")
        pepper = details.get("lookup_pepper")
        if not isinstance(algorithms, list) or not isinstance(pepper, str):
            raise _bad_answer(id_server, "/hash_details has no algorithms and lookup_pepper")
        if "sha256" in algorithms:
            digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
            algorithm, hashed = "sha256", urlsafe_b64encode(digest).decode().rstrip("=")
        elif "none" in algorithms:
            algorithm, hashed = "none", f"{address} {medium}"
        else:
            raise _bad_answer(id_server, f"no lookup algorithm this server knows in {algorithms}")
        body = {"addresses": [hashed], "algorithm": algorithm, "pepper": pepper}
        answer = await self._request(
            id_server, "POST", "/lookup", body=body, access_token=access_token
        )
        mappings = answer.get("mappings")
        mxid = mappings.get(hashed) if isinstance(mappings, dict) else None
        return mxid if isinstance(mxid, str) else None

    async def store_invite(
        self, id_server: str, access_token: str, invite: dict[str, Any]
    ) -> dict[str, Any]:
        """`/store-invite`: the token, display name and public keys of the pending invite."""
        answer = await self._request(
            id_server, "POST", "/store-invite", body=invite, access_token=access_token
        )
        token = answer.get("token")
        public_keys = answer.get("public_keys")
        display_name = answer.get("display_name")
        if not isinstance(token, str) or not token or not isinstance(display_name, str):
            raise _bad_answer(id_server, "/store-invite gave no token or display_name")
        if not isinstance(public_keys, list) or not all(
            isinstance(key, dict)
            and isinstance(key.get("public_key"), str)
            and isinstance(key.get("key_validity_url"), str)
            for key in public_keys
        ):
            raise _bad_answer(id_server, "/store-invite gave malformed public_keys")
        if not public_keys and not isinstance(answer.get("public_key"), str):
            raise _bad_answer(id_server, "/store-invite gave no public key")
        return answer

    async def bind(
        self, id_server: str, access_token: str, sid: str, client_secret: str, mxid: str
    ) -> dict[str, Any]:
        """`/3pid/bind` of a validated session to `mxid`: the signed association."""
        body = {"sid": sid, "client_secret": client_secret, "mxid": mxid}
        answer = await self._request(
            id_server, "POST", "/3pid/bind", body=body, access_token=access_token
        )
        if not isinstance(answer.get("medium"), str) or not isinstance(answer.get("address"), str):
            raise _bad_answer(id_server, "/3pid/bind gave no medium and address")
        return answer

    async def unbind(self, id_server: str, mxid: str, medium: str, address: str) -> None:
        """`/3pid/unbind`, signed by this server (the user holds no session for it)."""
        body = {"mxid": mxid, "threepid": {"medium": medium, "address": address}}
        await self._request(id_server, "POST", "/3pid/unbind", body=body, sign=True)

    def _x_matrix(self, id_server: str, method: str, uri: str, body: Any) -> str:
        """`Authorization: X-Matrix` for an identity server: as for a homeserver, but the
        signed object names it `destination_is` (what Sydent checks and Synapse sends)."""
        origin, key = self._globals.server_name, self._globals.signing_key
        request = {"method": method, "uri": uri, "origin": origin, "destination_is": id_server}
        if body is not None:
            request["content"] = body
        key_id = key_id_of(key)
        signature = sign_json(request, origin, key)["signatures"][origin][key_id]
        return build_x_matrix_header(origin, id_server, key_id, signature)

    async def key_is_valid(self, key_validity_url: str, public_key: str) -> bool:
        """Does the identity server still stand by `public_key` (its `key_validity_url`)?

        The URL comes from a room's `m.room.third_party_invite`, so it is fetched
        like any URL a user names; a failure or a malformed answer is "no".
        """
        separator = "&" if "?" in key_validity_url else "?"
        url = f"{key_validity_url}{separator}public_key={quote(public_key, safe='')}"
        try:
            answer = await self._fetcher.fetch(
                "GET", url, timeout=TIMEOUT_SECONDS, max_bytes=MAX_BYTES, follow_redirects=False
            )
            parsed = json.loads(answer.body) if answer.status == 200 else None
        except (FetchError, ValueError, UnicodeDecodeError):
            return False
        return isinstance(parsed, dict) and parsed.get("valid") is True

    async def _request(
        self,
        id_server: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        access_token: str | None = None,
        sign: bool = False,
    ) -> dict[str, Any]:
        check_id_server(id_server)
        uri = f"/_matrix/identity/v2{path}"
        headers = {"Accept": "application/json"}
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        if sign:
            headers["Authorization"] = self._x_matrix(id_server, method, uri, body)
        content = None
        if body is not None:
            content = encode_canonical_json(body)
            headers["Content-Type"] = "application/json"
        url = f"https://{id_server}{quote(uri)}"
        try:
            answer = await self._fetcher.fetch(
                method,
                url,
                headers=headers,
                content=content,
                timeout=TIMEOUT_SECONDS,
                max_bytes=MAX_BYTES,
                follow_redirects=False,
            )
        except FetchForbidden as error:
            raise MatrixError(
                400, "M_SERVER_NOT_TRUSTED", f"Identity server {id_server}: {error}."
            ) from None
        except FetchError as error:
            raise MatrixError(
                502, "M_UNKNOWN", f"Identity server {id_server} unreachable: {error}."
            ) from None
        try:
            parsed = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if 400 <= answer.status < 500:
            raise _refused(id_server, path, answer.status, parsed)
        if answer.status != 200 or not isinstance(parsed, dict):
            raise _bad_answer(id_server, f"{path} answered HTTP {answer.status}")
        return parsed


def _refused(id_server: str, path: str, status: int, parsed: Any) -> MatrixError:
    errcode = parsed.get("errcode") if isinstance(parsed, dict) else None
    message = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(errcode, str) or not errcode.startswith("M_"):
        errcode = "M_UNKNOWN"
    if errcode in _TOKEN_ERRCODES:
        errcode = "M_UNAUTHORIZED"
    detail = message if isinstance(message, str) else f"HTTP {status}"
    return MatrixError(
        403 if status in (401, 403) else 400,
        errcode,
        f"Identity server {id_server} refused {path}: {detail[:500]}",
    )


def _bad_answer(id_server: str, why: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", f"Identity server {id_server}: {why}.")
