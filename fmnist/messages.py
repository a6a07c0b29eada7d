"""Turning exceptions into the one-line messages users see."""

from __future__ import annotations


class PlainError(Exception):
    """An error whose message is already the one line a user should read, with no type name."""


def failure_line(error: BaseException) -> str:
    """What a failed job says: a PlainError's message, else the error's type and first line."""
    if isinstance(error, PlainError):
        return first_line(error, limit=300)
    return f"{type(error).__name__}: {first_line(error)}"


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an error's message, or its type when it has none."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(error).__name__


def short(text: str, limit: int = 40) -> str:
    """Text from a file (a name, a key) as a quoted Python literal, cut short.

    One line with no control characters (``repr`` escapes them), and at most
    about ``limit`` characters however long the text or its escapes.
    """
    cut = text[:limit]
    while len(repr(cut)) > limit + 2:  # escapes take 2 to 10 characters each
        cut = cut[:-1]
    return repr(cut if cut == text else cut + "…")


def count(number: int, noun: str) -> str:
    """ "1 epoch", "6 epochs": a number with its noun, singular where it is one."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
