"""Integers written by clients as decimal text: ASCII digits only, bounded length.

`str.isdigit()` and `int()` both accept far more than a query parameter or a
token should hold: superscripts (`²`), other scripts' digits (`١٢٣`), and
numbers of any length (thousands of digits cost quadratic time and then fail
`int`'s digit limit). Every number a client writes as text goes through
`parse_decimal`, so each caller can answer a clear 400 instead of a 500.
"""

from __future__ import annotations

MAX_DIGITS = 18
"""Fits a signed 64-bit integer: every counter, limit and timestamp we use."""


def parse_decimal(text: str, *, signed: bool = False, max_digits: int = MAX_DIGITS) -> int | None:
    """The integer `text` spells in ASCII decimal, or None if it is anything else.

    `signed` admits one leading `-`. No `+`, spaces, underscores or exponent.
    """
    digits = text[1:] if signed and text.startswith("-") else text
    if not digits or len(digits) > max_digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)
