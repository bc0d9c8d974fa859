"""Asking appservices: unknown users and aliases, third-party lookups, the ping.

Spec: `content/application-service-api.md`, "Querying"
(`data/api/application-service/query_user.yaml`, `query_room.yaml`: the
appservice may create the user or alias while the homeserver waits),
"Third-party networks" (`protocols.yaml`, which the client-server
`/thirdparty/*` endpoints forward to), and "Pinging" (`ping.yaml`, with the
client-server `appservice_ping.yaml`: 502 `M_BAD_STATUS` with the status and
body, 502 `M_CONNECTION_FAILED`, 504 `M_CONNECTION_TIMEOUT`, 400
`M_URL_NOT_SET`). Every request carries `Authorization: Bearer <hs_token>`
and goes through `service/outgoing_http.py`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import httpx
import trio

from ..errors import MatrixError, not_found
from .appservices import AppService, AppServices
from .outgoing_http import OutgoingHttp, ResponseTooLarge
from .rooms.alias import Aliases

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 1048576


class Unreachable(Exception):
    """The appservice could not be asked (connection, timeout, size)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class AppServiceQueries:
    def __init__(
        self,
        appservices: AppServices,
        http: OutgoingHttp,
        user_exists: Callable[[str], bool],
        aliases: Aliases,
    ) -> None:
        self._appservices = appservices
        self._http = http
        self._user_exists = user_exists
        self._aliases = aliases

    async def _request(
        self,
        appservice: AppService,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float = QUERY_TIMEOUT_SECONDS,
    ) -> Answer:
        assert appservice.url is not None
        url = appservice.url + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {"Authorization": f"Bearer {appservice.hs_token}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        try:
            answer = await self._http.fetch(
                method,
                url,
                proxy=self._http.proxy_for(urlparse(url).hostname or ""),
                headers=headers,
                content=content,
                timeout=timeout,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except trio.TooSlowError:
            raise
        except (httpx.HTTPError, ResponseTooLarge, OSError) as error:
            raise Unreachable(str(error)) from error
        return Answer(answer.status, answer.body)

    # ---- users and aliases

    async def user_exists(self, user_id: str) -> bool:
        """Whether `user_id` exists, asking the appservices whose namespace it is in."""
        if self._user_exists(user_id):
            return True
        for appservice in self._appservices.owning_user(user_id):
            if appservice.url is None or user_id == appservice.sender:
                continue
            path = f"/_matrix/app/v1/users/{quote(user_id, safe='')}"
            if await self._ask(appservice, path) and self._user_exists(user_id):
                return True
        return False

    async def resolve_alias(self, alias: str) -> str | None:
        """The room `alias` names, asking the appservices whose namespace it is in."""
        room_id = self._aliases.resolve(alias)
        if room_id is not None:
            return room_id
        for appservice in self._appservices.owning_alias(alias):
            if appservice.url is None:
                continue
            path = f"/_matrix/app/v1/rooms/{quote(alias, safe='')}"
            if await self._ask(appservice, path):
                room_id = self._aliases.resolve(alias)
                if room_id is not None:
                    return room_id
        return None

    async def _ask(self, appservice: AppService, path: str) -> bool:
        try:
            answer = await self._request(appservice, "GET", path)
        except (Unreachable, trio.TooSlowError) as error:
            log.info("appservice %s: %s unanswered: %s", appservice.id, path, error)
            return False
        return 200 <= answer.status < 300

    # ---- the ping

    async def ping(self, appservice: AppService, transaction_id: str | None) -> int:
        """Milliseconds the appservice took to answer `POST /_matrix/app/v1/ping`."""
        if appservice.url is None:
            raise MatrixError(400, "M_URL_NOT_SET", f"{appservice.id!r} has no url.")
        body = {} if transaction_id is None else {"transaction_id": transaction_id}
        started = time.monotonic()
        try:
            answer = await self._request(appservice, "POST", "/_matrix/app/v1/ping", body=body)
        except trio.TooSlowError:
            raise MatrixError(
                504, "M_CONNECTION_TIMEOUT", "The appservice did not answer."
            ) from None
        except Unreachable as error:
            raise MatrixError(
                502, "M_CONNECTION_FAILED", f"Cannot reach the appservice: {error}"
            ) from None
        if not 200 <= answer.status < 300:
            raise MatrixError(
                502,
                "M_BAD_STATUS",
                f"The appservice answered {answer.status}.",
                status=answer.status,
                body=answer.body.decode("utf-8", "replace")[:4096],
            )
        return round((time.monotonic() - started) * 1000)

    # ---- third-party networks

    async def protocols(self) -> dict[str, Any]:
        """Every bridged protocol's description, with instances from all its appservices."""
        found: dict[str, Any] = {}
        for appservice in self._appservices.list():
            for protocol in appservice.protocols:
                description = await self._protocol_of(appservice, protocol)
                if description is None:
                    continue
                known = found.get(protocol)
                if known is None:
                    found[protocol] = description
                else:
                    known.setdefault("instances", []).extend(description.get("instances", []))
        return found

    async def protocol(self, protocol: str) -> dict[str, Any]:
        described = (await self.protocols()).get(protocol)
        if described is None:
            raise not_found(f"No third-party protocol {protocol!r} is bridged on this server.")
        return described

    async def _protocol_of(self, appservice: AppService, protocol: str) -> dict[str, Any] | None:
        if appservice.url is None:
            return None
        answer = await self._lookup_one(
            appservice, f"/_matrix/app/v1/thirdparty/protocol/{quote(protocol, safe='')}", {}
        )
        if not isinstance(answer, dict):
            return None
        for instance in answer.get("instances") or []:
            if isinstance(instance, dict):
                # Spec: the homeserver fills in instance_id; appservices name the network.
                instance.setdefault(
                    "instance_id", f"{appservice.id}|{instance.get('network_id', '')}"
                )
        return answer

    async def lookup(self, kind: str, protocol: str | None, query: Mapping[str, Any]) -> list:
        """`/thirdparty/{location,user}[/{protocol}]`: the appservices' answers, together."""
        if protocol is None:
            chosen = self._appservices.list()
            path = f"/_matrix/app/v1/thirdparty/{kind}"
        else:
            chosen = self._appservices.with_protocol(protocol)
            if not chosen:
                raise not_found(f"No third-party protocol {protocol!r} is bridged on this server.")
            path = f"/_matrix/app/v1/thirdparty/{kind}/{quote(protocol, safe='')}"
        results: list = []
        for appservice in chosen:
            if appservice.url is None:
                continue
            answer = await self._lookup_one(appservice, path, query)
            if isinstance(answer, list):
                results.extend(item for item in answer if isinstance(item, dict))
        return results

    async def _lookup_one(self, appservice: AppService, path: str, query: Mapping[str, Any]) -> Any:
        try:
            answer = await self._request(appservice, "GET", path, query=query)
        except (Unreachable, trio.TooSlowError) as error:
            log.info("appservice %s: %s unanswered: %s", appservice.id, path, error)
            return None
        return answer.json() if 200 <= answer.status < 300 else None
