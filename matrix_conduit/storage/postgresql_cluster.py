"""What server processes on one PostgreSQL database share beyond the trees.

Several processes may serve one database (issue #18). They share, through
PostgreSQL itself and nothing else:

- **The global counter**, as the sequence `conduit_counter`. A position is
  taken with a row in `conduit_positions_in_flight` (one statement: the
  `nextval` and the row), and the row is deleted ("settled") once what the
  position orders has been written. The **committed mark** is the highest
  position below which nothing is in flight: the sequence's last value, read
  first, capped below the smallest position other processes still have in
  flight, read second (a position handed out before the first read that is
  gone at the second has landed). `/sync` reads up to the mark and never
  past it, so a token never skips an event committed later with a smaller
  position. A process's own positions are never in flight at an `await`
  (`Globals.next_count`'s rule: take and write in one synchronous stretch),
  so its own rows do not hold its mark back. Rows of a process that died
  (its session is gone from `pg_stat_activity`) are cleared.
- **Messages between processes**: `NOTIFY conduit` with a JSON payload,
  sent in the same statement that settles positions, so a process hears of
  an event only once the event is below the sender's part of the mark.
  PostgreSQL delivers notifications in commit order, which makes a
  notification to oneself a barrier: once it arrives, every message
  committed before it has arrived too.
- **Locks**: session advisory locks on this process's own connection, taken
  with `pg_try_advisory_lock` (never the blocking form: the caller waits on
  the event loop) and gone with the session if the process dies: the room
  locks and the leases of the background senders.

The upgrade from one process is seamless: the sequence starts after the
counter the `global` tree holds (written there by the embedded backends and
by a single process before this existed).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

import psycopg

from .kv import DatabaseError
from .postgresql import PostgreSQLDatabase

CHANNEL = "conduit"
MAX_PAYLOAD_BYTES = 7900
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more."""

_SEQUENCE = "conduit_counter"
_IN_FLIGHT = "conduit_positions_in_flight"
_MARK_FUNCTION = f"""
CREATE OR REPLACE FUNCTION conduit_committed_mark(me integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last bigint;
    lowest bigint;
BEGIN
    -- The sequence first, the positions in flight second: each statement of a
    -- volatile function sees what was committed when it started.
    SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
        INTO last FROM {_SEQUENCE};
    SELECT min(position) INTO lowest FROM {_IN_FLIGHT} WHERE process <> me;
    RETURN CASE WHEN lowest IS NULL THEN last ELSE least(last, lowest - 1) END;
END
$$"""
"""The committed mark in one round trip (see the module's docstring)."""


def lock_id(kind: int, name: str) -> tuple[int, int]:
    """The two-int advisory lock key of `name` in the namespace `kind`.

    A CRC32 of the name: two names sharing a key only serialise each other
    more than needed, never less."""
    return kind, zlib.crc32(name.encode()) - 2**31


class ClusterLink:
    """This process's ties to the other processes of one PostgreSQL database."""

    def __init__(self, database: PostgreSQLDatabase, stored_counter: int) -> None:
        self._database = database
        self._session = database.connect()
        """Holds this process's advisory locks; its backend pid names the process."""
        self.process = self._session.info.backend_pid
        self._listener: psycopg.Connection | None = None
        self._create(stored_counter)
        database.release_on_close.append(self.close)  # before the pool and the lock go

    def _create(self, stored_counter: int) -> None:
        def create(connection: psycopg.Connection) -> None:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (0x636F756E74,))
                connection.execute(
                    f"CREATE SEQUENCE IF NOT EXISTS {_SEQUENCE} AS bigint MINVALUE 0 "
                    f"START {stored_counter + 1}"
                )
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {_IN_FLIGHT} "
                    "(position bigint PRIMARY KEY, process integer NOT NULL)"
                )
                connection.execute(_MARK_FUNCTION)

        self._database.run(create)

    # The counter.

    def take_position(self) -> int:
        """A new position on the counter, in flight until `settle` is called with it."""
        row = self._database.run(
            lambda c: c.execute(
                f"INSERT INTO {_IN_FLIGHT} (position, process) "
                f"VALUES (nextval('{_SEQUENCE}'), %s) RETURNING position",
                (self.process,),
            ).fetchone()
        )
        assert row is not None
        return int(row[0])

    def settle(self, positions: list[int], messages: Iterable[str]) -> int:
        """Mark `positions` as written and send `messages`; the committed mark after.

        One statement: the positions deleted, the notifications queued (sent
        when it commits) and the mark read, which this process's own rows do
        not hold back."""
        payloads = list(messages)
        row = self._database.run(
            lambda c: c.execute(
                f"WITH settled AS (DELETE FROM {_IN_FLIGHT} WHERE position = ANY(%s)), "
                "sent AS (SELECT count(pg_notify(%s, payload)) FROM unnest(%s::text[]) payload) "
                "SELECT conduit_committed_mark(%s), (SELECT * FROM sent)",
                (positions, CHANNEL, payloads, self.process),
            ).fetchone(),
            retry=False,
        )
        assert row is not None
        return int(row[0])

    def committed_mark(self) -> int:
        """The highest position at and below which everything has been written."""
        row = self._database.run(
            lambda c: c.execute("SELECT conduit_committed_mark(%s)", (self.process,)).fetchone()
        )
        assert row is not None
        return int(row[0])

    def last_position(self) -> int:
        """The last position handed out by any process (for migration and backups)."""
        row = self._database.run(
            lambda c: c.execute(f"SELECT last_value, is_called FROM {_SEQUENCE}").fetchone()
        )
        assert row is not None
        return int(row[0]) if row[1] else int(row[0]) - 1

    def clear_dead_processes(self) -> int:
        """Forget positions of processes whose session has ended; how many there were."""
        cursor = self._database.run(
            lambda c: c.execute(
                f"DELETE FROM {_IN_FLIGHT} WHERE process NOT IN "
                "(SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)"
            )
        )
        return cursor.rowcount

    # Messages.

    def listen(self) -> int:
        """Start listening on a connection of its own (a new one if it was lost);
        its file descriptor, to wait on."""
        if self._listener is not None:
            self._listener.close()
        self._listener = self._database.connect()
        try:
            self._listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            raise DatabaseError(f"cannot listen for other processes: {error}") from None
        return self._listener.pgconn.socket

    @property
    def listener_process(self) -> int | None:
        """The backend pid of the listening session (in `pg_stat_activity`)."""
        return self._listener.info.backend_pid if self._listener else None

    def received(self) -> list[dict[str, Any]]:
        """The messages that have arrived (without waiting), oldest first."""
        assert self._listener is not None
        pgconn = self._listener.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as error:
            raise DatabaseError(f"lost the connection that listens: {error}") from None
        messages = []
        while (notification := pgconn.notifies()) is not None:
            try:
                messages.append(json.loads(notification.extra))
            except ValueError:
                continue  # not ours: another program NOTIFYing on the channel
        return messages

    # Locks.

    def try_lock(self, kind: int, name: str) -> bool:
        row = self._session.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", lock_id(kind, name)
        ).fetchone()
        return bool(row and row[0])

    def unlock(self, kind: int, name: str) -> None:
        self._session.execute("SELECT pg_advisory_unlock(%s, %s)", lock_id(kind, name))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._session.close()
