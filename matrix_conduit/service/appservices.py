"""Application service registrations: who they are, which namespaces they own.

Spec: `content/application-service-api.md`, "Registration" (the YAML
registration, `data/api/application-service/definitions/registration.yaml`;
`id` and `as_token` unique per server, which the server MUST enforce) and
"Client-Server API Extensions" (`exclusive` namespaces: nobody but the
appservice creates users or aliases in them).

Registrations come from the YAML files `app_service_config_files` lists
(read at start-up; a bad file stops it with the file's name and the key at
fault) and from `register` at run time (the admin room's
`register-appservice`), kept in the database. Namespace regexes match from
the start of the id, as Synapse's do, so `@_irc_.*` covers `@_irc_x:server`.
Tokens are also unique across registrations for `hs_token`: a bridge that
reuses one would be told another's traffic is its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..core.ids import InvalidIdentifier, UserId, is_on_server
from ..storage import Database

TREES = ("appserviceid_registration",)

NAMESPACE_KINDS = ("users", "aliases", "rooms")
REQUIRED_KEYS = ("id", "url", "as_token", "hs_token", "sender_localpart", "namespaces")
EPHEMERAL_KEYS = ("receive_ephemeral", "de.sorunome.msc2409.push_ephemeral")
"""The stable key (spec v1.13) and MSC2409's unstable one, which mautrix bridges write."""
DEVICE_DATA_KEYS = (
    "org.matrix.msc3202",
    "receive_to_device",
    "org.matrix.msc4203.receive_to_device",
)
"""MSC3202 (device lists, one-time key counts) and MSC4203 (to-device): mautrix
writes `org.matrix.msc3202: true` when its bridge wants encryption data."""


class RegistrationError(ConfigError):
    """A registration that cannot be used; each problem names where it is and the key."""


@dataclass(frozen=True)
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.match(value) is not None


@dataclass(frozen=True)
class AppService:
    """One registration, checked. `source` is its file's path or "database"."""

    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender: str
    """The user id of `sender_localpart` on this server."""
    users: tuple[Namespace, ...]
    aliases: tuple[Namespace, ...]
    rooms: tuple[Namespace, ...]
    rate_limited: bool
    protocols: tuple[str, ...]
    receive_ephemeral: bool
    receive_device_data: bool
    """To-device messages and device list changes of its users (MSC4203/MSC3202)."""
    source: str
    document: Mapping[str, Any] = field(repr=False, compare=False)
    """The registration as written, for `list` and the database."""

    def owns_user(self, user_id: str) -> bool:
        """Whether the appservice may act as `user_id`: its sender or one in its users."""
        return user_id == self.sender or any(ns.matches(user_id) for ns in self.users)

    def owns_alias(self, alias: str) -> bool:
        return any(ns.matches(alias) for ns in self.aliases)

    def owns_room(self, room_id: str) -> bool:
        return any(ns.matches(room_id) for ns in self.rooms)

    def exclusive_user(self, user_id: str) -> bool:
        return user_id == self.sender or any(
            ns.exclusive and ns.matches(user_id) for ns in self.users
        )

    def exclusive_alias(self, alias: str) -> bool:
        return any(ns.exclusive and ns.matches(alias) for ns in self.aliases)


def parse_registration(document: object, *, source: str, server_name: str) -> AppService:
    """A checked registration from its parsed YAML; RegistrationError lists every problem."""
    problems: list[str] = []

    def problem(key: str, reason: str) -> None:
        problems.append(f"{source}: {key}: {reason}")

    if not isinstance(document, dict):
        raise RegistrationError([f"{source}: the registration must be a YAML mapping"])
    for key in REQUIRED_KEYS:
        if key not in document:
            problem(key, "is required but missing")
    for key in ("id", "as_token", "hs_token", "sender_localpart"):
        if key in document and (not isinstance(document[key], str) or not document[key]):
            problem(key, "must be a non-empty string")
    url = document.get("url")
    if url is not None and not (isinstance(url, str) and re.match(r"https?://", url)):
        problem("url", "must be an http(s) URL or null")
    sender = ""
    localpart = document.get("sender_localpart")
    if isinstance(localpart, str) and localpart:
        sender = f"@{localpart}:{server_name}"
        try:
            UserId.parse(sender)
        except InvalidIdentifier as error:
            problem("sender_localpart", f"{localpart!r} is not a valid localpart: {error}")
    namespaces = document.get("namespaces")
    parsed: dict[str, tuple[Namespace, ...]] = dict.fromkeys(NAMESPACE_KINDS, ())
    if "namespaces" in document:
        if not isinstance(namespaces, dict):
            problem("namespaces", "must be a mapping of users, aliases and rooms")
        else:
            for kind in NAMESPACE_KINDS:
                parsed[kind] = _namespaces(namespaces.get(kind), f"namespaces.{kind}", problem)
    flags: dict[str, bool] = {}
    for key in ("rate_limited", *EPHEMERAL_KEYS, *DEVICE_DATA_KEYS):
        value = document.get(key)
        if value is not None and not isinstance(value, bool):
            problem(key, "must be true or false")
        flags[key] = bool(value) if key != "rate_limited" else value is not False
    protocols = document.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        problem("protocols", "must be a list of strings")
        protocols = []
    if problems:
        raise RegistrationError(problems)
    return AppService(
        id=document["id"],
        url=url.rstrip("/") if isinstance(url, str) else None,
        as_token=document["as_token"],
        hs_token=document["hs_token"],
        sender=sender,
        users=parsed["users"],
        aliases=parsed["aliases"],
        rooms=parsed["rooms"],
        rate_limited=flags["rate_limited"],
        protocols=tuple(protocols),
        receive_ephemeral=any(flags[key] for key in EPHEMERAL_KEYS),
        receive_device_data=any(flags[key] for key in DEVICE_DATA_KEYS),
        source=source,
        document=document,
    )


def _namespaces(
    value: object, key: str, problem: Callable[[str, str], None]
) -> tuple[Namespace, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problem(key, "must be a list of {regex, exclusive} entries")
        return ()
    namespaces = []
    for index, entry in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("regex"), str):
            problem(where, "must have a `regex` string")
            continue
        exclusive = entry.get("exclusive", False)
        if not isinstance(exclusive, bool):
            problem(f"{where}.exclusive", "must be true or false")
            continue
        try:
            namespaces.append(Namespace(re.compile(entry["regex"]), exclusive))
        except re.error as error:
            problem(f"{where}.regex", f"{entry['regex']!r} is not a valid regex: {error}")
    return tuple(namespaces)


def parse_yaml(text: str, *, source: str, server_name: str) -> AppService:
    """A registration from YAML text (a file's or one pasted in the admin room)."""
    import yaml  # only servers with appservices need it (idle memory, issue 19)

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RegistrationError([f"{source}: not valid YAML: {error}"]) from None
    return parse_registration(document, source=source, server_name=server_name)


def read_registration_file(path: str, *, server_name: str) -> AppService:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise RegistrationError([f"{path}: app service registration file does not exist"]) from None
    except PermissionError:
        raise RegistrationError([f"{path}: not readable by this user"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RegistrationError([f"{path}: cannot be read: {error}"]) from None
    return parse_yaml(text, source=path, server_name=server_name)


def _conflicts(appservice: AppService, others: Iterable[AppService]) -> list[str]:
    """Why `appservice` cannot sit beside `others` (ids and tokens must be unique)."""
    problems = []
    for other in others:
        for key in ("id", "as_token", "hs_token"):
            if getattr(appservice, key) == getattr(other, key):
                problems.append(
                    f"{appservice.source}: {key}: the same as that of {other.id!r} "
                    f"({other.source}); each appservice needs its own"
                )
        if appservice.sender == other.sender:
            problems.append(
                f"{appservice.source}: sender_localpart: {other.id!r} ({other.source}) "
                "has the same sender"
            )
    return problems


class AppServices:
    """The registrations in force, and the namespace questions the rest of the server asks."""

    def __init__(
        self,
        db: Database,
        server_name: str,
        config_files: Sequence[str],
        create_user: Callable[[str], None],
    ) -> None:
        """Reads every file of `config_files` and the run-time registrations.

        Raises RegistrationError (a ConfigError: startup stops) naming each bad
        file and key. `create_user(user_id)` creates an appservice's sender
        account if missing.
        """
        self._db = db
        self._tree = db.tree("appserviceid_registration")
        self._server_name = server_name
        self._create_user = create_user
        self._by_id: dict[str, AppService] = {}
        self.changed: list[Callable[[], None]] = []
        """Called after `register`/`unregister` (e.g. the sender picks up new ones)."""
        problems: list[str] = []
        loaded: list[AppService] = []
        for path in config_files:
            try:
                loaded.append(read_registration_file(path, server_name=server_name))
            except RegistrationError as error:
                problems += error.problems
        for _, value in self._tree.iter_prefix():
            loaded.append(parse_yaml(value.decode(), source="database", server_name=server_name))
        for appservice in loaded:
            conflicts = _conflicts(appservice, self._by_id.values())
            problems += conflicts
            if not conflicts:
                self._by_id[appservice.id] = appservice
        if problems:
            raise RegistrationError(problems)
        for appservice in self._by_id.values():
            self._create_user(appservice.sender)

    # ---- the registry

    def register(self, yaml_text: str) -> AppService:
        """Add a registration at run time, kept in the database (admin room)."""
        appservice = parse_yaml(yaml_text, source="database", server_name=self._server_name)
        conflicts = _conflicts(appservice, self._by_id.values())
        if conflicts:
            raise RegistrationError(conflicts)
        self._tree.put(appservice.id.encode(), yaml_text.encode())
        self._by_id[appservice.id] = appservice
        self._create_user(appservice.sender)
        self._changed()
        return appservice

    def unregister(self, appservice_id: str) -> None:
        """Remove a run-time registration; a file's stays until the file is taken out."""
        appservice = self._by_id.get(appservice_id)
        if appservice is None:
            raise RegistrationError([f"no appservice {appservice_id!r} is registered"])
        if appservice.source != "database":
            raise RegistrationError(
                [
                    f"{appservice_id!r} is registered by {appservice.source}: remove it "
                    "from app_service_config_files instead"
                ]
            )
        self._tree.delete(appservice_id.encode())
        del self._by_id[appservice_id]
        self._changed()

    def list(self) -> list[AppService]:
        return sorted(self._by_id.values(), key=lambda appservice: appservice.id)

    def by_id(self, appservice_id: str) -> AppService | None:
        return self._by_id.get(appservice_id)

    def by_as_token(self, token: str) -> AppService | None:
        for appservice in self._by_id.values():
            if appservice.as_token == token:
                return appservice
        return None

    def _changed(self) -> None:
        for callback in self.changed:
            callback()

    # ---- namespaces

    def exclusive_owner_of_user(self, user_id: str) -> AppService | None:
        """The appservice that alone may create `user_id`, if any."""
        if not is_on_server(user_id, self._server_name):
            return None
        return next((a for a in self._by_id.values() if a.exclusive_user(user_id)), None)

    def exclusive_owner_of_alias(self, alias: str) -> AppService | None:
        return next((a for a in self._by_id.values() if a.exclusive_alias(alias)), None)

    def owning_user(self, user_id: str) -> list[AppService]:
        """Appservices with `user_id` (local) in their user namespaces (or as sender)."""
        if not is_on_server(user_id, self._server_name):
            return []
        return [a for a in self._by_id.values() if a.owns_user(user_id)]

    def owning_alias(self, alias: str) -> list[AppService]:
        return [a for a in self._by_id.values() if a.owns_alias(alias)]

    def with_protocol(self, protocol: str) -> list[AppService]:
        return [a for a in self._by_id.values() if protocol in a.protocols]
