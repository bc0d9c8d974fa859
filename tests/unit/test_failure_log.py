"""`logs.FailureLog`: a peer that stays down is one line, then a summary, not a flood.

Issue #17, "Observability": background tasks log each failure once with the
destination. The clock is the test's: no waiting.
"""

from __future__ import annotations

import logging

from matrix_conduit.logs import FailureLog

LOGGER = "tests.failure_log"


def failure_log(now: list[float]) -> FailureLog:
    return FailureLog(
        logging.getLogger(LOGGER), "federation to", interval=600, clock=lambda: now[0]
    )


def messages(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_the_first_failure_is_logged_with_its_reason_and_repeats_are_counted(caplog) -> None:
    now = [0.0]
    failures = failure_log(now)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for second in range(100):
            now[0] = float(second)
            failures.failed("b.example", "connection refused")
    ((level, line),) = messages(caplog)
    assert level == logging.WARNING
    assert "b.example" in line and "connection refused" in line


def test_a_failure_that_lasts_is_summarized_once_per_interval(caplog) -> None:
    now = [0.0]
    failures = failure_log(now)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        failures.failed("b.example", "refused")
        for second in range(1, 1300):
            now[0] = float(second)
            failures.failed("b.example", "timed out")
    lines = [line for _level, line in messages(caplog)]
    assert len(lines) == 3  # the first, then one summary at 600 s and one at 1200 s
    assert "still failing: 600 more failures" in lines[1] and "timed out" in lines[1]


def test_recovery_is_said_once_and_the_next_failure_is_news_again(caplog) -> None:
    now = [0.0]
    failures = failure_log(now)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        failures.recovered("b.example")  # never failed: nothing to say
        failures.failed("b.example", "refused")
        failures.failed("c.example", "refused")
        assert sorted(failures.failing()) == ["b.example", "c.example"]
        now[0] = 30.0
        failures.recovered("b.example")
        failures.recovered("b.example")
        failures.failed("b.example", "refused again")
    lines = messages(caplog)
    assert [level for level, _line in lines] == [
        logging.WARNING,
        logging.WARNING,
        logging.INFO,
        logging.WARNING,
    ]
    assert "works again after 30 s" in lines[2][1]
    assert "refused again" in lines[3][1]


def test_the_level_can_be_error_for_our_own_failures(caplog) -> None:
    failures = FailureLog(logging.getLogger(LOGGER), "cleanup task", level=logging.ERROR)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        failures.failed("purge", "RuntimeError('boom')")
    assert messages(caplog)[0][0] == logging.ERROR
