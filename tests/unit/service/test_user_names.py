"""Which user a login names, and which names registration accepts, table-driven.

Spec: `content/client-server-api/_index.md`, "Identifier types" (`m.id.user`
by localpart or user id; an unknown 3PID is 403), "Login" (the deprecated
`user` field); `data/api/client-server/registration.yaml`
(`M_INVALID_USERNAME`, `M_USER_IN_USE`); `content/appendices.md`, "User
Identifiers" (new localparts are lower-case `a-z 0-9 . _ = - / +`, at most
255 bytes for the whole id).
"""

from __future__ import annotations

import pytest

from matrix_conduit.config import Config
from matrix_conduit.errors import MatrixError
from matrix_conduit.service.devices import Devices
from matrix_conduit.service.globals import Globals
from matrix_conduit.service.passwords import Argon2Parameters, PasswordHashing
from matrix_conduit.service.registration import Registration
from matrix_conduit.service.users import Users
from matrix_conduit.storage import Database, open_database
from tests.support.server import make_config

PASSWORDS = PasswordHashing(Argon2Parameters(time_cost=1, memory_cost_kib=64, parallelism=1))


@pytest.fixture
def db(tmp_path) -> Database:
    with open_database("leveldb", str(tmp_path / "db")) as db:
        yield db


@pytest.fixture
def config(tmp_path) -> Config:
    return make_config(tmp_path / "db", server_name="example.org", allow_registration=True)


@pytest.fixture
def devices(db) -> Devices:
    return Devices(db, Globals(db, "example.org"))


@pytest.fixture
def users(db, config, devices) -> Users:
    return Users(db, config, devices, PASSWORDS)


@pytest.fixture
def registration(db, config, users, devices) -> Registration:
    return Registration(db, config, users, devices, PASSWORDS)


@pytest.mark.parametrize(
    ("body", "user_id"),
    [
        ({"identifier": {"type": "m.id.user", "user": "alice"}}, "@alice:example.org"),
        ({"identifier": {"type": "m.id.user", "user": "Alice"}}, "@alice:example.org"),
        ({"identifier": {"type": "m.id.user", "user": "@alice:example.org"}}, "@alice:example.org"),
        ({"identifier": {"type": "m.id.user", "user": "@ALICE:example.org"}}, "@alice:example.org"),
        ({"identifier": {"type": "m.id.user", "user": "@alice:other.org"}}, None),
        ({"identifier": {"type": "m.id.user", "user": "@alice"}}, None),
        ({"user": "alice"}, "@alice:example.org"),
    ],
)
def test_login_identifier_names_a_local_user(users, body, user_id):
    assert users.user_id_from_identifier(body) == user_id


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        (
            {"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b"}},
            403,
            "M_FORBIDDEN",
        ),
        ({"identifier": {"type": "m.id.phone", "country": "GB", "phone": "1"}}, 403, "M_FORBIDDEN"),
        ({"medium": "email", "address": "a@b"}, 403, "M_FORBIDDEN"),
        ({"identifier": {"type": "m.id.fingerprint"}}, 400, "M_UNKNOWN"),
        ({"identifier": "alice"}, 400, "M_BAD_JSON"),
        ({"identifier": {"type": "m.id.user"}}, 400, "M_BAD_JSON"),
        ({}, 400, "M_BAD_JSON"),
    ],
)
def test_login_identifiers_that_cannot_name_a_user_get_errors(users, body, status, errcode):
    with pytest.raises(MatrixError) as error:
        users.user_id_from_identifier(body)

    assert (error.value.status, error.value.errcode) == (status, errcode)


@pytest.mark.parametrize(
    ("username", "user_id"),
    [
        ("alice", "@alice:example.org"),
        ("Alice", "@alice:example.org"),
        ("a.b_c=d-e/f+g", "@a.b_c=d-e/f+g:example.org"),
        ("0123", "@0123:example.org"),
        ("x" * (255 - len("@:example.org")), "@" + "x" * 242 + ":example.org"),
    ],
)
def test_registration_accepts_and_downcases_valid_names(registration, username, user_id):
    assert registration.available_user_id(username) == user_id


@pytest.mark.parametrize(
    "username",
    ["", "al ice", "al:ice", "@alice", "ålice", "alice!", "x" * 243, None, 7],
)
def test_registration_refuses_invalid_names(registration, username):
    with pytest.raises(MatrixError) as error:
        registration.available_user_id(username)

    assert error.value.errcode == "M_INVALID_USERNAME"


def test_the_server_user_exists_from_the_start_so_its_name_is_taken(registration, users):
    with pytest.raises(MatrixError) as error:
        registration.available_user_id("conduit")

    assert users.exists("@conduit:example.org")
    assert error.value.errcode == "M_USER_IN_USE"
