"""Appservice registrations: checking YAML, unique ids and tokens, run-time changes.

Spec: `content/application-service-api.md`, "Registration" (the keys of
`definitions/registration.yaml`; `id` and `as_token` MUST be unique and the
homeserver MUST enforce it) and "Client-Server API Extensions" (exclusive
namespaces).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_conduit.service.appservices import AppServices, RegistrationError, parse_yaml
from matrix_conduit.storage import Database, open_database

SERVER = "example.org"

TELEGRAM = """
id: telegram
url: http://127.0.0.1:29317
as_token: as-telegram
hs_token: hs-telegram
sender_localpart: telegrambot
rate_limited: false
de.sorunome.msc2409.push_ephemeral: true
namespaces:
  users:
    - exclusive: true
      regex: '@telegram_.*:example\\.org'
  aliases:
    - exclusive: true
      regex: '#telegram_.*:example\\.org'
  rooms: []
"""


def registration(**changes: str) -> str:
    """TELEGRAM with some `key: value` lines replaced."""
    lines = []
    for line in TELEGRAM.splitlines():
        key = line.split(":", 1)[0]
        lines.append(f"{key}: {changes[key]}" if key in changes and line[0] != " " else line)
    return "\n".join(lines)


@pytest.fixture
def db(tmp_path) -> Database:
    with open_database("leveldb", str(tmp_path / "db")) as db:
        yield db


def store(db: Database, files: list[str] = ()) -> tuple[AppServices, list[str]]:
    created: list[str] = []
    return AppServices(db, SERVER, list(files), created.append), created


def test_a_registration_is_read_with_its_namespaces_and_flags():
    appservice = parse_yaml(TELEGRAM, source="t.yaml", server_name=SERVER)
    assert appservice.sender == "@telegrambot:example.org"
    assert appservice.rate_limited is False
    assert appservice.receive_ephemeral is True
    assert appservice.owns_user("@telegram_123:example.org")
    assert appservice.exclusive_user("@telegram_123:example.org")
    assert not appservice.owns_user("@alice:example.org")
    assert appservice.exclusive_alias("#telegram_chat:example.org")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: x\n", "t.yaml: as_token: is required but missing"),
        (registration(hs_token="''"), "t.yaml: hs_token: must be a non-empty string"),
        (registration(url="ftp://x"), "t.yaml: url: must be an http(s) URL or null"),
        (registration(rate_limited="maybe"), "t.yaml: rate_limited: must be true or false"),
        (
            TELEGRAM.replace("'@telegram_.*:example\\.org'", "'@telegram_(.*'"),
            "t.yaml: namespaces.users[0].regex: '@telegram_(.*' is not a valid regex",
        ),
        ("[1, 2]", "t.yaml: the registration must be a YAML mapping"),
        ("id: [unclosed", "t.yaml: not valid YAML"),
    ],
)
def test_a_bad_registration_names_the_file_and_the_key(text: str, expected: str):
    with pytest.raises(RegistrationError) as raised:
        parse_yaml(text, source="t.yaml", server_name=SERVER)
    assert any(problem.startswith(expected) for problem in raised.value.problems), raised.value


def test_files_are_loaded_and_their_senders_created(db, tmp_path: Path):
    path = tmp_path / "telegram.yaml"
    path.write_text(TELEGRAM)
    appservices, created = store(db, [str(path)])
    assert [a.id for a in appservices.list()] == ["telegram"]
    assert appservices.by_as_token("as-telegram").source == str(path)
    assert appservices.by_as_token("hs-telegram") is None
    assert created == ["@telegrambot:example.org"]


@pytest.mark.parametrize("key", ["id", "as_token", "hs_token"])
def test_two_files_with_the_same_id_or_token_stop_startup(db, tmp_path: Path, key: str):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(TELEGRAM)
    other = {"id": "signal", "as_token": "as-signal", "hs_token": "hs-signal"}
    other.pop(key)
    second.write_text(registration(sender_localpart="signalbot", **other))
    with pytest.raises(RegistrationError) as raised:
        store(db, [str(first), str(second)])
    assert any(p.startswith(f"{second}: {key}: the same as") for p in raised.value.problems)


def test_a_missing_file_stops_startup_with_its_path(db, tmp_path: Path):
    with pytest.raises(RegistrationError) as raised:
        store(db, [str(tmp_path / "nope.yaml")])
    assert raised.value.problems == [
        f"{tmp_path / 'nope.yaml'}: app service registration file does not exist"
    ]


def test_register_list_unregister_at_run_time_persist(tmp_path: Path):
    with open_database("leveldb", str(tmp_path / "db")) as db:
        appservices, created = store(db)
        changes: list[str] = []
        appservices.changed.append(lambda: changes.append("changed"))
        appservices.register(TELEGRAM)
        assert created == ["@telegrambot:example.org"] and changes == ["changed"]
        with pytest.raises(RegistrationError, match="the same as that of 'telegram'"):
            appservices.register(TELEGRAM)
    with open_database("leveldb", str(tmp_path / "db")) as db:
        appservices, _ = store(db)
        assert [(a.id, a.source) for a in appservices.list()] == [("telegram", "database")]
        appservices.unregister("telegram")
        assert appservices.list() == []
        with pytest.raises(RegistrationError, match="no appservice 'telegram'"):
            appservices.unregister("telegram")
    with open_database("leveldb", str(tmp_path / "db")) as db:
        assert store(db)[0].list() == []


def test_a_file_registration_cannot_be_unregistered_at_run_time(db, tmp_path: Path):
    path = tmp_path / "telegram.yaml"
    path.write_text(TELEGRAM)
    appservices, _ = store(db, [str(path)])
    with pytest.raises(RegistrationError, match="remove it from app_service_config_files"):
        appservices.unregister("telegram")


def test_exclusive_namespaces_name_their_owner_for_local_ids_only(db):
    appservices, _ = store(db)
    appservices.register(TELEGRAM)
    assert appservices.exclusive_owner_of_user("@telegram_1:example.org").id == "telegram"
    assert appservices.exclusive_owner_of_user("@telegrambot:example.org").id == "telegram"
    assert appservices.exclusive_owner_of_user("@alice:example.org") is None
    assert appservices.exclusive_owner_of_alias("#telegram_x:example.org").id == "telegram"
    assert appservices.exclusive_owner_of_alias("#other:example.org") is None
