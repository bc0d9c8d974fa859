"""What E2EE clients upload, made with real ed25519 keys: device, one-time, cross-signing keys.

Spec: `content/client-server-api/modules/end_to_end_encryption.md` ("Key
algorithms", "Device keys", "Cross-signing") and `content/appendices.md`
§ Signing JSON. The tests sign exactly as clients do, so the server's
signature checks see real signatures and real forgeries.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import trio
from nacl.signing import SigningKey

from matrix_conduit.core.canonical_json import encode_canonical_json
from matrix_conduit.core.e2e_keys import signed_part
from matrix_conduit.core.signing import encode_base64
from tests.support.matrix import AnyServer, User, ok
from tests.support.shared_server import SharedServer

OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
SIGNED_CURVE25519 = "signed_curve25519"

_key_numbers = itertools.count(1)


def public_key(signing_key: SigningKey) -> str:
    return encode_base64(bytes(signing_key.verify_key))


def sign(obj: dict[str, Any], user_id: str, key_id: str, signing_key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with `user_id`'s signature under `key_id` added."""
    signature = signing_key.sign(encode_canonical_json(signed_part(obj))).signature
    signed = copy.deepcopy(obj)
    signed.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = encode_base64(signature)
    return signed


def a_curve25519_key() -> str:
    """Stands in for a Curve25519 public key: 32 random bytes, the server never uses it."""
    return public_key(SigningKey.generate())


@dataclass
class DeviceIdentity:
    """A device's Ed25519 identity key, and the keys it signs."""

    user_id: str
    device_id: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    curve25519_key: str = field(default_factory=a_curve25519_key)

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.device_id}"

    def device_keys(self) -> dict[str, Any]:
        unsigned = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {
                f"curve25519:{self.device_id}": self.curve25519_key,
                self.key_id: public_key(self.signing_key),
            },
        }
        return self.sign(unsigned)

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign(obj, self.user_id, self.key_id, self.signing_key)

    def one_time_keys(self, count: int, *, fallback: bool = False) -> dict[str, Any]:
        """`count` signed Curve25519 keys named `signed_curve25519:<unique id>`."""
        keys = {}
        for _ in range(count):
            key: dict[str, Any] = {"key": a_curve25519_key()}
            if fallback:
                key["fallback"] = True
            keys[f"{SIGNED_CURVE25519}:K{next(_key_numbers)}"] = self.sign(key)
        return keys


def identity_of(user: User) -> DeviceIdentity:
    return DeviceIdentity(user.user_id, user.device_id)


@dataclass
class CrossSigningIdentity:
    """A user's three cross-signing key pairs."""

    user_id: str
    master: SigningKey = field(default_factory=SigningKey.generate)
    self_signing: SigningKey = field(default_factory=SigningKey.generate)
    user_signing: SigningKey = field(default_factory=SigningKey.generate)

    @staticmethod
    def key_id(signing_key: SigningKey) -> str:
        return f"ed25519:{public_key(signing_key)}"

    def public_key_object(self, signing_key: SigningKey, usage: str) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {self.key_id(signing_key): public_key(signing_key)},
        }

    def signed_by_master(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign(obj, self.user_id, self.key_id(self.master), self.master)

    def upload_body(self) -> dict[str, Any]:
        """All three keys, the self-signing and user-signing keys signed by the master key."""
        return {
            "master_key": self.public_key_object(self.master, "master"),
            "self_signing_key": self.signed_by_master(
                self.public_key_object(self.self_signing, "self_signing")
            ),
            "user_signing_key": self.signed_by_master(
                self.public_key_object(self.user_signing, "user_signing")
            ),
        }


async def upload_device_keys(user: User, **extra: Any) -> DeviceIdentity:
    """Upload fresh device keys for the user's device (plus any `extra` body fields)."""
    identity = identity_of(user)
    ok(await user.post("/keys/upload", {"device_keys": identity.device_keys(), **extra}))
    return identity


async def query_keys(user: User, *users: User | str) -> dict[str, Any]:
    """`/keys/query` for all devices of `users`."""
    wanted = {other if isinstance(other, str) else other.user_id: [] for other in users}
    return ok(await user.post("/keys/query", {"device_keys": wanted}))


async def sync(user: User, since: str | None = None) -> dict[str, Any]:
    """`GET /sync` for the user's device (incremental from `since` when given)."""
    return ok(await user.get("/sync", since=since) if since else await user.get("/sync"))


async def wake_signal(server: AnyServer, user: User) -> trio.Event:
    """What a long-polling `/sync` of `user` waits on: set at the user's next news.

    Taken before an action, `is_set()` afterwards tells whether the action
    woke the user's syncs, without waiting on a clock.
    """

    async def take() -> trio.Event:
        return server.services.notifier.listener(user.user_id)

    return await server.call(take) if isinstance(server, SharedServer) else await take()
