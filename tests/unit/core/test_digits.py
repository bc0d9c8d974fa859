"""Decimal text from clients: ASCII digits only, bounded length (`core/digits.py`).

Spec: `content/client-server-api/_index.md`, "Standard error response"
(`M_INVALID_PARAM`); the callers answer it when `parse_decimal` says None.
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.digits import MAX_DIGITS, parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0), ("42", 42), ("007", 7), ("9" * MAX_DIGITS, int("9" * 18))]
)
def test_ascii_decimal_numbers_are_read(text, expected):
    assert parse_decimal(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "²", "١٢٣", "１２", "1e3", "+1", " 1", "1 ", "1_000", "-", "-1", "9" * (MAX_DIGITS + 1)],
)
def test_anything_else_is_not_a_number(text):
    assert parse_decimal(text) is None


def test_signed_admits_one_leading_minus():
    assert parse_decimal("-5", signed=True) == -5
    assert parse_decimal("--5", signed=True) is None
    assert parse_decimal("-", signed=True) is None


def test_a_five_thousand_digit_number_is_refused_without_converting_it():
    assert parse_decimal("9" * 5000) is None
