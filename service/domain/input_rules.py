"""The rules every submitted text and id must meet, shared by the HTTP API and the command line.

One place, so the two cannot drift: the marshmallow schemas of ``POST /v1/score``
call these functions, and so does :mod:`service.textfiles`, which reads files for
``discourse score`` and for uploads.

The rules:

- an id is a string of 1 to :data:`MAX_ID_CHARS` characters; ids are unique
  within a request (or a file, or all the files of a run);
- a text is a string with at least one character that is not whitespace
  (:data:`NOT_BLANK_PATTERN`) and at most ``max_text_chars`` characters
  (``Settings.max_text_chars``, 100,000 by default);
- a text without an id gets a default key: its index in a request (``"0"``,
  ``"1"``, …), its line number in a file. If a given id already equals that key,
  ``#2``, ``#3``, … is appended until it equals no given id. Default keys are
  distinct and contain no ``#``, so an id made this way can never collide with a
  given id nor with another made id (see :func:`default_id`).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

__all__ = [
    "BLANK_TEXT",
    "DUPLICATE_IDS",
    "MAX_ID_CHARS",
    "NOT_BLANK_PATTERN",
    "assign_ids",
    "default_id",
    "duplicate_ids",
    "id_problem",
    "is_blank",
    "text_problem",
]

MAX_ID_CHARS = 256
"""Longest id, in characters."""

# The characters str.isspace() counts as whitespace, written out so that the documented
# pattern means the same in the ECMA-262 dialect of OpenAPI and in Python (where `\s` differs).
_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = f"[^{_WHITESPACE}]"
"""A text must match this (unanchored): at least one character that is not whitespace."""
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)

BLANK_TEXT = "Must contain at least one non-whitespace character."
DUPLICATE_IDS = "Text ids must be unique within a request."


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a text id, or ``None`` when it can."""
    if not isinstance(value, str):
        return f"Not a valid string (got {_kind(value)})."
    if not 1 <= len(value) <= MAX_ID_CHARS:
        return f"Length must be between 1 and {MAX_ID_CHARS}."
    return None


def text_problem(value: object, max_text_chars: int) -> str | None:
    """Why ``value`` cannot be scored as a text, or ``None`` when it can.

    ``max_text_chars`` is the length limit in characters (Unicode code points).
    """
    if not isinstance(value, str):
        return f"Not a valid string (got {_kind(value)})."
    if len(value) > max_text_chars:
        return f"At most {max_text_chars} characters per text (this one has {len(value)})."
    if not _NOT_BLANK.search(value):
        return BLANK_TEXT
    return None


def is_blank(value: str) -> bool:
    """True when ``value`` has no character other than whitespace."""
    return _NOT_BLANK.search(value) is None


def duplicate_ids(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, each once, in order of their second occurrence."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for value in ids:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def default_id(key: str, given_ids: Container[str]) -> str:
    """The id of a text that has none: ``key`` (its index or line number, as a string).

    If a given id equals ``key``, the first of ``key#2``, ``key#3``, … that no
    given id equals. ``key`` must be unique among the texts without an id and
    contain no ``#``; then made ids never collide with given ones or each other.
    """
    if key not in given_ids:
        return key
    n = 2
    while f"{key}#{n}" in given_ids:
        n += 1
    return f"{key}#{n}"


def assign_ids(given: Iterable[str | None]) -> list[str]:
    """Ids for a request's texts: each given id, or the text's index made unique (:func:`default_id`).

    ``given`` holds each text's id, ``None`` where it has none; duplicates among
    the given ids are the caller's to refuse (:func:`duplicate_ids`).
    """
    values = list(given)
    taken = {value for value in values if value is not None}
    return [value if value is not None else default_id(str(i), taken) for i, value in enumerate(values)]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
