"""`check-config` warns about settings that work but mislead, and reports what `serve` refuses.

Issue #17 ("Docs and defaults that mislead today"): open registration without
a token (also logged loudly by the real server at start-up, and never what
the Debian questions produce), the example's placeholder server name, a
`[global]` key written after a table's header (TOML puts it in that table:
`port` after `[global.well_known]` is `well_known.port`), a `well_known.client`
pointing at https on a plain-HTTP development server; and a database made for
another server_name or by another backend, which `serve` would refuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_conduit.config import load_config
from matrix_conduit.config_checks import warnings
from matrix_conduit.debian_config import Answers, candidate
from tests.support.process import run_command, server_process, write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "conduit.toml"
OPEN_REGISTRATION = "anyone on the internet can create accounts"


def _check(path: Path) -> tuple[int, str, str]:
    done = run_command("check-config", str(path))
    return done.returncode, done.stdout, done.stderr


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "conduit.toml"
    path.write_text(
        '[global]\nserver_name = "chat.example.org"\ndatabase_backend = "leveldb"\n'
        f'database_path = "{tmp_path / "db"}"\nport = 6167\n' + body
    )
    return path


def test_open_registration_without_a_token_is_a_loud_warning(tmp_path: Path):
    status, out, err = _check(_write(tmp_path, "allow_registration = true\n"))
    assert status == 0 and "OK" in out
    assert "OPEN REGISTRATION" in err and OPEN_REGISTRATION in err


@pytest.mark.parametrize(
    "body",
    [
        'allow_registration = true\nregistration_token = "a secret"\n',
        "allow_registration = true\nregistration_requires_token = true\n",
        "allow_registration = false\n",
    ],
    ids=["token", "requires-token", "closed"],
)
def test_registration_with_a_token_or_closed_does_not_warn(tmp_path: Path, body: str):
    status, _, err = _check(_write(tmp_path, body))
    assert status == 0
    assert OPEN_REGISTRATION not in err


def test_the_server_logs_open_registration_at_start_up(tmp_path: Path):
    config = write_config(tmp_path, allow_registration=True, log="warn")
    with server_process(config) as server:
        assert server.stop() == 0
    assert OPEN_REGISTRATION in server.stderr


def test_the_debian_answers_keep_registration_closed(tmp_path: Path):
    answers = Answers(server_name="chat.example.org", address="127.0.0.1", port="6167")
    written = tmp_path / "conduit.toml"
    written.write_text(candidate(str(tmp_path / "absent.toml"), str(EXAMPLE), answers).text)
    config = load_config(str(written), environ={})
    assert config.allow_registration is False
    assert not any(OPEN_REGISTRATION in warning for warning in warnings(config))


def test_the_shipped_placeholder_server_name_is_a_warning():
    status, _, err = _check(EXAMPLE)
    assert status == 0
    assert "server_name is still the placeholder 'your.server.name'" in err


def test_a_key_after_a_table_header_is_reported_as_misplaced(tmp_path: Path):
    path = tmp_path / "conduit.toml"
    path.write_text(
        '[global]\nserver_name = "chat.example.org"\ndatabase_backend = "leveldb"\n'
        f'database_path = "{tmp_path / "db"}"\n'
        '[global.well_known]\nclient = "https://matrix.chat.example.org"\nport = 6167\n'
    )
    status, _, err = _check(path)
    assert status == 0
    assert "unknown key well_known.port is ignored" in err
    assert "port is a [global] key" in err and "move `port = ...` above the header" in err


@pytest.mark.parametrize(
    "well_known",
    ['client = "https://localhost:6167"', 'client = "https://127.0.0.1"'],
    ids=["same-port", "loopback"],
)
def test_https_well_known_on_a_plain_http_dev_server_is_a_warning(tmp_path: Path, well_known):
    status, _, err = _check(_write(tmp_path, f"[global.well_known]\n{well_known}\n"))
    assert status == 0
    assert "speaks plain HTTP" in err and 'client = "http://' in err


def test_https_well_known_of_a_public_name_behind_a_proxy_does_not_warn(tmp_path: Path):
    path = _write(tmp_path, '[global.well_known]\nclient = "https://matrix.chat.example.org"\n')
    status, _, err = _check(path)
    assert status == 0
    assert "plain HTTP" not in err


def test_a_database_of_another_server_name_is_what_serve_would_refuse(tmp_path: Path):
    config = write_config(tmp_path)
    with server_process(config) as server:
        assert server.stop() == 0
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace('"localhost"', '"chat.example.org"'))
    status, out, err = _check(other)
    assert (status, out) == (1, "")
    assert "serve would refuse to start" in err
    assert "made for server_name 'localhost'" in err


def test_a_database_of_another_backend_is_what_serve_would_refuse(tmp_path: Path):
    config = write_config(tmp_path)
    with server_process(config) as server:
        assert server.stop() == 0
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace('"leveldb"', '"sqlite"'))
    status, _, err = _check(other)
    assert status == 1
    assert "holds a LevelDB database" in err
