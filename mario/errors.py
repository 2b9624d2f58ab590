"""Helpers for error messages that stay one short line whatever the input was."""

from __future__ import annotations

from typing import Any

#: Characters of a value that an error message quotes; the rest is elided.
SHOWN = 60
#: Characters of a path that a message quotes.
PATH_SHOWN = 300


def brief(value: Any, limit: int = SHOWN) -> str:
    """``repr(value)`` in at most ``limit`` characters, never expanded: a 50 MB string is
    cut, a (possibly self-referencing, alias-bombed) YAML list or mapping is named by its
    type and length, a huge integer by its digit count."""
    if isinstance(value, list | tuple | dict | set):
        return f"<a {type(value).__name__} of {len(value)} items>"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 190:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    text = repr(value[: 2 * limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def brief_path(path: Any) -> str:
    """A path for a message: whole (paths are short), or cut to :data:`PATH_SHOWN` characters
    when huge."""
    text = str(path)
    return text if len(text) <= PATH_SHOWN else text[: PATH_SHOWN - 1] + "…"


def first_line(error: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none (torch's and
    YAML's messages run to many lines; a message quotes the first)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
