"""Other servers' signing keys: fetched, checked, cached, and used to verify signatures.

Spec: `content/server-server-api.md` § Retrieving server keys: directly from
the origin (`GET /_matrix/key/v2/server`), else through the notaries of
`trusted_servers` (`POST /_matrix/key/v2/query`), whose own signature on the
answer is checked too (Conduit does not; see
`../shared/notes/federation-lessons.md`, "Keys").

What federation lessons taught, kept here:
- one fetch in flight per server (`_in_flight`): a burst of events from one
  server waits for one answer instead of sending a hundred requests;
- a server's keys are fetched at most once per `REFETCH_INTERVAL_MS` while
  its answers are fine, so an unknown key id cannot be used to make us
  hammer it; a failed fetch backs off from `FAILURE_MIN_MS`, doubling up to
  `FAILURE_MAX_MS` (negative caching);
- short timeouts (`FETCH_TIMEOUT_SECONDS`): a slow key server once cascaded
  into a federation-wide meltdown (Synapse #3807).
Keys are stored with the document they came in (`serverkeyid_key`), so the
notary (`Notary`) can hand out the origin's own signed document.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from ...core.errors import ProtocolError, SignatureError, preview
from ...core.server_keys import ServerKey, own_server_keys, parse_server_keys
from ...core.signing import (
    VerifyKey,
    decode_verify_key,
    signed_key_ids,
    verify_json,
    verify_key_base64,
)
from ...lru import LRUCache
from ...storage import Database
from ...storage.kv import join_key
from ..clock import Clock, now_ms
from ..globals import Globals
from .client import FederationClient
from .errors import FederationError

log = logging.getLogger(__name__)

TREES = ("serverkeyid_key",)

REFETCH_INTERVAL_MS = 60_000
FAILURE_MIN_MS = 30_000
FAILURE_MAX_MS = 3600_000
FETCH_TIMEOUT_SECONDS = 10.0
KEY_DOCUMENT_MAX_BYTES = 1024 * 1024
NOTARY_ANSWER_MAX_BYTES = 16 * 1024 * 1024
REMEMBERED_SERVERS = 10_000
DECODED_SERVERS = 1000
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
OWN_KEYS_VALIDITY_MS = 24 * 3600 * 1000
"""How long other servers may rely on our key document before fetching it again."""


@dataclass(slots=True)
class _FetchState:
    next_fetch_ms: int
    failures: int


class KeyRing:
    """`verify_signed_json` and `verify_keys_for`: what the rest of federation calls."""

    def __init__(
        self,
        db: Database,
        globals_: Globals,
        client: FederationClient,
        trusted_servers: Collection[str],
        clock: Clock = now_ms,
    ) -> None:
        self._db = db
        self._tree = db.tree("serverkeyid_key")
        self._globals = globals_
        self._client = client
        self._notaries = [name for name in trusted_servers if name != globals_.server_name]
        self._clock = clock
        self._in_flight: dict[str, trio.Event] = {}
        self._fetch_states: LRUCache[str, _FetchState] = LRUCache(REMEMBERED_SERVERS)
        """Bounded: the servers named in requests are chosen by whoever sends them."""
        self._memory: LRUCache[str, dict[str, tuple[ServerKey, dict[str, Any]]]] = LRUCache(
            DECODED_SERVERS
        )

    # --- our own keys ------------------------------------------------------

    def own_key_document(self) -> dict[str, Any]:
        """Our `/_matrix/key/v2/server` answer, signed now, good for a day."""
        return own_server_keys(
            self._globals.server_name,
            self._globals.signing_key,
            self._globals.old_verify_keys,
            self._clock() + OWN_KEYS_VALIDITY_MS,
        )

    def _own_keys(self) -> dict[str, ServerKey]:
        """Our keys as other servers see them, without signing a document for it."""
        name, current = self._globals.server_name, self._globals.signing_key
        keys = {
            key_id: ServerKey(
                name, key_id, decode_verify_key(key_id, entry["key"]), None, entry["expired_ts"]
            )
            for key_id, entry in self._globals.old_verify_keys.items()
        }
        keys[self._globals.signing_key_id] = ServerKey(
            name,
            self._globals.signing_key_id,
            current.verify_key,
            self._clock() + OWN_KEYS_VALIDITY_MS,
            None,
        )
        return keys

    # --- the cache ---------------------------------------------------------

    def _cached(self, server_name: str) -> dict[str, tuple[ServerKey, dict[str, Any]]]:
        """key id → (key, the document it came in) for everything stored about `server_name`.

        Every signature check asks, so the decoded form is kept in memory too.
        """
        remembered = self._memory.get(server_name)
        if remembered is not None:
            return remembered
        cached = {}
        for key, value in self._tree.iter_prefix(join_key(server_name, b"")):
            record = json.loads(value)
            key_id = key.rpartition(b"\xff")[2].decode()
            verify_key = decode_verify_key(key_id, record["key"])
            cached[key_id] = (
                ServerKey(
                    server_name,
                    key_id,
                    verify_key,
                    record["valid_until_ts"],
                    record["expired_ts"],
                ),
                record["document"],
            )
        self._memory.put(server_name, cached)
        return cached

    def cached_documents(self, server_name: str) -> list[dict[str, Any]]:
        """The distinct stored key documents of `server_name` (for the notary), newest first."""
        documents: dict[str, dict[str, Any]] = {}
        for _key, document in self._cached(server_name).values():
            documents.setdefault(json.dumps(document, sort_keys=True), document)
        return sorted(
            documents.values(), key=lambda document: document["valid_until_ts"], reverse=True
        )

    def _store(self, keys: list[ServerKey], document: Mapping[str, Any]) -> None:
        """Keep each key with its document, unless what is stored is good for longer.

        A current key counts as valid for at most `MAX_KEY_VALIDITY_MS` from
        now, whatever its `valid_until_ts` says (spec: room versions 5+, "the
        lesser of valid_until_ts and 7 days into the future"), so a stolen
        key cannot be published as good for years.
        """
        if not keys:
            return
        stored = self._cached(keys[0].server_name)
        longest = self._clock() + MAX_KEY_VALIDITY_MS
        capped = [
            dataclasses.replace(key, valid_until_ts=longest)
            if key.valid_until_ts is not None and key.valid_until_ts > longest
            else key
            for key in keys
        ]
        with self._db.batch() as batch:
            for key in capped:
                previous = stored.get(key.key_id)
                if previous is not None and previous[0].good_until > key.good_until:
                    continue
                record = {
                    "key": verify_key_base64(key.verify_key),
                    "valid_until_ts": key.valid_until_ts,
                    "expired_ts": key.expired_ts,
                    "document": document,
                }
                batch.put(
                    self._tree,
                    join_key(key.server_name, key.key_id),
                    json.dumps(record).encode(),
                )
        self._memory.discard(keys[0].server_name)

    # --- verification ------------------------------------------------------

    async def verify_keys_for(
        self, server_name: str, key_ids: Collection[str], at_ts: int
    ) -> dict[str, VerifyKey]:
        """`server_name`'s keys among `key_ids` that are good for a signature made at `at_ts`.

        Missing ones are fetched (directly, then through the notaries) unless
        this server was asked too recently or failed recently; what is still
        unknown is simply absent from the answer.
        """
        found = await self.keys_for_many({server_name: key_ids}, at_ts)
        return found.get(server_name, {})

    async def keys_for_many(
        self, wanted: Mapping[str, Collection[str]], at_ts: int
    ) -> dict[str, dict[str, VerifyKey]]:
        """`verify_keys_for` for several servers at once: one batch of fetches for all."""
        found: dict[str, dict[str, VerifyKey]] = {}
        missing: dict[str, set[str]] = {}
        for server_name, key_ids in wanted.items():
            good, absent = self._known(server_name, key_ids, at_ts)
            found[server_name] = good
            if absent:
                missing[server_name] = absent
        if missing:
            await self._fetch(missing, at_ts)
            for server_name in missing:
                found[server_name], _ = self._known(server_name, wanted[server_name], at_ts)
        return found

    async def refresh(self, wanted: Mapping[str, Collection[str]], at_ts: int) -> None:
        """Fetch the key documents of `wanted`'s servers again (single flight, rate-limited).

        For the notary, whose cached documents are too old or lack key ids.
        """
        await self._fetch({name: set(key_ids) for name, key_ids in wanted.items()}, at_ts)

    def _known(
        self, server_name: str, key_ids: Collection[str], at_ts: int
    ) -> tuple[dict[str, VerifyKey], set[str]]:
        if server_name == self._globals.server_name:
            own = self._own_keys()
            good = {k: own[k].verify_key for k in key_ids if k in own and own[k].valid_at(at_ts)}
            return good, set()
        cached = self._cached(server_name)
        good = {
            key_id: cached[key_id][0].verify_key
            for key_id in key_ids
            if key_id in cached and cached[key_id][0].valid_at(at_ts)
        }
        return good, set(key_ids) - set(good)

    async def verify_signed_json(
        self, obj: Mapping[str, Any], server_name: str, at_ts: int
    ) -> None:
        """Check `server_name`'s signature on `obj`, made at `at_ts`; `SignatureError` if not.

        At least one of its ed25519 signatures must be by a key good at
        `at_ts`, and every signature by such a key must verify.
        """
        key_ids = signed_key_ids(obj, server_name)
        if not key_ids:
            raise SignatureError(f"not signed by {preview(server_name)}")
        keys = await self.verify_keys_for(server_name, key_ids, at_ts)
        if not keys:
            raise SignatureError(
                f"no key of {preview(server_name)} among {', '.join(key_ids)} "
                f"is known and valid at {at_ts}"
            )
        for key_id, verify_key in keys.items():
            verify_json(obj, server_name, key_id, verify_key)

    # --- fetching ----------------------------------------------------------

    async def _fetch(
        self, missing: Mapping[str, set[str]], at_ts: int, *, direct_only: bool = False
    ) -> None:
        """Fetch what `missing` names: single flight per server, rate-limited, batched."""
        now = self._clock()
        mine: list[str] = []
        waits: list[trio.Event] = []
        for server_name in missing:
            if server_name in self._in_flight:
                waits.append(self._in_flight[server_name])
                continue
            state = self._fetch_states.get(server_name)
            if state is not None and state.next_fetch_ms > now:
                continue
            self._in_flight[server_name] = trio.Event()
            mine.append(server_name)
        try:
            if mine:
                await self._fetch_now({name: missing[name] for name in mine}, at_ts, direct_only)
        finally:
            for server_name in mine:
                self._in_flight.pop(server_name).set()
        for event in waits:
            await event.wait()

    async def _fetch_now(
        self, missing: Mapping[str, set[str]], at_ts: int, direct_only: bool
    ) -> None:
        unsatisfied: dict[str, set[str]] = {}

        async def direct(server_name: str) -> None:
            if not await self._fetch_direct(server_name, missing[server_name], at_ts):
                unsatisfied[server_name] = missing[server_name]

        async with trio.open_nursery() as nursery:
            for server_name in missing:
                nursery.start_soon(direct, server_name)
        for notary in [] if direct_only else self._notaries:
            if not unsatisfied:
                break
            await self._fetch_via_notary(notary, unsatisfied, at_ts)
            for server_name in list(unsatisfied):
                _, absent = self._known(server_name, unsatisfied[server_name], at_ts)
                if not absent:
                    del unsatisfied[server_name]
        now = self._clock()
        for server_name in missing:
            state = self._fetch_states.get(server_name)
            if server_name in unsatisfied:
                failures = state.failures + 1 if state else 1
                wait = min(FAILURE_MIN_MS << min(failures - 1, 16), FAILURE_MAX_MS)
                self._fetch_states.put(server_name, _FetchState(now + wait, failures))
            else:
                self._fetch_states.put(server_name, _FetchState(now + REFETCH_INTERVAL_MS, 0))

    async def _fetch_direct(self, server_name: str, key_ids: set[str], at_ts: int) -> bool:
        """Ask `server_name` itself; True if it answered with every key wanted."""
        try:
            document = await self._client.request(
                server_name,
                "GET",
                "/_matrix/key/v2/server",
                timeout=FETCH_TIMEOUT_SECONDS,
                max_bytes=KEY_DOCUMENT_MAX_BYTES,
                ignore_backoff=True,
            )
            keys = parse_server_keys(document, server_name)
        except (FederationError, ProtocolError) as error:
            log.info("fetching the keys of %s failed: %s", server_name, error)
            return False
        self._store(keys, document)
        _, absent = self._known(server_name, key_ids, at_ts)
        return not absent

    async def _fetch_via_notary(
        self, notary: str, wanted: Mapping[str, set[str]], at_ts: int
    ) -> None:
        """One `POST /_matrix/key/v2/query` to `notary` for everything still wanted."""
        body = {
            "server_keys": {
                server_name: {key_id: {"minimum_valid_until_ts": at_ts} for key_id in key_ids}
                for server_name, key_ids in wanted.items()
            }
        }
        try:
            answer = await self._client.request(
                notary,
                "POST",
                "/_matrix/key/v2/query",
                body=body,
                timeout=FETCH_TIMEOUT_SECONDS,
                max_bytes=NOTARY_ANSWER_MAX_BYTES,
                ignore_backoff=True,
            )
        except FederationError as error:
            log.info("notary %s did not answer for %s: %s", notary, ", ".join(wanted), error)
            return
        documents = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(documents, list):
            log.info("notary %s answered without a server_keys list", notary)
            return
        documents = [
            document
            for document in documents
            if isinstance(document, dict) and _hashable_name(document) in wanted
        ]
        notary_keys = await self._notary_keys(notary, documents)
        for document in documents:
            server_name = document["server_name"]
            try:
                keys = parse_server_keys(document, server_name)
                _check_notary_signature(notary, notary_keys, document)
            except ProtocolError as error:
                log.info("notary %s: bad key document for %s: %s", notary, server_name, error)
                continue
            self._store(keys, _without_signatures_of(document, notary))

    async def _notary_keys(
        self, notary: str, documents: list[dict[str, Any]]
    ) -> dict[str, VerifyKey]:
        """The notary's keys its answer is signed with, fetched from the notary itself.

        Only directly, never through another notary; and not while the
        notary's own keys are being fetched (that fetch may be the one
        asking), which would wait for itself.
        """
        key_ids = {key_id for document in documents for key_id in signed_key_ids(document, notary)}
        now = self._clock()
        good, absent = self._known(notary, key_ids, now)
        if absent and not good and notary not in self._in_flight:
            await self._fetch({notary: absent}, now, direct_only=True)
            good, _ = self._known(notary, key_ids, now)
        return good


def _hashable_name(document: Mapping[str, Any]) -> str | None:
    name = document.get("server_name")
    return name if isinstance(name, str) else None


def _check_notary_signature(
    notary: str, notary_keys: Mapping[str, VerifyKey], document: Mapping[str, Any]
) -> None:
    """The notary must have signed what it passes on, with a key we know is its own."""
    signed_with = [key_id for key_id in signed_key_ids(document, notary) if key_id in notary_keys]
    if not signed_with:
        raise SignatureError(f"the answer is not signed by a known key of {preview(notary)}")
    for key_id in signed_with:
        verify_json(document, notary, key_id, notary_keys[key_id])


def _without_signatures_of(document: Mapping[str, Any], notary: str) -> dict[str, Any]:
    """The origin's document as the origin signed it: the notary's signature is dropped."""
    signatures = {
        name: by_key for name, by_key in document.get("signatures", {}).items() if name != notary
    }
    return {**document, "signatures": signatures}
