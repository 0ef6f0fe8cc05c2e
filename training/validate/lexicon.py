"""The contract's notions of whitespace and printable characters, spelled for polars.

`recsvc.domain.contract.check_value` uses Python's `re`, `str.strip`, `str.isprintable` and `float`.
Their notions of whitespace and printable characters are Unicode-wide (and not quite the same as
Rust's), so the character classes here are built from Python itself and the polars expressions
match the service value for value. Digits are ASCII only (a contract decision).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from recsvc.domain import contract


@dataclass(frozen=True, slots=True)
class Lexicon:
    whitespace: str  # what `str.strip()` and `re`'s \s treat as whitespace
    blank_pattern: str  # only such whitespace: `raw.strip() == ""`
    number_whitespace: str  # what `float()` strips: not the ASCII separators \x1c..\x1f
    integer_pattern: str
    float_pattern: str
    unprintable_pattern: str  # a character `str.isprintable()` refuses


@functools.cache
def lexicon() -> Lexicon:
    chars = [chr(code) for code in range(sys.maxunicode + 1)]
    whitespace = "".join(ch for ch in chars if ch.isspace())
    space_class = char_class(whitespace)

    def python_regex(pattern: str) -> str:
        return pattern.replace(r"\s", space_class)

    return Lexicon(
        whitespace=whitespace,
        blank_pattern=f"^{space_class}*$",
        number_whitespace="".join(ch for ch in whitespace if ch not in "\x1c\x1d\x1e\x1f"),
        integer_pattern=python_regex(contract.INTEGER_PATTERN),
        float_pattern=python_regex(contract.FLOAT_PATTERN),
        unprintable_pattern=char_class(ch for ch in chars if not ch.isprintable()),
    )


def char_class(chars: Iterable[str]) -> str:
    """A regex character class of exactly `chars`, as code point ranges."""
    codes = sorted({ord(ch) for ch in chars})
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = (f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return "[" + "".join(parts) + "]"


def number_text(text: pl.Expr) -> pl.Expr:
    """The text `float()` would read: its whitespace stripped (null stays null)."""
    return text.str.strip_chars(lexicon().number_whitespace)


def strip(text: pl.Expr) -> pl.Expr:
    """`str.strip()`: Python's whitespace removed from both ends."""
    return text.str.strip_chars(lexicon().whitespace)
