"""Password hashing with argon2id (argon2-cffi), off the event loop.

Spec: the spec leaves password storage to the server; the rule here is that a
password is never stored or logged in clear. The hash is the PHC string
argon2-cffi produces (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), so it
carries its own parameters and old hashes keep verifying after the
parameters change (and are upgraded at the next successful login).

Parameters: OWASP's argon2id recommendation for constrained hosts, 19 MiB of
memory, 2 passes, 1 lane. On a Raspberry Pi 4 that is roughly 0.1-0.2 s of one
core per hash; 64 MiB (argon2-cffi's default) would cost four times the memory
for every concurrent login on a 1-2 GiB board. Hashing runs in a worker
thread so it never blocks the event loop, and at most `MAX_CONCURRENT_HASHES`
run at once so a burst of logins cannot exhaust the memory of a small host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import argon2

MAX_CONCURRENT_HASHES = 2


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_cost_kib: int = 19 * 1024
    parallelism: int = 1


RASPBERRY_PI_PARAMETERS = Argon2Parameters()


class PasswordHashing:
    """Hash and verify passwords; `parameters` only apply to new hashes."""

    def __init__(self, parameters: Argon2Parameters = RASPBERRY_PI_PARAMETERS) -> None:
        self._parameters = parameters
        self._password_hasher: argon2.PasswordHasher | None = None
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
        self._decoy_hash: str | None = None

    @property
    def _hasher(self) -> argon2.PasswordHasher:
        """argon2, imported at the first password (not at startup: idle memory)."""
        if self._password_hasher is None:
            import argon2

            self._password_hasher = argon2.PasswordHasher(
                time_cost=self._parameters.time_cost,
                memory_cost=self._parameters.memory_cost_kib,
                parallelism=self._parameters.parallelism,
                type=argon2.Type.ID,
            )
        return self._password_hasher

    def hash_blocking(self, password: str) -> str:
        """The hash, computed on this thread (startup and offline commands only)."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Whether `password` matches; an empty `stored_hash` (no password) never does."""
        return await trio.to_thread.run_sync(
            self._verify_blocking, stored_hash, password, limiter=self._limiter
        )

    def _verify_blocking(self, stored_hash: str, password: str) -> bool:
        import argon2

        try:
            matches = self._hasher.verify(stored_hash or self._decoy(), password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        return matches and bool(stored_hash)

    def _decoy(self) -> str:
        """A hash to verify against when an account has no password.

        So that a login for an unknown user takes as long as one with a wrong
        password, and does not tell which names exist. Made at first need,
        not at startup.
        """
        if self._decoy_hash is None:
            self._decoy_hash = self._hasher.hash("decoy password")
        return self._decoy_hash

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a verified hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored_hash)
