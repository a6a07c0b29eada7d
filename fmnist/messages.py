"""Turning exceptions into the one-line messages users see."""

from __future__ import annotations


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an error's message, or its type when it has none."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(error).__name__
