"""Logging: the `log` setting is a level, or a comma list with `module=level` parts.

As in Conduit (`log = "warn,matrix_conduit.api=debug"`). Logs go to stderr,
where journald or the terminal picks them up; under journald (which stamps
each line itself) without a timestamp of their own.
"""

from __future__ import annotations

import logging
import re

import pytest

from matrix_conduit.config import ConfigError, build_config, parse_log_filter
from matrix_conduit.logs import setup_logging

MODULES = ["matrix_conduit.api", "matrix_conduit.service", "hypercorn.error"]


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """setup_logging configures the process's root logger; give it back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in MODULES}
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    yield
    handlers, level, module_levels = saved
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, module_level in module_levels.items():
        logging.getLogger(name).setLevel(module_level)


def log_one_of_each(logger_name: str) -> None:
    logger = logging.getLogger(logger_name)
    for level in ("debug", "info", "warning", "error"):
        getattr(logger, level)("%s %s message", logger_name, level)


def logged_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error", ["error"]),
        ("warn", ["warning", "error"]),
        ("info", ["info", "warning", "error"]),
        ("debug", ["debug", "info", "warning", "error"]),
        ("trace", ["debug", "info", "warning", "error"]),
        ("off", []),
    ],
)
def test_a_bare_level_sets_what_reaches_stderr(capsys, spec, expected):
    setup_logging(spec)
    log_one_of_each("matrix_conduit.service.rooms")
    assert [line.split()[-2] for line in logged_lines(capsys)] == expected


def test_module_parts_set_levels_for_those_modules_only(capsys):
    setup_logging("warn,matrix_conduit.api=debug,hypercorn.error=off")

    log_one_of_each("matrix_conduit.api.client")
    log_one_of_each("matrix_conduit.service")
    log_one_of_each("hypercorn.error")

    assert [" ".join(line.split()[-3:-1]) for line in logged_lines(capsys)] == [
        "matrix_conduit.api.client debug",
        "matrix_conduit.api.client info",
        "matrix_conduit.api.client warning",
        "matrix_conduit.api.client error",
        "matrix_conduit.service warning",
        "matrix_conduit.service error",
    ]


def test_lines_name_level_and_logger_with_a_timestamp_on_a_terminal(capsys):
    setup_logging("info")
    logging.getLogger("matrix_conduit.service").info("started")
    (line,) = logged_lines(capsys)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO matrix_conduit.service: started", line
    )


def test_under_journald_lines_carry_no_timestamp_of_their_own(capsys, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("info")
    logging.getLogger("matrix_conduit.service").info("started")
    assert logged_lines(capsys) == ["INFO matrix_conduit.service: started"]


@pytest.mark.parametrize(
    ("spec", "root", "modules"),
    [
        ("", logging.WARNING, {}),
        ("INFO", logging.INFO, {}),
        (" warn , matrix_conduit.api=debug ", logging.WARNING, {"matrix_conduit.api": 10}),
        ("matrix_conduit=info", logging.WARNING, {"matrix_conduit": logging.INFO}),
        ("error,a=warning,b=off", logging.ERROR, {"a": logging.WARNING, "b": 60}),
    ],
)
def test_log_filter_parts_are_read(spec, root, modules):
    assert parse_log_filter(spec) == (root, modules)


@pytest.mark.parametrize("spec", ["loud", "warn,matrix_conduit=verbose", "warn,matrix_conduit="])
def test_unknown_level_is_a_config_problem_naming_the_part(spec):
    with pytest.raises(ConfigError) as caught:
        build_config(
            {
                "server_name": "a.example",
                "database_backend": "leveldb",
                "database_path": "/x",
                "log": spec,
            }
        )
    (problem,) = caught.value.problems
    assert problem.startswith("log: unknown level ")
    assert "use one of debug, error, info, off, trace, warn, warning" in problem


def test_client_text_with_newlines_cannot_forge_a_log_line(capsys):
    setup_logging("info")
    logging.getLogger("matrix_conduit.service").warning(
        "report reason: %s", "spam\nERROR matrix_conduit: forged\r\x1b[2K"
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(r"report reason: spam\nERROR matrix_conduit: forged\r\x1b[2K")


def test_tracebacks_keep_their_lines(capsys):
    setup_logging("info")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("matrix_conduit.api").exception("failed")
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):\n" in err
