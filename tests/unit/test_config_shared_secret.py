"""Config: `registration_shared_secret`, `registration_shared_secret_path`,
`registration_requires_token` (keys of Synapse's that the admin API uses).

The secret may be given inline or in a file (as Synapse allows), never both
and never empty: an empty secret would let anyone create admin accounts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_conduit.config import ConfigError, build_config

REQUIRED = {"server_name": "example.com", "database_backend": "leveldb", "database_path": "/x"}


def problems(**values: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config({**REQUIRED, **values})
    return caught.value.problems


def test_the_secret_is_read_inline():
    config = build_config({**REQUIRED, "registration_shared_secret": "s3cret"})
    assert config.effective_registration_shared_secret == "s3cret"


def test_the_secret_is_read_from_its_file_without_the_newline(tmp_path: Path):
    path = tmp_path / "secret"
    path.write_text("from a file\n")
    config = build_config({**REQUIRED, "registration_shared_secret_path": str(path)})
    assert config.effective_registration_shared_secret == "from a file"


def test_without_either_shared_secret_registration_is_off():
    assert build_config(REQUIRED).effective_registration_shared_secret is None


def test_an_empty_secret_is_refused():
    [problem] = problems(registration_shared_secret="")
    assert problem.startswith("registration_shared_secret:")
    assert "empty" in problem


def test_both_keys_at_once_are_refused(tmp_path: Path):
    path = tmp_path / "secret"
    path.write_text("x")
    [problem] = problems(registration_shared_secret="x", registration_shared_secret_path=str(path))
    assert "conflicts" in problem


def test_a_missing_or_empty_file_is_named(tmp_path: Path):
    [missing] = problems(registration_shared_secret_path=str(tmp_path / "absent"))
    assert missing.startswith("registration_shared_secret_path:")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    [blank] = problems(registration_shared_secret_path=str(empty))
    assert "empty" in blank


def test_registration_requires_token_is_a_bool():
    assert build_config(
        {**REQUIRED, "registration_requires_token": True}
    ).registration_requires_token
    [problem] = problems(registration_requires_token="yes please")
    assert problem.startswith("registration_requires_token:")
