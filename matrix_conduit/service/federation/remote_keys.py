"""`/keys/query` and `/keys/claim` across servers: ours answered here, others' by their servers.

Spec: `content/client-server-api/modules/end_to_end_encryption.md` ("Key
management API"), `data/api/client-server/keys.yaml` (`timeout`, 10 s
recommended; `failures`: "If any remote homeservers could not be reached,
they are recorded here"), and `content/server-server-api.md`, "End-to-End
Encryption" (`POST /_matrix/federation/v1/user/keys/query` and
`/user/keys/claim`, "designed to be able to proxy much of the client's
request through to federation").

A client's request is split by server. Users of this server are answered by
`Keys`. A remote user whose device list we track (`RemoteDeviceLists.cached`:
they share a room with one of our users and the list is whole and current)
is answered from the cache; the others are asked of their servers, one
request per server, all at once, each bounded by the request's `timeout`. A
server that does not answer in time, is backed off, or refuses is named in
`failures` (`{"status", "message"}`, as Synapse reports it); the rest of the
answer stands. What a server answers is checked before it is passed on:
only the users and devices asked for, of that server, device keys
self-signed by their device (bad ones dropped and logged once), cross-signing
keys of the right user and usage; a full answer for a tracked user fills the
cache.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import trio

from ...core.e2e_keys import KeyObject, split_key_name, visible_signatures
from ...core.errors import ProtocolError
from ..globals import Globals
from ..keys import Keys
from .client import FederationClient
from .errors import (
    DestinationForbidden,
    FederationDisabled,
    FederationError,
    NotReadyForRetry,
    RemoteError,
)
from .outbox import server_of
from .remote_devices import (
    CROSS_SIGNING_FIELDS,
    RemoteDeviceLists,
    checked_cross_signing_key,
    unsigned_of,
    verified_device_keys,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
"""keys.yaml: "10 seconds is the recommended default"."""
MAX_TIMEOUT_SECONDS = 60.0
"""However long a client offers to wait, a remote server gets no more than this."""
MAX_ANSWER_BYTES = 10 * 1024 * 1024
"""A user with hundreds of devices answers in well under a megabyte."""

QUERY_PATH = "/_matrix/federation/v1/user/keys/query"
CLAIM_PATH = "/_matrix/federation/v1/user/keys/claim"

_RESPONSE_FIELDS = {"master_key": "master_keys", "self_signing_key": "self_signing_keys"}
"""Cross-signing fields of a device list record → their `/keys/query` response fields."""


class RemoteAnswerError(FederationError):
    """The server answered, but not with what the endpoint returns."""


def failure(error: FederationError | None) -> dict[str, Any]:
    """A `failures` entry: why the server gave no answer (None: it ran out of time)."""
    if error is None:
        return {"status": 503, "message": "The server did not answer in time."}
    if isinstance(error, RemoteError):
        return {"status": error.status, "message": f"{error.errcode}: {error.error}"}
    if isinstance(error, (FederationDisabled, DestinationForbidden)):
        return {"status": 403, "message": str(error)}
    if isinstance(error, NotReadyForRetry):
        return {"status": 503, "message": "Not ready for retry: the server failed recently."}
    return {"status": 503, "message": str(error)}


def _by_server(wanted: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for user_id, value in wanted.items():
        grouped.setdefault(server_of(user_id), {})[user_id] = value
    return grouped


class RemoteKeys:
    def __init__(
        self,
        globals_: Globals,
        keys: Keys,
        client: FederationClient,
        device_lists: RemoteDeviceLists,
    ) -> None:
        self._globals = globals_
        self._keys = keys
        self._client = client
        self._device_lists = device_lists

    # ---- /keys/query

    async def query(
        self, viewer: str, wanted: Mapping[str, Sequence[str]], timeout_seconds: float
    ) -> dict[str, Any]:
        """The client's `/keys/query` answer: ours from `Keys`, the others' cached or asked for."""
        local = {u: d for u, d in wanted.items() if self._globals.is_ours(server_of(u))}
        response = self._keys.query(viewer, local)
        to_ask: dict[str, list[str]] = {}
        for user_id, device_ids in wanted.items():
            if user_id in local:
                continue
            record = self._device_lists.cached(user_id)
            if record is None:
                to_ask[user_id] = list(device_ids)
            else:
                self._add_from_record(response, viewer, user_id, record, device_ids)
        await self._ask_each_server(
            _by_server(to_ask),
            functools.partial(self._query_server, response, viewer),
            response["failures"],
            timeout_seconds,
        )
        return response

    def _add_from_record(
        self,
        response: dict[str, Any],
        viewer: str,
        user_id: str,
        record: Mapping[str, Any],
        device_ids: Sequence[str],
    ) -> None:
        devices: dict[str, KeyObject] = {}
        for device_id, device in record["devices"].items():
            if "keys" not in device or (device_ids and device_id not in device_ids):
                continue
            devices[device_id] = _shown(device["keys"], device, user_id, viewer)
        response["device_keys"][user_id] = devices
        for field, response_field in _RESPONSE_FIELDS.items():
            if field in record:
                key = visible_signatures(record[field], user_id, viewer)
                response[response_field][user_id] = key

    async def _query_server(
        self,
        response: dict[str, Any],
        viewer: str,
        server: str,
        users: dict[str, list[str]],
        timeout: float,
    ) -> None:
        before = {user_id: self._device_lists.device_list(user_id) for user_id in users}
        answer = await self._client.request(
            server,
            "POST",
            QUERY_PATH,
            body={"device_keys": users},
            timeout=timeout,
            max_bytes=MAX_ANSWER_BYTES,
        )
        if not isinstance(answer, dict):
            raise RemoteAnswerError(server, "the answer is not an object")
        answered = answer.get("device_keys")
        answered = answered if isinstance(answered, dict) else {}
        for user_id, device_ids in users.items():
            devices = self._checked_devices(user_id, answered.get(user_id), device_ids)
            if devices is None:
                continue  # unknown to its server: left out, as the spec says
            cross_signing = self._checked_cross_signing(answer, user_id)
            response["device_keys"][user_id] = {
                device_id: _shown(keys, unsigned_of(keys), user_id, viewer)
                for device_id, keys in devices.items()
            }
            for field, key in cross_signing.items():
                response[_RESPONSE_FIELDS[field]][user_id] = visible_signatures(
                    key, user_id, viewer
                )
            if not device_ids:
                self._device_lists.fetched(user_id, before[user_id], devices, cross_signing)

    def _checked_devices(
        self, user_id: str, answered: object, device_ids: Sequence[str]
    ) -> dict[str, KeyObject] | None:
        if not isinstance(answered, dict):
            return None
        devices = {}
        for device_id, keys in answered.items():
            if device_ids and device_id not in device_ids:
                continue
            checked = verified_device_keys(keys, user_id, device_id)
            if checked is None:
                self._device_lists.log_bad_keys(user_id, device_id, keys)
                continue
            devices[device_id] = checked
        return devices

    def _checked_cross_signing(
        self, answer: Mapping[str, Any], user_id: str
    ) -> dict[str, KeyObject]:
        keys = {}
        for usage, field in CROSS_SIGNING_FIELDS:
            by_user = answer.get(_RESPONSE_FIELDS[field])
            if not isinstance(by_user, dict) or user_id not in by_user:
                continue
            key = checked_cross_signing_key(by_user[user_id], user_id, usage)
            if key is None:
                log.info("dropping the %s key of %s its server sent: not one", usage, user_id)
            else:
                keys[field] = key
        return keys

    # ---- /keys/claim

    async def claim(
        self, wanted: Mapping[str, Mapping[str, str]], timeout_seconds: float
    ) -> dict[str, Any]:
        """The client's `/keys/claim` answer: ours from `Keys`, the others' from their servers."""
        local = {u: d for u, d in wanted.items() if self._globals.is_ours(server_of(u))}
        response = self._keys.claim(local)
        remote = {u: d for u, d in wanted.items() if u not in local}
        await self._ask_each_server(
            _by_server(remote),
            functools.partial(self._claim_from_server, response),
            response["failures"],
            timeout_seconds,
        )
        return response

    async def _claim_from_server(
        self,
        response: dict[str, Any],
        server: str,
        users: dict[str, dict[str, str]],
        timeout: float,
    ) -> None:
        answer = await self._client.request(
            server,
            "POST",
            CLAIM_PATH,
            body={"one_time_keys": users},
            timeout=timeout,
            max_bytes=MAX_ANSWER_BYTES,
        )
        claimed = answer.get("one_time_keys") if isinstance(answer, dict) else None
        if not isinstance(claimed, dict):
            raise RemoteAnswerError(server, "the answer has no `one_time_keys` object")
        for user_id, algorithms in users.items():
            by_device = claimed.get(user_id)
            if not isinstance(by_device, dict):
                continue
            for device_id, algorithm in algorithms.items():
                key = _claimed_key(by_device.get(device_id), algorithm)
                if key is not None:
                    response["one_time_keys"].setdefault(user_id, {})[device_id] = key

    # ---- the fan-out

    async def _ask_each_server(
        self,
        by_server: dict[str, dict[str, Any]],
        ask: Callable[[str, dict[str, Any], float], Awaitable[None]],
        failures: dict[str, Any],
        timeout_seconds: float,
    ) -> None:
        """Run `ask(server, users, timeout)` for every server at once; what fails or is late
        goes to `failures`. Returns within `timeout_seconds` (and a little bookkeeping)."""
        if not by_server:
            return
        timeout = min(max(timeout_seconds, 0.0), MAX_TIMEOUT_SECONDS)

        async def one(server: str, users: dict[str, Any]) -> None:
            with trio.move_on_after(timeout) as scope:
                try:
                    await ask(server, users, max(timeout, 0.001))
                except FederationError as error:
                    failures[server] = failure(error)
                    log.info("keys of %s: %s", ", ".join(users), error)
            if scope.cancelled_caught:
                failures[server] = failure(None)

        async with trio.open_nursery() as nursery:
            for server, users in by_server.items():
                nursery.start_soon(one, server, users)


def _shown(keys: KeyObject, device: Mapping[str, Any], user_id: str, viewer: str) -> KeyObject:
    """Device keys as `/keys/query` shows them, however we learnt them: the signatures the
    viewer may see, and `unsigned` with the device's display name if its server gave one."""
    shown = visible_signatures(keys, user_id, viewer)
    display_name = device.get("device_display_name")
    shown["unsigned"] = (
        {"device_display_name": display_name} if isinstance(display_name, str) else {}
    )
    return shown


def _claimed_key(by_key: object, algorithm: str) -> dict[str, object] | None:
    """The one `<algorithm>:<key id>` → key of a claim answer for a device, if well formed."""
    if not isinstance(by_key, dict):
        return None
    for name, key in by_key.items():
        try:
            key_algorithm, _ = split_key_name(name)
        except ProtocolError:
            continue
        if key_algorithm == algorithm and (
            isinstance(key, str) or (isinstance(key, dict) and isinstance(key.get("key"), str))
        ):
            return {name: key}
    return None
