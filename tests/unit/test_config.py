"""The configuration: `$CONDUIT_CONFIG`'s TOML file, `CONDUIT_*` overrides, and validation.

Names, types and defaults are Conduit's documented ones (docs.conduit.rs,
"Configuration"), so an existing Conduit config keeps working. Every problem
names its key and the reason, and all problems are reported at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from matrix_conduit.config import (
    EXAMPLE_PATH,
    Config,
    ConfigError,
    MetricsConfig,
    ProxyRule,
    TlsConfig,
    TurnConfig,
    build_config,
    config_path_from_environment,
    load_config,
)
from matrix_conduit.core.ip_ranges import DEFAULT_DENYLIST as DEFAULT_IP_RANGE_DENYLIST
from matrix_conduit.core.rate_limits import RateLimitsConfig
from matrix_conduit.core.room_versions import KNOWN_ROOM_VERSIONS

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "conduit.toml"

REQUIRED = {
    "server_name": "example.org",
    "database_backend": "leveldb",
    "database_path": "/var/lib/matrix-conduit",
}
REQUIRED_TOML = """\
[global]
server_name = "example.org"
database_backend = "leveldb"
database_path = "/var/lib/matrix-conduit"
"""


def config_with(**values: Any) -> Config:
    return build_config({**REQUIRED, **values})


def problems_of(values: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(values)
    return caught.value.problems


def the_problem_of(**values: Any) -> str:
    """The one problem of the required keys plus `values`."""
    (problem,) = problems_of({**REQUIRED, **values})
    return problem


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "conduit.toml"
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------ CONDUIT_CONFIG


def test_unset_conduit_config_is_an_error_naming_the_variable_and_an_example_path():
    with pytest.raises(ConfigError) as caught:
        config_path_from_environment({})

    message = str(caught.value)
    assert "CONDUIT_CONFIG is not set" in message
    assert EXAMPLE_PATH == "/etc/matrix-conduit/conduit.toml"
    assert EXAMPLE_PATH in message


def test_conduit_config_names_the_file_to_read(tmp_path):
    path = write(tmp_path, REQUIRED_TOML)
    assert config_path_from_environment({"CONDUIT_CONFIG": path}) == path
    assert load_config(path, {}).server_name == "example.org"


def test_empty_conduit_config_means_configuration_from_environment_alone():
    environ = {
        "CONDUIT_CONFIG": "",
        "CONDUIT_SERVER_NAME": "env.example.org",
        "CONDUIT_DATABASE_BACKEND": "sqlite",
        "CONDUIT_DATABASE_PATH": "/srv/conduit",
    }

    path = config_path_from_environment(environ)
    config = load_config(path, environ)

    assert path is None
    assert (config.server_name, config.database_backend, config.database_path) == (
        "env.example.org",
        "sqlite",
        "/srv/conduit",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [(None, "does not exist"), ("[global\nport = 1", "is not valid TOML")],
    ids=["missing", "not-toml"],
)
def test_unreadable_file_is_an_error_naming_the_file(tmp_path, text, reason):
    path = str(tmp_path / "conduit.toml") if text is None else write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} {reason}")):
        load_config(path, {})


# ------------------------------------------------------------ Conduit's keys

CONDUIT_DEFAULTS = {
    "address": "127.0.0.1",
    "port": 8000,
    "tls": None,
    "db_cache_capacity_mb": 16.0,
    "conduit_cache_capacity_modifier": 1.0,
    "rocksdb_max_open_files": 1000,
    "pdu_cache_capacity": 150000,
    "cleanup_second_interval": 60,
    "max_request_size": 20971520,
    "max_concurrent_requests": 100,
    "max_fetch_prev_events": 100,
    "allow_registration": False,
    "registration_token": None,
    "allow_encryption": True,
    "allow_federation": True,
    "allow_room_creation": True,
    "allow_unstable_room_versions": True,
    "default_room_version": "10",
    "enable_lightning_bolt": True,
    "allow_check_for_updates": True,
    "allow_jaeger": False,
    "tracing_flame": False,
    "jwt_secret": None,
    "trusted_servers": ["matrix.org"],
    "log": "warn",
    "turn_username": "",
    "turn_password": "",
    "turn_uris": [],
    "turn_secret": "",
    "turn_ttl": 86400,
    "turn": None,
    "emergency_password": None,
}
"""Conduit's documented defaults (`log` is "warn": Conduit's adds Rust module filters)."""


OUR_OWN_DEFAULTS = {
    "database_url": None,
    "database_password_file": None,
    "federation_ip_range_denylist": list(DEFAULT_IP_RANGE_DENYLIST),
    "federation_ip_range_allowlist": [],
    "client_idle_timeout": 10.0,
    "client_body_timeout": 30.0,
    "max_inbound_requests_per_server": 50,
    "allow_public_rooms_over_federation": True,
    "url_preview_enabled": False,
    "url_preview_ip_range_denylist": list(DEFAULT_IP_RANGE_DENYLIST),
    "url_preview_ip_range_allowlist": [],
    "url_preview_max_size": 10485760,
    "url_preview_timeout": 10.0,
    "app_service_config_files": [],
    "cache_memory_mb": 96.0,
    "rate_limits": RateLimitsConfig(),
    "trusted_proxies": [],
    "metrics": MetricsConfig(),
    "registration_requires_token": False,
    "registration_shared_secret": None,
    "registration_shared_secret_path": None,
}
"""Keys Conduit does not have (the ranges are Synapse's `ip_range_blacklist`/`_whitelist`)."""


def test_keys_of_our_own_have_their_documented_defaults():
    config = config_with()

    assert {key: getattr(config, key) for key in OUR_OWN_DEFAULTS} == OUR_OWN_DEFAULTS
    assert "127.0.0.0/8" in config.federation_ip_range_denylist
    assert "fc00::/7" in config.federation_ip_range_denylist


def test_every_optional_key_has_conduits_default():
    config = config_with()
    optional = {f.name for f in fields(Config)} - set(REQUIRED) - {"proxy", "well_known"}
    optional -= set(OUR_OWN_DEFAULTS)

    assert set(CONDUIT_DEFAULTS) == optional
    assert {key: getattr(config, key) for key in CONDUIT_DEFAULTS} == CONDUIT_DEFAULTS
    assert config.proxy.url_for("any.example") is None
    assert (config.well_known.client, config.well_known.server) == (None, None)


def test_every_key_of_a_full_file_is_read_with_its_type(tmp_path):
    path = write(
        tmp_path,
        REQUIRED_TOML
        + """\
address = "::"
port = 6167
db_cache_capacity_mb = 64
conduit_cache_capacity_modifier = 0.5
rocksdb_max_open_files = 512
pdu_cache_capacity = 1000
cleanup_second_interval = 30
max_request_size = 1_048_576
max_concurrent_requests = 10
max_fetch_prev_events = 20
allow_registration = true
registration_token = "s3cret"
allow_encryption = false
allow_federation = false
allow_room_creation = false
allow_unstable_room_versions = false
default_room_version = "11"
enable_lightning_bolt = false
allow_check_for_updates = false
allow_jaeger = true
tracing_flame = true
jwt_secret = "jwt"
trusted_servers = ["a.example", "b.example:8448"]
log = "info"
turn_username = "user"
turn_password = "pass"
turn_uris = ["turn:turn.example:3478"]
turn_secret = "turnsecret"
turn_ttl = 600
emergency_password = "emergency"

[global.tls]
certs = "/etc/ssl/chain.pem"
key = "/etc/ssl/key.pem"

[global.well_known]
client = "https://matrix.example.org"
server = "matrix.example.org:443"
""",
    )

    config = load_config(path, {})

    assert config.address == "::"
    assert config.port == 6167
    assert config.db_cache_capacity_mb == 64.0 and isinstance(config.db_cache_capacity_mb, float)
    assert config.conduit_cache_capacity_modifier == 0.5
    assert (config.rocksdb_max_open_files, config.pdu_cache_capacity) == (512, 1000)
    assert (config.cleanup_second_interval, config.max_request_size) == (30, 1048576)
    assert (config.max_concurrent_requests, config.max_fetch_prev_events) == (10, 20)
    assert config.allow_registration is True
    assert config.registration_token == "s3cret"
    assert not any(
        (
            config.allow_encryption,
            config.allow_federation,
            config.allow_room_creation,
            config.allow_unstable_room_versions,
            config.enable_lightning_bolt,
            config.allow_check_for_updates,
        )
    )
    assert config.allow_jaeger is config.tracing_flame is True
    assert config.default_room_version == "11"
    assert config.jwt_secret == "jwt"
    assert config.trusted_servers == ["a.example", "b.example:8448"]
    assert config.log == "info"
    assert config.effective_turn == TurnConfig(
        uris=["turn:turn.example:3478"],
        username="user",
        password="pass",
        secret="turnsecret",
        ttl=600,
    )
    assert config.emergency_password == "emergency"
    assert config.tls == TlsConfig(certs="/etc/ssl/chain.pem", key="/etc/ssl/key.pem")
    assert config.well_known_client == "https://matrix.example.org"
    assert config.well_known_server == "matrix.example.org:443"


@pytest.mark.parametrize(
    ("server_name", "client", "server"),
    [
        ("example.org", "https://example.org", "example.org:443"),
        ("example.org:8448", "https://example.org:8448", "example.org:8448"),
        ("[::1]:8448", "https://[::1]:8448", "[::1]:8448"),
    ],
)
def test_well_known_defaults_to_the_server_name(server_name, client, server):
    config = config_with(server_name=server_name)
    assert (config.well_known_client, config.well_known_server) == (client, server)


def test_turn_table_form_replaces_the_turn_keys():
    config = config_with(
        turn_secret="ignored",
        turn={"uris": ["turns:turn.example"], "secret": "table", "ttl": 60},
    )
    assert config.effective_turn == TurnConfig(
        uris=["turns:turn.example"], username="", password="", secret="table", ttl=60
    )


def test_no_proxy_sends_everything_directly():
    assert config_with(proxy="none").proxy.url_for("matrix.org") is None


def test_global_proxy_is_used_for_every_domain():
    config = config_with(proxy={"global": {"url": "socks5h://localhost:9050"}})
    assert config.proxy.url_for("matrix.org") == "socks5h://localhost:9050"
    assert config.proxy.url_for("x.onion") == "socks5h://localhost:9050"


def test_proxy_by_domain_applies_to_included_not_excluded_domains():
    config = config_with(
        proxy={
            "by_domain": [
                {
                    "url": "socks5h://tor:9050",
                    "include": ["*.onion", "matrix.myspecial.onion"],
                    "exclude": ["*.myspecial.onion"],
                },
                {"url": "http://corporate:3128", "include": ["*.corp.example"]},
            ]
        }
    )

    assert config.proxy.by_domain[0] == ProxyRule(
        "socks5h://tor:9050", ("*.onion", "matrix.myspecial.onion"), ("*.myspecial.onion",)
    )
    assert config.proxy.url_for("abc.onion") == "socks5h://tor:9050"
    assert config.proxy.url_for("matrix.myspecial.onion") is None
    assert config.proxy.url_for("hs.corp.example") == "http://corporate:3128"
    assert config.proxy.url_for("matrix.org") is None


@pytest.mark.parametrize(
    ("proxy", "key"),
    [
        ("socks5h://localhost:9050", "proxy"),
        ({"global": {"address": "x"}}, "proxy.global.url"),
        ({"by_domain": [{"include": ["*"]}]}, "proxy.by_domain[0]"),
        ({"by_domain": [{"url": "http://p", "include": "*.onion"}]}, "proxy.by_domain[0]"),
        ({"somewhere": {}}, "proxy"),
    ],
)
def test_malformed_proxy_is_a_problem_naming_the_entry(proxy, key):
    assert the_problem_of(proxy=proxy).startswith(f"{key}: ")


@pytest.mark.parametrize("backend", ["leveldb", "sqlite", "rocksdb"])
def test_database_backends_accepted(backend):
    assert config_with(database_backend=backend).database_backend == backend


def test_rocksdb_backend_runs_on_the_leveldb_engine():
    assert config_with(database_backend="rocksdb").storage_engine == "leveldb"
    assert config_with(database_backend="sqlite").storage_engine == "sqlite"


def test_unsupported_backend_is_a_problem_naming_the_choices():
    problem = the_problem_of(database_backend="postgres")
    assert problem.startswith("database_backend: 'postgres' is not supported")
    assert "'leveldb'" in problem and "'sqlite'" in problem


# ------------------------------------------------------------ environment


def load_with_env(tmp_path, env: dict[str, str], toml: str = "") -> Config:
    return load_config(write(tmp_path, REQUIRED_TOML + toml), env)


@pytest.mark.parametrize(
    ("variable", "text", "attribute", "expected"),
    [
        ("CONDUIT_PORT", "6167", "port", 6167),
        ("CONDUIT_ALLOW_REGISTRATION", "true", "allow_registration", True),
        ("CONDUIT_TRUSTED_SERVERS", '["a.org"]', "trusted_servers", ["a.org"]),
        ("CONDUIT_DB_CACHE_CAPACITY_MB", "64", "db_cache_capacity_mb", 64.0),
        ("CONDUIT_REGISTRATION_TOKEN", "12345", "registration_token", "12345"),
        ("CONDUIT_SERVER_NAME", "other.example", "server_name", "other.example"),
        ("CONDUIT_LOG", "info,matrix_conduit.api=debug", "log", "info,matrix_conduit.api=debug"),
        ("CONDUIT_TURN_URIS", '["turn:t.example"]', "turn_uris", ["turn:t.example"]),
        ("CONDUIT_TURN_TTL", "60", "turn_ttl", 60),
        (
            "CONDUIT_WELL_KNOWN_CLIENT",
            "https://m.example",
            "well_known_client",
            "https://m.example",
        ),
        ("CONDUIT_WELL_KNOWN__SERVER", "m.example:443", "well_known_server", "m.example:443"),
    ],
)
def test_environment_variable_overrides_the_file(tmp_path, variable, text, attribute, expected):
    file_config = load_with_env(tmp_path, {}, "port = 1234\nlog = 'error'\n")
    assert getattr(file_config, attribute) != expected

    config = load_with_env(tmp_path, {variable: text}, "port = 1234\nlog = 'error'\n")

    assert getattr(config, attribute) == expected


def test_tls_from_environment_variables(tmp_path):
    config = load_with_env(
        tmp_path, {"CONDUIT_TLS_CERTS": "/env/chain.pem", "CONDUIT_TLS_KEY": "/env/key.pem"}
    )
    assert config.tls == TlsConfig(certs="/env/chain.pem", key="/env/key.pem")


def test_environment_override_of_one_table_key_keeps_the_others_from_the_file(tmp_path):
    config = load_with_env(
        tmp_path,
        {"CONDUIT_TLS_CERTS": "/env/chain.pem"},
        '[global.tls]\ncerts = "/file/chain.pem"\nkey = "/file/key.pem"\n',
    )
    assert config.tls == TlsConfig(certs="/env/chain.pem", key="/file/key.pem")


def test_environment_override_of_a_turn_key_keeps_the_other_turn_keys(tmp_path):
    config = load_with_env(
        tmp_path, {"CONDUIT_TURN_URIS": '["turn:env.example"]'}, 'turn_secret = "from-file"\n'
    )
    assert config.effective_turn.uris == ["turn:env.example"]
    assert config.effective_turn.secret == "from-file"


def test_environment_variable_of_the_wrong_type_is_a_problem_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_with_env(tmp_path, {"CONDUIT_PORT": "eighty"})
    assert caught.value.problems == ["port: must be an integer, not 'eighty'"]


def test_other_environment_variables_are_ignored(tmp_path):
    config = load_with_env(tmp_path, {"PORT": "1", "CONDUIT": "x", "MY_CONDUIT_PORT": "2"})
    assert config.port == 8000


# ------------------------------------------------------------ validation


def test_missing_required_keys_are_each_named():
    assert sorted(problems_of({})) == [
        "database_backend: is required but not set",
        "database_path: is required but not set",
        "server_name: is required but not set",
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected_type"),
    [
        ("port", "8000", "an integer"),
        ("port", 80.5, "an integer"),
        ("port", True, "an integer"),
        ("allow_registration", "yes", "true or false"),
        ("allow_registration", 1, "true or false"),
        ("trusted_servers", "matrix.org", "an array of strings"),
        ("trusted_servers", ["matrix.org", 1], "an array of strings"),
        ("db_cache_capacity_mb", "300", "a number"),
        ("server_name", 42, "a string"),
        ("registration_token", 1234, "a string"),
    ],
)
def test_wrong_type_is_a_problem_naming_the_key_and_the_expected_type(key, value, expected_type):
    assert the_problem_of(**{key: value}) == f"{key}: must be {expected_type}, not {value!r}"


@pytest.mark.parametrize(
    ("key", "value"), [("tls", "/etc/ssl/chain.pem"), ("well_known", "https://x"), ("turn", [])]
)
def test_table_key_given_a_value_is_a_problem_asking_for_a_table(key, value):
    assert the_problem_of(**{key: value}) == f"{key}: must be a table ([global.{key}])"


def test_incomplete_tls_table_names_the_missing_key():
    assert the_problem_of(tls={"certs": "/c.pem"}) == "tls: missing key"


def test_wrong_type_inside_a_table_names_the_dotted_key():
    assert the_problem_of(well_known={"client": 5}) == "well_known.client: must be a string, not 5"


@pytest.mark.parametrize(
    "server_name",
    ["example.org", "localhost", "example.org:8448", "1.2.3.4", "[::1]", "[::1]:8448"],
)
def test_server_names_of_the_spec_grammar_are_accepted(server_name):
    assert config_with(server_name=server_name).server_name == server_name


@pytest.mark.parametrize(
    "server_name",
    [
        "",
        "exa mple.org",
        "https://example.org",
        "example.org/",
        "example.org:",
        "[::1",
        "ex_ample.org",
    ],
)
def test_server_name_outside_the_spec_grammar_is_a_problem(server_name):
    problem = the_problem_of(server_name=server_name)
    assert problem.startswith(f"server_name: {server_name!r} is not a valid server name")


@pytest.mark.parametrize("port", [1, 6167, 65535])
def test_ports_in_range_are_accepted(port):
    assert config_with(port=port).port == port


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_port_out_of_range_is_a_problem(port):
    assert the_problem_of(port=port) == f"port: {port} is out of range (1-65535)"


@pytest.mark.parametrize("version", KNOWN_ROOM_VERSIONS)
def test_known_room_versions_can_be_the_default(version):
    assert config_with(default_room_version=version).default_room_version == version


def test_unsupported_default_room_version_is_a_problem():
    assert the_problem_of(default_room_version="99").startswith(
        "default_room_version: '99' is not supported (supported: 1, "
    )


def test_empty_registration_token_is_refused():
    problem = the_problem_of(allow_registration=True, registration_token="")
    assert problem.startswith("registration_token: is empty")
    assert "anyone" in problem


def test_max_request_size_under_1024_is_a_problem():
    assert config_with(max_request_size=1024).max_request_size == 1024
    assert the_problem_of(max_request_size=1023) == "max_request_size: 1023 is under 1024 bytes"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("db_cache_capacity_mb", -1, "must not be negative"),
        ("pdu_cache_capacity", 0, "must be at least 1"),
        ("max_concurrent_requests", 0, "must be at least 1"),
        ("client_idle_timeout", 0, "must be more than 0 seconds"),
        ("client_body_timeout", -1.5, "must be more than 0 seconds"),
        ("trusted_servers", ["matrix.org", "not a server"], "not valid server names: not a server"),
        (
            "federation_ip_range_allowlist",
            ["127.0.0.0/8", "localhost"],
            "not IP addresses or CIDR ranges: localhost",
        ),
        ("federation_ip_range_denylist", ["10.0.0.0/33"], "not IP addresses or CIDR ranges"),
        ("log", "loud", "unknown level 'loud'"),
        ("database_path", "", "must not be empty"),
    ],
)
def test_unusable_values_are_problems_naming_the_key(key, value, reason):
    problem = the_problem_of(**{key: value})
    assert problem.startswith(f"{key}: ")
    assert reason in problem


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        {
            **REQUIRED,
            "server_name": "not a name",
            "port": "eighty",
            "allow_federation": "no",
            "registration_token": "",
            "max_request_size": 10,
        }
    )
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "allow_federation",
        "max_request_size",
        "port",
        "registration_token",
        "server_name",
    ]


def test_unknown_keys_are_a_warning_naming_them(caplog):
    with caplog.at_level(logging.WARNING, logger="matrix_conduit.config"):
        config = config_with(
            max_upload_size=5, enable_foo=True, tls={"certs": "c", "key": "k", "ca": "x"}
        )

    assert config.server_name == "example.org"
    assert "unknown keys are ignored: enable_foo, max_upload_size" in caplog.text
    assert "unknown key tls.ca is ignored" in caplog.text


def test_keys_outside_global_are_a_warning(tmp_path, caplog):
    path = write(tmp_path, "port = 1\n" + REQUIRED_TOML)
    with caplog.at_level(logging.WARNING, logger="matrix_conduit.config"):
        config = load_config(path, {})

    assert config.port == 8000
    assert "ignoring top-level keys port (settings belong in [global])" in caplog.text


# ------------------------------------------------------------ etc/conduit.toml


def example_with_server_name(name: str = "example.org") -> str:
    text = EXAMPLE.read_text()
    assert text.count('server_name = "your.server.name"') == 1
    return text.replace('server_name = "your.server.name"', f'server_name = "{name}"')


def uncomment_every_example(text: str) -> str:
    """The file with every commented-out key (`#key = ...`) and table (`#[...]`) enabled."""
    return re.sub(r"(?m)^#(?=\[|[a-z_]+ = )", "", text)


def test_example_config_mentions_every_key():
    text = EXAMPLE.read_text()
    for item in fields(Config):
        assert re.search(rf"(?m)^#?({item.name} = |\[+global\.{item.name}[.\]])", text), item.name


def test_example_config_starts_once_server_name_is_set(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="matrix_conduit.config"):
        config = load_config(write(tmp_path, example_with_server_name()), {})

    assert config.server_name == "example.org"
    assert config.database_backend == "leveldb"
    assert config.port == 6167
    assert caplog.text == ""


def test_example_config_with_every_commented_example_enabled_is_valid(tmp_path, caplog):
    text = uncomment_every_example(example_with_server_name())
    assert "\n#[global.tls]" not in text and "\n#jwt_secret" not in text

    with caplog.at_level(logging.WARNING, logger="matrix_conduit.config"):
        config = load_config(write(tmp_path, text), {})

    assert caplog.text == "", "an enabled example landed outside [global] or in the wrong table"
    assert config.tls is not None
    assert config.well_known.client is not None
    assert config.turn is not None
    assert config.registration_token and config.jwt_secret and config.emergency_password
    assert config.proxy.url_for("x.onion") is not None
