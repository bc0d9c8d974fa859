"""What `check-config` adds to parsing: warnings about valid but dangerous or
misleading settings, and what `serve` would refuse about the database.

A config can parse and still surprise its admin: registration open to the
whole internet, the example's placeholder server name (which cannot be
changed once users exist), a `.well-known` that sends clients to https on a
server that speaks plain HTTP. `warnings` names them; start-up logs the same
list at `warning`, so the journal says it too. `database_refusals` opens
nothing it would have to create and reports what `serve` would stop on: a
database made for another server_name, or one of another backend.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from .config import Config

PLACEHOLDER_SERVER_NAMES = frozenset({"your.server.name", "example.com", "matrix.example.com"})
"""The example config's (and documentation's) stand-ins for a real server name."""


def warnings(config: Config) -> list[str]:
    """Settings that work but that an admin most likely did not mean."""
    found = []
    if (
        config.allow_registration
        and not config.registration_token
        and not config.registration_requires_token
    ):
        found.append(
            "OPEN REGISTRATION: allow_registration = true without a registration_token "
            "(or registration_requires_token): anyone on the internet can create accounts "
            "here, and spammers look for such servers. Set registration_token, or "
            "allow_registration = false."
        )
    if config.server_name in PLACEHOLDER_SERVER_NAMES:
        found.append(
            f"server_name is still the placeholder {config.server_name!r}: set your real "
            "domain before the first start; it is part of every user id and cannot change "
            "once users exist."
        )
    found += _well_known_warnings(config)
    return found


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _well_known_warnings(config: Config) -> list[str]:
    client = config.well_known_client
    parts = urlsplit(client)
    if parts.scheme != "https" or config.tls is not None:
        return []
    try:
        url_port = parts.port
    except ValueError:
        return []
    host = parts.hostname or ""
    if _is_loopback(host) or url_port == config.port:
        where = "well_known.client" if config.well_known.client else "the default well_known.client"
        return [
            f"{where} is {client!r}, but this server speaks plain HTTP (no [global.tls]) "
            f"on port {config.port} and nothing on {host} terminates TLS for it: clients that "
            f"follow /.well-known/matrix/client will fail. For a development server set "
            f'[global.well_known] client = "http://{host}:{config.port}".'
        ]
    return []


def database_refusals(config: Config) -> list[str]:
    """What `serve` would refuse about the database at `database_path`, if there is one."""
    from .storage import (
        DatabaseError,
        DatabaseInUse,
        _check_contents,
        _holds_leveldb,
        _holds_sqlite,
        open_database,
    )

    directory = config.database_path
    if not os.path.isdir(directory) or config.storage_engine == "postgresql":
        return []  # serve creates it; PostgreSQL is checked when the server connects
    try:
        _check_contents(directory, config.storage_engine)
    except DatabaseError as error:
        return [str(error)]
    holds = _holds_sqlite if config.storage_engine == "sqlite" else _holds_leveldb
    if not holds(directory):
        return []
    if os.stat(directory).st_uid != os.getuid():
        # Opening LevelDB writes new files, which would then belong to us, not the
        # server's user; the server_name is checked by the server itself at start.
        return []
    try:
        database = open_database(config.storage_engine, directory)
    except DatabaseInUse:
        return []  # the running server has it, so it accepted it
    except DatabaseError as error:
        return [str(error)]
    try:
        recorded = database.tree("global").get(b"server_name")
    finally:
        database.close()
    if recorded is not None and recorded.decode() != config.server_name:
        return [
            f"the database at {directory} was made for server_name {recorded.decode()!r}, "
            f"but server_name is {config.server_name!r}: serve would refuse to start "
            "(every user id and room in it belongs to the old name)"
        ]
    return []
