"""Hostile input for tests: JSON text Python's `json` would never write, and the server's log.

Issue 13: bodies nested a thousand levels deep, lone UTF-16 surrogates
(`\\ud800`, valid JSON syntax but no UTF-8 string), numbers no JSON holds
(`1e400`, 5000 digits). They are built as text, since `json.dumps` cannot
write most of them. `server_errors` collects what the server logs at ERROR:
a request that gets a clean 4xx must leave no traceback behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

FIVE_THOUSAND_DIGITS = "9" * 5000
"""More digits than `int()` converts (4300): a number only a careless parser chokes on."""
NESTING = 1000
LONE_SURROGATE = "\ud800"
"""`json.dumps` writes it as the escape `\\ud800`: valid JSON syntax, but no UTF-8
string, so no canonical JSON, no event and no response can hold it."""
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def json_array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def json_object_text(members: list[tuple[str, str]]) -> str:
    """A JSON object from (key, value) pairs that are JSON text already."""
    return "{" + ",".join(f"{key}:{value}" for key, value in members) + "}"


def hostile_json(
    leaves: list[str], keys: list[str], whole_bodies: list[str]
) -> st.SearchStrategy[str]:
    """JSON texts built from hostile `leaves` and `keys`: objects, arrays, nestings of
    both (at most 8 leaves), and the given `whole_bodies` (the deep ones) as they are."""
    values = st.recursive(
        st.sampled_from(leaves),
        lambda children: (
            st.lists(children, max_size=3).map(json_array)
            | st.lists(st.tuples(st.sampled_from(keys), children), max_size=4).map(json_object_text)
        ),
        max_leaves=8,
    )
    return st.one_of(
        st.lists(st.tuples(st.sampled_from(keys), values), min_size=1, max_size=5).map(
            json_object_text
        ),
        st.sampled_from(whole_bodies),
        values,
    )


DEEP_ARRAY = "[" * NESTING + "]" * NESTING
DEEP_OBJECT = '{"a":' * NESTING + "{}" + "}" * NESTING


class ErrorLog(logging.Handler):
    """Collects what the server logs at ERROR or above (tracebacks among it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]


@contextlib.contextmanager
def server_errors() -> Iterator[ErrorLog]:
    """What is logged at ERROR while the block runs (the shared server logs in-process)."""
    handler = ErrorLog()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextlib.contextmanager
def printable_log_records() -> Iterator[None]:
    """Log records whose text is valid UTF-8 while the block runs.

    A server that logs a client's lone surrogate (a regression of issue 13) would
    otherwise leave it in the test's captured log, which pytest-xdist cannot send
    from its worker: the whole run then stops with an INTERNALERROR instead of
    reporting the one failing test.
    """
    make_record = logging.getLogRecordFactory()

    def printable_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = _printable(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = _printable(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(printable_record)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make_record)


def no_error_in_the_server_log() -> Any:
    """A module's autouse fixture: each of its tests leaves no ERROR in the server's log.

    Issue 13: "Server log: no traceback for any of it".
    """

    @pytest.fixture(autouse=True, name="no_error_in_the_server_log")
    def fixture() -> Iterator[None]:
        with printable_log_records(), server_errors() as errors:
            yield
        logged = errors.lines()
        assert not logged, "the server logged:\n" + "\n".join(logged)

    return fixture
