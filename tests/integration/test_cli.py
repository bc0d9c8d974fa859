"""The `matrix-conduit` command line: --version, --help, check-config, and a missing config.

Every failure an admin can cause ends with a message on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from matrix_conduit import __version__
from matrix_conduit.cli import main
from tests.support.process import run_command

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "conduit.toml"


@pytest.fixture(autouse=True)
def no_conduit_environment(monkeypatch):
    for name in os.environ:
        if name.startswith("CONDUIT_"):
            monkeypatch.delenv(name)


def run_main(capsys, *arguments: str) -> tuple[int, str, str]:
    """`matrix-conduit ARGUMENTS` in-process: (exit status, stdout, stderr)."""
    try:
        status = main(list(arguments))
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conduit.toml"
    path.write_text(text)
    return path


def test_version_prints_the_name_and_version(capsys):
    assert run_main(capsys, "--version") == (0, f"matrix-conduit {__version__}\n", "")


def test_help_explains_the_config_variable_and_the_commands(capsys):
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    for text in ("CONDUIT_CONFIG", "/etc/matrix-conduit/conduit.toml", "serve", "check-config"):
        assert text in out


def test_check_config_of_a_good_file_says_ok(capsys, tmp_path):
    path = write(
        tmp_path,
        '[global]\nserver_name = "example.org"\ndatabase_backend = "sqlite"\n'
        'database_path = "/srv/conduit"\n',
    )
    assert run_main(capsys, "check-config", str(path)) == (
        0,
        f"{path}: OK (server_name = example.org)\n",
        "",
    )


def test_check_config_accepts_the_shipped_example(capsys):
    status, out, _ = run_main(capsys, "check-config", str(EXAMPLE))
    assert (status, out) == (0, f"{EXAMPLE}: OK (server_name = your.server.name)\n")


def test_check_config_prints_every_problem_and_exits_1(capsys, tmp_path):
    path = write(
        tmp_path,
        '[global]\nserver_name = "not valid!"\ndatabase_path = "/srv"\nport = 70000\n'
        'registration_token = ""\nmax_request_size = "big"\n',
    )

    status, out, err = run_main(capsys, "check-config", str(path))

    assert (status, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == f"matrix-conduit: configuration problems in {path}:"
    assert sorted(line.split(":")[0] for line in lines[1:]) == [
        "  - database_backend",
        "  - max_request_size",
        "  - port",
        "  - registration_token",
        "  - server_name",
    ]


def test_check_config_without_a_path_reads_conduit_config(capsys, tmp_path, monkeypatch):
    path = write(tmp_path, '[global]\nserver_name = "example.org"\n')
    monkeypatch.setenv("CONDUIT_CONFIG", str(path))
    monkeypatch.setenv("CONDUIT_DATABASE_BACKEND", "leveldb")
    monkeypatch.setenv("CONDUIT_DATABASE_PATH", "/srv")

    status, out, _ = run_main(capsys, "check-config")

    assert (status, out) == (0, f"{path}: OK (server_name = example.org)\n")


@pytest.mark.parametrize("arguments", [(), ("check-config",)], ids=["serve", "check-config"])
def test_unset_conduit_config_exits_1_saying_what_to_set(capsys, arguments):
    status, out, err = run_main(capsys, *arguments)
    assert (status, out) == (1, "")
    assert "CONDUIT_CONFIG is not set" in err
    assert "CONDUIT_CONFIG=/etc/matrix-conduit/conduit.toml" in err


def test_check_config_of_a_missing_file_names_it(capsys, tmp_path):
    status, _, err = run_main(capsys, "check-config", str(tmp_path / "nope.toml"))
    assert status == 1
    assert f"config file {tmp_path / 'nope.toml'} does not exist" in err


@pytest.mark.slow
def test_the_real_command_without_conduit_config_exits_1_without_a_traceback():
    result = run_command()
    assert result.returncode == 1
    assert result.stderr.startswith("matrix-conduit: configuration problems:")
    assert "CONDUIT_CONFIG=/etc/matrix-conduit/conduit.toml" in result.stderr
    assert "Traceback" not in result.stderr
