"""The Debian package's config helper: debconf answers in, conduit.toml out,
everything the admin wrote kept (matrix_conduit/debian_config.py)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from matrix_conduit import debian_config

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "conduit.toml"
ME = f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"


def run(*arguments: str | Path) -> int:
    return debian_config.main([str(argument) for argument in arguments])


def write(config: Path, name: str = "example.org", address: str = "127.0.0.1", port="6167"):
    return run("write", "--template", EXAMPLE, "--owner", ME, "--", config, name, address, port)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_first_install_writes_the_example_with_the_answers(tmp_path):
    config = tmp_path / "conduit.toml"
    assert write(config, "example.org", "0.0.0.0", "8448") == 0

    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert sorted(changed_lines(EXAMPLE.read_text(), config.read_text())) == [
        ('address = "127.0.0.1"', 'address = "0.0.0.0"'),
        ("port = 6167", "port = 8448"),
        ('server_name = "your.server.name"', 'server_name = "example.org"'),
    ]


def test_the_same_answers_leave_the_file_untouched(tmp_path):
    config = tmp_path / "conduit.toml"
    write(config)
    config.write_text(config.read_text().replace("port = 6167", "port = 6_167  # mine"))
    before = config.read_bytes()
    os.utime(config, (1, 1))

    assert write(config) == 0

    assert config.read_bytes() == before
    assert config.stat().st_mtime == 1


def test_new_answers_change_only_their_keys_and_keep_hand_edits_owner_and_mode(tmp_path):
    config = tmp_path / "conduit.toml"
    write(config)
    edited = config.read_text().replace("allow_registration = false", "allow_registration = true")
    edited = edited.replace("port = 6167", "port = 6167 # behind nginx") + "\n# my note\n"
    config.write_text(edited)
    config.chmod(0o600)

    assert write(config, "example.com", "::1", "8008") == 0

    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sorted(changed_lines(edited, config.read_text())) == [
        ('address = "127.0.0.1"', 'address = "::1"'),
        ("port = 6167 # behind nginx", "port = 8008 # behind nginx"),
        ('server_name = "example.org"', 'server_name = "example.com"'),
    ]
    assert not list(tmp_path.glob(".conduit.toml.*")), "no temporary file is left behind"


@pytest.mark.parametrize(
    ("name", "port", "bad_keys"),
    [
        ("bad name", "6167", ["server_name"]),
        ("example.org", "0", ["port"]),
        ("example.org", "65536", ["port"]),
        ("example.org", "http", ["port"]),
        ("-x-:y", "99999", ["server_name", "port"]),
    ],
)
def test_invalid_answers_are_reported_by_key_and_not_written(
    tmp_path, capsys, name, port, bad_keys
):
    config = tmp_path / "conduit.toml"

    assert run("check", "--template", EXAMPLE, "--", config, name, "127.0.0.1", port) == 1
    reported = capsys.readouterr().out
    assert reported.count("\n") == 1, "one line, for a debconf substitution"
    assert [problem.split(":")[0] for problem in reported.strip().split("; ")] == bad_keys

    assert write(config, name, "127.0.0.1", port) == 1
    assert not config.exists()


def test_valid_answers_pass_the_check_silently(tmp_path, capsys):
    config = tmp_path / "conduit.toml"
    assert run("check", "--template", EXAMPLE, config, "matrix.example.org:8448", "::", "1") == 0
    assert capsys.readouterr().out == ""


def test_a_mistake_already_in_the_admins_file_does_not_block_the_answers(tmp_path):
    config = tmp_path / "conduit.toml"
    write(config)
    config.write_text(config.read_text().replace('log = "warn"', "log = 3").replace("#log", "log"))

    assert write(config, "example.net") == 0
    assert 'server_name = "example.net"' in config.read_text()


def test_a_file_that_is_not_toml_is_left_alone(tmp_path, capsys):
    config = tmp_path / "conduit.toml"
    config.write_text("[global\n")

    assert write(config, "example.net") == 0
    assert config.read_text() == "[global\n"
    assert "not valid TOML" in capsys.readouterr().err


def test_get_prints_the_current_values_for_debconf(tmp_path, capsys):
    config = tmp_path / "conduit.toml"
    assert run("get", config, "server_name") == 0
    write(config, "example.org", "::1", "8448")
    for key in ("server_name", "address", "port", "registration_token"):
        run("get", config, key)

    assert capsys.readouterr().out.split("\n") == ["", "example.org", "::1", "8448", "", ""]
