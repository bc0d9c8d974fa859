"""The keys of the PostgreSQL backend: checked at startup, naming the key, never the password.

`database_backend = "postgresql"` needs `database_url` (a libpq URI);
`database_password_file` must hold a password (README, "Configuration").
"""

from __future__ import annotations

import pytest

from matrix_conduit.config import ConfigError, build_config

BASE = {"server_name": "example.org", "database_backend": "postgresql", "database_path": "/x"}


def problems_of(**values) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config({**BASE, **values})
    return caught.value.problems


def test_postgresql_backend_without_url_stops_startup_naming_the_key():
    assert any(p.startswith("database_url") and "is required" in p for p in problems_of())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u@h/db", "must be a libpq URI starting with postgresql://"),
        ("postgresql://u:secret-pw@h/db?nosuchoption=1", "is not a valid libpq URI"),
        ("postgresql://u:secret-pw@[::1/db", "is not a valid libpq URI"),
        ("postgresql://u:secret-pw@h:notaport/db", "has a port that is not a number"),
        ("postgresql://u:secret-pw@h:5432", "names no database"),
    ],
)
def test_bad_database_url_is_refused_without_showing_its_password(url, reason):
    problems = [p for p in problems_of(database_url=url) if p.startswith("database_url")]
    assert len(problems) == 1 and reason in problems[0]
    assert "secret-pw" not in problems[0]


def test_good_url_and_password_file_are_accepted(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = build_config(
        {
            **BASE,
            "database_url": "postgresql://conduit@db.internal:5433/conduit?sslmode=require",
            "database_password_file": str(secret),
        }
    )
    assert config.storage_engine == "postgresql"
    assert config.database_password == "s3cret"


def test_empty_or_missing_password_file_is_refused_naming_the_key(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    url = "postgresql://conduit@h/db"
    for path in (empty, tmp_path / "missing"):
        problems = problems_of(database_url=url, database_password_file=str(path))
        assert [p for p in problems if p.startswith("database_password_file")], path


def test_embedded_backends_ignore_database_url():
    config = build_config({**BASE, "database_backend": "leveldb"})
    assert config.database_url is None and config.storage_engine == "leveldb"


def test_admin_show_config_shows_database_url_without_its_password():
    """`!admin show-config` posts the config into a room: an inline password must not be there."""
    from matrix_conduit.service.admin_room.server_commands import _masked

    shown = _masked("database_url", "postgresql://conduit:s3cret@db:5432/conduit")
    assert shown == "postgresql://conduit@db:5432/conduit"
