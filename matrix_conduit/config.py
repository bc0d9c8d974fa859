"""The server's configuration: a TOML file plus `CONDUIT_*` environment overrides.

`$CONDUIT_CONFIG` names the file (read with tomlkit); every setting lives in
its `[global]` table, with the names, types and defaults of Conduit's
documented configuration so that existing Conduit configs keep working.
`CONDUIT_<KEY>` environment variables override the file
(`CONDUIT_PORT=6167`, `CONDUIT_TLS_CERTS=...`, `CONDUIT_WELL_KNOWN_CLIENT=...`).

Loading never stops at the first mistake: it collects every problem, each
naming its key and the reason, so `matrix-conduit check-config` can print
them all and startup can refuse with a message an admin can act on.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import tomlkit
import tomlkit.exceptions

from .core.ids import is_valid_server_name, parse_server_name
from .core.ip_ranges import DEFAULT_DENYLIST as DEFAULT_IP_RANGE_DENYLIST
from .core.ip_ranges import parse_network
from .core.rate_limits import RateLimitsConfig, parse_rate_limits
from .core.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

log = logging.getLogger(__name__)

ENV_PREFIX = "CONDUIT_"
EXAMPLE_PATH = "/etc/matrix-conduit/conduit.toml"
DATABASE_BACKENDS = ("leveldb", "sqlite", "postgresql", "rocksdb")
LOG_LEVELS = {
    "off": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
MIN_REQUEST_SIZE = 1024


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class TlsConfig:
    certs: str = field(metadata=_doc("Path to the PEM certificate chain."))
    key: str = field(metadata=_doc("Path to the PEM private key."))


@dataclass(frozen=True, slots=True)
class WellKnownConfig:
    client: str | None = field(
        default=None, metadata=_doc("Base URL clients use (`m.homeserver`).")
    )
    server: str | None = field(
        default=None, metadata=_doc("`host:port` other servers use (`m.server`).")
    )


@dataclass(frozen=True, slots=True)
class TurnConfig:
    uris: list[str] = field(default_factory=list, metadata=_doc("TURN server URIs."))
    username: str = field(default="", metadata=_doc("Static TURN username."))
    password: str = field(default="", metadata=_doc("Static TURN password."))
    secret: str = field(default="", metadata=_doc("Shared secret (coturn REST API)."))
    ttl: int = field(default=86400, metadata=_doc("Lifetime of TURN credentials, seconds."))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """`[global.metrics]`: Prometheus metrics on their own listener, or a path of the main one."""

    address: str = field(default="127.0.0.1", metadata=_doc("Address of the metrics listener."))
    port: int | None = field(default=None, metadata=_doc("Port of a separate metrics listener."))
    path: str | None = field(
        default=None, metadata=_doc("Path on the main listener (needs `token`).")
    )
    token: str | None = field(
        default=None, metadata=_doc("Bearer token the `path` on the main listener requires.")
    )

    @property
    def enabled(self) -> bool:
        return self.port is not None or self.path is not None


@dataclass(frozen=True, slots=True)
class ProxyRule:
    """One `[[global.proxy.by_domain]]` entry: a proxy for matching domains."""

    url: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def matches(self, domain: str) -> bool:
        def any_match(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(domain, pattern) for pattern in patterns)

        return any_match(self.include) and not any_match(self.exclude)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Where outgoing requests go: directly, through one proxy, or by domain."""

    global_url: str | None = None
    by_domain: tuple[ProxyRule, ...] = ()

    def url_for(self, domain: str) -> str | None:
        if self.global_url is not None:
            return self.global_url
        for rule in self.by_domain:
            if rule.matches(domain):
                return rule.url
        return None


@dataclass(frozen=True)
class Config:
    """Every setting of `[global]`. Field metadata `doc` is the key's description."""

    server_name: str = field(
        metadata=_doc("The part after the colon in user ids. Cannot change later.")
    )
    database_backend: str = field(
        metadata=_doc('"leveldb" (recommended), "sqlite", "postgresql"; "rocksdb" means leveldb.')
    )
    database_path: str = field(metadata=_doc("Directory for the database and media."))
    database_url: str | None = field(
        default=None,
        metadata=_doc('libpq URI of the "postgresql" backend: postgresql://user@host:port/db.'),
    )
    database_password_file: str | None = field(
        default=None,
        metadata=_doc("A file holding the PostgreSQL password (else PGPASSWORD or ~/.pgpass)."),
    )
    address: str = field(default="127.0.0.1", metadata=_doc("IP address to listen on."))
    port: int = field(default=8000, metadata=_doc("TCP port to listen on."))
    tls: TlsConfig | None = field(
        default=None, metadata=_doc("`[global.tls]` certs/key: serve HTTPS directly.")
    )
    # Not Conduit's 300: LevelDB maps its table files, so the kernel's page cache
    # holds their blocks already; a block cache that size filled up whenever a big
    # room's history was read and stayed (issue 19's big-room load: +150 MiB RSS).
    db_cache_capacity_mb: float = field(
        default=16.0, metadata=_doc("Database block cache, MiB (on top of cache_memory_mb).")
    )
    conduit_cache_capacity_modifier: float = field(
        default=1.0, metadata=_doc("Scales the server's in-memory caches.")
    )
    cache_memory_mb: float = field(
        default=96.0,
        metadata=_doc("Estimated MiB the in-memory caches may hold together (times the modifier)."),
    )
    rocksdb_max_open_files: int = field(
        default=1000, metadata=_doc("Max files the LevelDB store keeps open.")
    )
    pdu_cache_capacity: int = field(
        default=150000, metadata=_doc("Events kept in the in-memory event cache.")
    )
    cleanup_second_interval: int = field(
        default=60, metadata=_doc("Seconds between cleanups of expired data.")
    )
    max_request_size: int = field(
        default=20971520, metadata=_doc("Largest request body, bytes (also max upload).")
    )
    client_idle_timeout: float = field(
        default=10.0,
        metadata=_doc("Seconds a connection may wait for a request's headers (new or kept alive)."),
    )
    client_body_timeout: float = field(
        default=30.0, metadata=_doc("Seconds a client has to send a request's whole body.")
    )
    max_concurrent_requests: int = field(
        default=100, metadata=_doc("Outgoing HTTP requests in flight at once.")
    )
    max_fetch_prev_events: int = field(
        default=100, metadata=_doc("Missing prev events fetched per incoming event.")
    )
    max_inbound_requests_per_server: int = field(
        default=50,
        metadata=_doc("Federation requests one server may have in progress here at once."),
    )
    rate_limits: RateLimitsConfig = field(
        default_factory=RateLimitsConfig,
        metadata=_doc("`[global.rate_limits]`: enabled, exempt_admins, and each limit's table."),
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata=_doc("Reverse proxies (CIDR) whose X-Forwarded-For names the client."),
    )
    metrics: MetricsConfig = field(
        default_factory=MetricsConfig,
        metadata=_doc("`[global.metrics]`: Prometheus metrics (off unless port or path)."),
    )
    allow_registration: bool = field(
        default=False, metadata=_doc("Let anyone register an account.")
    )
    registration_token: str | None = field(
        default=None, metadata=_doc("When set, registering requires this token.")
    )
    registration_requires_token: bool = field(
        default=False,
        metadata=_doc("Registering requires a token (also without `registration_token`)."),
    )
    registration_shared_secret: str | None = field(
        default=None,
        metadata=_doc("Enables shared-secret registration (`register_new_matrix_user`)."),
    )
    registration_shared_secret_path: str | None = field(
        default=None, metadata=_doc('A file holding the registration shared secret ("": unset).')
    )
    allow_encryption: bool = field(default=True, metadata=_doc("Allow encrypted rooms."))
    allow_federation: bool = field(default=True, metadata=_doc("Talk to other Matrix servers."))
    allow_room_creation: bool = field(default=True, metadata=_doc("Let local users create rooms."))
    allow_public_rooms_over_federation: bool = field(
        default=True, metadata=_doc("Let other servers read our public room directory.")
    )
    allow_unstable_room_versions: bool = field(
        default=True, metadata=_doc("Allow room versions the spec marks unstable.")
    )
    default_room_version: str = field(
        default=DEFAULT_ROOM_VERSION, metadata=_doc("Room version of new rooms.")
    )
    enable_lightning_bolt: bool = field(
        default=True, metadata=_doc("New users' display name ends with ` ⚡️`.")
    )
    allow_check_for_updates: bool = field(
        default=True,
        metadata=_doc("Accepted for Conduit compatibility; there is no update feed."),
    )
    allow_jaeger: bool = field(
        default=False, metadata=_doc("Accepted for compatibility; not supported.")
    )
    tracing_flame: bool = field(
        default=False, metadata=_doc("Accepted for compatibility; not supported.")
    )
    proxy: ProxyConfig = field(
        default_factory=ProxyConfig,
        metadata=_doc("Outgoing proxy: `[global.proxy.global]` or `.by_domain`."),
    )
    jwt_secret: str | None = field(default=None, metadata=_doc("HS256 secret enabling JWT login."))
    trusted_servers: list[str] = field(
        default_factory=lambda: ["matrix.org"],
        metadata=_doc("Servers asked for other servers' signing keys."),
    )
    federation_ip_range_denylist: list[str] = field(
        default_factory=lambda: list(DEFAULT_IP_RANGE_DENYLIST),
        metadata=_doc("IP ranges outgoing federation requests never connect to."),
    )
    federation_ip_range_allowlist: list[str] = field(
        default_factory=list,
        metadata=_doc("Exceptions to the denylist (e.g. 127.0.0.0/8 for loopback tests)."),
    )
    url_preview_enabled: bool = field(
        default=False, metadata=_doc("Fetch web pages for `preview_url` (off: 404).")
    )
    url_preview_ip_range_denylist: list[str] = field(
        default_factory=lambda: list(DEFAULT_IP_RANGE_DENYLIST),
        metadata=_doc("IP ranges URL previews never connect to."),
    )
    url_preview_ip_range_allowlist: list[str] = field(
        default_factory=list, metadata=_doc("Exceptions to the URL preview denylist.")
    )
    url_preview_max_size: int = field(
        default=10485760, metadata=_doc("Largest page or image a URL preview reads, bytes.")
    )
    url_preview_timeout: float = field(
        default=10.0, metadata=_doc("Seconds a URL preview may take to fetch, redirects included.")
    )
    log: str = field(default="warn", metadata=_doc('Log level, or "level,module=level,...".'))
    turn_username: str = field(default="", metadata=_doc("Static TURN username."))
    turn_password: str = field(default="", metadata=_doc("Static TURN password."))
    turn_uris: list[str] = field(default_factory=list, metadata=_doc("TURN server URIs."))
    turn_secret: str = field(default="", metadata=_doc("TURN shared secret (coturn)."))
    turn_ttl: int = field(default=86400, metadata=_doc("TURN credential lifetime, s."))
    turn: TurnConfig | None = field(
        default=None, metadata=_doc("`[global.turn]`: the table form of turn_*.")
    )
    emergency_password: str | None = field(
        default=None, metadata=_doc("Lets an admin log in as @conduit:server_name.")
    )
    app_service_config_files: list[str] = field(
        default_factory=list,
        metadata=_doc("Appservice (bridge) registration YAML files, read at start-up."),
    )
    well_known: WellKnownConfig = field(
        default_factory=WellKnownConfig,
        metadata=_doc("`[global.well_known]` client/server for delegation."),
    )

    @property
    def database_password(self) -> str | None:
        """The PostgreSQL password from `database_password_file` (None: libpq finds it)."""
        if self.database_password_file:
            return read_password_file(self.database_password_file)
        return None

    @property
    def effective_registration_shared_secret(self) -> str | None:
        """The shared secret, from the key or from the file `..._path` names (None: off)."""
        if self.registration_shared_secret_path:
            return read_shared_secret(self.registration_shared_secret_path)
        return self.registration_shared_secret

    @property
    def effective_turn(self) -> TurnConfig:
        """The TURN settings, from `[global.turn]` if given, else the `turn_*` keys."""
        if self.turn is not None:
            return self.turn
        return TurnConfig(
            uris=self.turn_uris,
            username=self.turn_username,
            password=self.turn_password,
            secret=self.turn_secret,
            ttl=self.turn_ttl,
        )

    @property
    def well_known_client(self) -> str:
        return self.well_known.client or f"https://{self.server_name}"

    @property
    def well_known_server(self) -> str:
        """`m.server`: as configured, else the server name with its port (default 443)."""
        if self.well_known.server:
            return self.well_known.server
        host, port = parse_server_name(self.server_name)
        return f"{host}:{port or 443}"

    @property
    def storage_engine(self) -> str:
        """The engine behind `database_backend`: "rocksdb" configs run on LevelDB."""
        return "leveldb" if self.database_backend == "rocksdb" else self.database_backend


# ---------------------------------------------------------------- reading


def read_toml(path: str) -> dict[str, Any]:
    """The `[global]` table of the file at `path` as plain Python values."""
    try:
        with open(path, encoding="utf-8") as file:
            document = tomlkit.load(file)
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except PermissionError:
        raise ConfigError([f"config file {path} is not readable by this user"]) from None
    except (tomlkit.exceptions.TOMLKitError, UnicodeDecodeError) as error:
        raise ConfigError([f"config file {path} is not valid TOML: {error}"]) from None
    values = document.unwrap()
    extra_tables = sorted(set(values) - {"global"})
    if extra_tables:
        log.warning(
            "config file %s: ignoring top-level keys %s (settings belong in [global])",
            path,
            ", ".join(extra_tables),
        )
    global_table = values.get("global", {})
    if not isinstance(global_table, dict):
        raise ConfigError([f"config file {path}: `global` must be a table"])
    return global_table


_TABLE_FIELDS = {
    "tls": TlsConfig,
    "well_known": WellKnownConfig,
    "turn": TurnConfig,
    "metrics": MetricsConfig,
}


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`CONDUIT_<KEY>` variables as a `[global]`-shaped dict of raw strings.

    Nested keys are written with `_` (`CONDUIT_TLS_CERTS`) or `__`
    (`CONDUIT_TLS__CERTS`); the table name is recognised by its prefix.
    """
    overrides: dict[str, Any] = {}
    top_level_keys = {item.name for item in fields(Config)}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "CONDUIT_CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", "_")
        if key in top_level_keys:  # `turn_uris` is a key, not `uris` of [global.turn]
            overrides[key] = value
            continue
        for table in (*_TABLE_FIELDS, "rate_limits"):
            if key.startswith(table + "_"):
                overrides.setdefault(table, {})[key[len(table) + 1 :]] = value
                break
        else:
            overrides[key] = value
    return overrides


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------- checking


class _Problems(list[str]):
    def add(self, key: str, reason: str) -> None:
        self.append(f"{key}: {reason}")


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if typing.get_origin(kind) is list:
        return "an array of strings"
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _from_env_string(raw: str, kind: Any) -> Any:
    """An environment variable's text as a value of `kind`, or the text itself."""
    if kind is str:
        return raw
    try:
        return tomlkit.parse(f"value = {raw}").unwrap()["value"]
    except tomlkit.exceptions.TOMLKitError:
        return raw


def _coerce(key: str, value: Any, kind: Any, problems: _Problems, *, from_env: bool) -> Any:
    """`value` if it is of `kind` (ints accepted where numbers are), else a problem."""
    if from_env and isinstance(value, str):
        value = _from_env_string(value, kind)
    if typing.get_origin(kind) is list:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, kind):
        return value
    problems.add(key, f"must be {_type_name(kind)}, not {value!r}"[:200])
    return None


def _scalar_kind(annotation: Any) -> Any:
    """`str` for `str | None`; the annotation itself otherwise."""
    if isinstance(annotation, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return kind
    return annotation


def _misplaced_hint(table: str, key: str) -> str:
    """Why a [global] key shows up inside a table: it was written after that table's header."""
    if key not in {item.name for item in fields(Config)}:
        return ""
    return (
        f" ({key} is a [global] key: in TOML every key after the [global.{table}] header "
        f"belongs to that table, so move `{key} = ...` above the header)"
    )


def _read_table(key: str, value: Any, cls: type, problems: _Problems, *, env_keys: set[str]) -> Any:
    if not isinstance(value, dict):
        problems.add(key, f"must be a table ([global.{key}])")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for unknown in sorted(set(value) - known):
        log.warning(
            "config: unknown key %s.%s is ignored%s", key, unknown, _misplaced_hint(key, unknown)
        )
    kwargs = {}
    for item in fields(cls):
        if item.name not in value:
            continue
        kind = _scalar_kind(hints[item.name])
        kwargs[item.name] = _coerce(
            f"{key}.{item.name}",
            value[item.name],
            kind,
            problems,
            from_env=f"{key}.{item.name}" in env_keys,
        )
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in fields(cls) if f.name not in kwargs]
        problems.add(key, f"missing {', '.join(missing)}")
        return None


def _read_proxy(value: Any, problems: _Problems) -> ProxyConfig:
    if value in (None, "none", {}):
        return ProxyConfig()
    if not isinstance(value, dict):
        problems.add(
            "proxy", "must be a table ([global.proxy.global] or [[global.proxy.by_domain]])"
        )
        return ProxyConfig()
    if "global" in value:
        url = value["global"].get("url") if isinstance(value["global"], dict) else None
        if not isinstance(url, str):
            problems.add("proxy.global.url", "must be a string URL")
            return ProxyConfig()
        return ProxyConfig(global_url=url)
    rules = []
    entries = value.get("by_domain")
    if not isinstance(entries, list):
        problems.add("proxy", "must have a `global` table or a `by_domain` array of tables")
        return ProxyConfig()
    for index, entry in enumerate(entries):
        where = f"proxy.by_domain[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            problems.add(where, "needs a string `url`")
            continue
        include = entry.get("include", ["*"])
        exclude = entry.get("exclude", [])
        if not all(
            isinstance(p, list) and all(isinstance(s, str) for s in p) for p in (include, exclude)
        ):
            problems.add(where, "`include` and `exclude` must be arrays of strings")
            continue
        rules.append(ProxyRule(entry["url"], tuple(include), tuple(exclude)))
    return ProxyConfig(by_domain=tuple(rules))


def parse_log_filter(spec: str) -> tuple[int, dict[str, int]]:
    """`"warn,matrix_conduit.api=debug"` → (root level, {logger: level}).

    Raises ValueError naming the part it cannot read.
    """
    root = logging.WARNING
    per_module: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        module, _, level_name = part.rpartition("=")
        level = LOG_LEVELS.get(level_name.lower())
        if level is None:
            raise ValueError(
                f"unknown level {level_name!r} in {part!r} "
                f"(use one of {', '.join(sorted(LOG_LEVELS))})"
            )
        if module:
            per_module[module] = level
        else:
            root = level
    return root, per_module


def _validate(config: Config, problems: _Problems) -> None:
    if not is_valid_server_name(config.server_name):
        problems.add(
            "server_name",
            f"{config.server_name!r} is not a valid server name "
            "(a DNS name or IP literal, optionally with :port, e.g. example.com)",
        )
    if config.database_backend not in DATABASE_BACKENDS:
        problems.add(
            "database_backend",
            f"{config.database_backend!r} is not supported "
            f"(use {', '.join(repr(b) for b in DATABASE_BACKENDS[:3])})",
        )
    _validate_database_url(config, problems)
    if not config.database_path:
        problems.add("database_path", "must not be empty")
    if not 1 <= config.port <= 65535:
        problems.add("port", f"{config.port} is out of range (1-65535)")
    if config.default_room_version not in KNOWN_ROOM_VERSIONS:
        problems.add(
            "default_room_version",
            f"{config.default_room_version!r} is not supported "
            f"(supported: {', '.join(KNOWN_ROOM_VERSIONS)})",
        )
    if config.registration_token == "":
        problems.add(
            "registration_token",
            "is empty; an empty token would let anyone register. "
            "Set a secret token or remove the key",
        )
    _validate_shared_secret(config, problems)
    if config.max_request_size < MIN_REQUEST_SIZE:
        problems.add(
            "max_request_size", f"{config.max_request_size} is under {MIN_REQUEST_SIZE} bytes"
        )
    for key in ("client_idle_timeout", "client_body_timeout", "url_preview_timeout"):
        if not getattr(config, key) > 0:
            problems.add(key, "must be more than 0 seconds")
    for key in ("db_cache_capacity_mb", "conduit_cache_capacity_modifier"):
        if getattr(config, key) < 0:
            problems.add(key, "must not be negative")
    if not config.cache_memory_mb > 0:
        problems.add("cache_memory_mb", "must be more than 0 MiB")
    for key in (
        "rocksdb_max_open_files",
        "pdu_cache_capacity",
        "max_concurrent_requests",
        "cleanup_second_interval",
        "max_fetch_prev_events",
        "max_inbound_requests_per_server",
        "url_preview_max_size",
        "turn_ttl",
    ):
        if getattr(config, key) < 1:
            problems.add(key, "must be at least 1")
    bad_servers = [s for s in config.trusted_servers if not is_valid_server_name(s)]
    if bad_servers:
        problems.add("trusted_servers", f"not valid server names: {', '.join(bad_servers)}")
    for key in (
        "federation_ip_range_denylist",
        "federation_ip_range_allowlist",
        "url_preview_ip_range_denylist",
        "url_preview_ip_range_allowlist",
        "trusted_proxies",
    ):
        bad_ranges = [text for text in getattr(config, key) if not _is_network(text)]
        if bad_ranges:
            problems.add(key, f"not IP addresses or CIDR ranges: {', '.join(bad_ranges)}")
    try:
        parse_log_filter(config.log)
    except ValueError as error:
        problems.add("log", str(error))
    _validate_metrics(config.metrics, problems)


def _validate_metrics(metrics: MetricsConfig, problems: _Problems) -> None:
    if metrics.port is not None and not 1 <= metrics.port <= 65535:
        problems.add("metrics.port", f"{metrics.port} is out of range (1-65535)")
    if metrics.path is not None:
        if not metrics.path.startswith("/") or metrics.path.startswith("/_matrix/"):
            problems.add("metrics.path", "must start with / and not be under /_matrix/")
        if not metrics.token:
            problems.add(
                "metrics.token",
                "is required with metrics.path: the main listener is public, so the "
                "metrics there need a bearer token (or use metrics.port instead)",
            )


def _validate_shared_secret(config: Config, problems: _Problems) -> None:
    if config.registration_shared_secret is not None and config.registration_shared_secret_path:
        problems.add(
            "registration_shared_secret",
            "conflicts with registration_shared_secret_path; set only one of them",
        )
    elif config.registration_shared_secret == "":
        problems.add(
            "registration_shared_secret",
            "is empty; an empty secret would let anyone create admin accounts. "
            "Set a long random secret or remove the key",
        )
    elif config.registration_shared_secret_path:
        try:
            read_shared_secret(config.registration_shared_secret_path)
        except (OSError, ValueError) as error:
            problems.add("registration_shared_secret_path", str(error))


def _validate_database_url(config: Config, problems: _Problems) -> None:
    """A "postgresql" backend needs a libpq URI; the password stays out of every message."""
    if config.database_backend != "postgresql":
        return
    from .storage.postgresql import check_url

    if not config.database_url:
        problems.add(
            "database_url",
            'is required with database_backend = "postgresql" (postgresql://user@host:port/db)',
        )
    else:
        reason = check_url(config.database_url)
        if reason:
            problems.add("database_url", reason)
    if config.database_password_file:
        try:
            read_password_file(config.database_password_file)
        except (OSError, ValueError) as error:
            problems.add("database_password_file", str(error))


def read_password_file(path: str) -> str:
    """The password in the file at `path` (its first line, whitespace removed)."""
    with open(path, encoding="utf-8") as file:
        password = file.readline().strip()
    if not password:
        raise ValueError(f"{path} is empty; it must hold the database password")
    return password


def read_shared_secret(path: str) -> str:
    """The secret in the file at `path` (surrounding whitespace removed; must not be empty)."""
    with open(path, encoding="utf-8") as file:
        secret = file.read().strip()
    if not secret:
        raise ValueError(f"{path} is empty; it must hold the shared secret")
    return secret


def _is_network(text: str) -> bool:
    try:
        parse_network(text)
    except ValueError:
        return False
    return True


_REQUIRED_STAND_INS = {
    "server_name": "localhost",
    "database_backend": "leveldb",
    "database_path": ".",
}
"""Valid values for required keys, used only while checking a config that lacks them
(the problems already say so), so that its other keys are checked too."""


def build_config(values: Mapping[str, Any], *, env_keys: set[str] = frozenset()) -> Config:
    """A checked `Config` from a `[global]`-shaped mapping; ConfigError lists problems.

    `env_keys` names the keys whose values came from environment variables (as
    text, converted to each key's type here).
    """
    problems = _Problems()
    hints = typing.get_type_hints(Config)
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        log.warning("config: unknown keys are ignored: %s", ", ".join(unknown))
    kwargs: dict[str, Any] = {}
    for item in fields(Config):
        key = item.name
        if key not in values:
            continue
        value = values[key]
        if key == "proxy":
            kwargs[key] = _read_proxy(value, problems)
        elif key == "rate_limits":
            if isinstance(value, dict):  # CONDUIT_RATE_LIMITS_ENABLED=false: text to a bool
                value = {
                    name: _from_env_string(item, bool)
                    if f"rate_limits.{name}" in env_keys and isinstance(item, str)
                    else item
                    for name, item in value.items()
                }
            kwargs[key], limit_problems = parse_rate_limits(value)
            for problem_key, reason in limit_problems:
                problems.add(problem_key, reason)
        elif key in _TABLE_FIELDS:
            kwargs[key] = _read_table(key, value, _TABLE_FIELDS[key], problems, env_keys=env_keys)
        else:
            kwargs[key] = _coerce(
                key, value, _scalar_kind(hints[key]), problems, from_env=key in env_keys
            )
    for item in fields(Config):
        if item.default is MISSING and item.default_factory is MISSING and item.name not in values:
            problems.add(item.name, "is required but not set")
    # Keys that are missing or failed their type check (None) take stand-ins or
    # defaults, so that the other values are still validated in the same run.
    usable = {key: value for key, value in kwargs.items() if value is not None}
    config = Config(**{**_REQUIRED_STAND_INS, **usable})
    _validate(config, problems)
    if problems:
        raise ConfigError(list(problems))
    return config


def _env_keys(overrides: Mapping[str, Any]) -> set[str]:
    keys = set()
    for key, value in overrides.items():
        if isinstance(value, dict):
            keys.update(f"{key}.{sub}" for sub in value)
        else:
            keys.add(key)
    return keys


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration from the file at `path` (None: environment only) and env."""
    environ = os.environ if environ is None else environ
    file_values = read_toml(path) if path else {}
    overrides = env_overrides(environ)
    return build_config(_merge(file_values, overrides), env_keys=_env_keys(overrides))


def config_path_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """`$CONDUIT_CONFIG`: a path, or None for "environment variables alone" (set but empty).

    Unset is an error: the admin must say which file to use.
    """
    environ = os.environ if environ is None else environ
    if "CONDUIT_CONFIG" not in environ:
        raise ConfigError(
            [
                "CONDUIT_CONFIG is not set: set it to the path of the configuration file, "
                f"e.g. CONDUIT_CONFIG={EXAMPLE_PATH} (or to an empty string to configure "
                "with CONDUIT_* environment variables alone)"
            ]
        )
    return environ["CONDUIT_CONFIG"] or None
