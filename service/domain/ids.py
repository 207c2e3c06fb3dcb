"""Ids of the texts of one request or input file: given ids are kept, missing ones never collide.

The rule (shared by the API and the command line):

1. Given ids must be unique; a repeated one raises :class:`DuplicateIdError`.
2. A text without an id gets the string of its position (``first`` + index).
3. If another text was *given* that very string as its id, the text gets
   ``"<position>-<k>"`` instead, with the smallest ``k >= 1`` that is neither a
   given id nor an id assigned to an earlier text.

So every id of the answer is distinct, a given id is echoed unchanged, and a
default id only changes when it would otherwise have collided.
"""

from __future__ import annotations

from collections.abc import Sequence


class DuplicateIdError(ValueError):
    """The same id was given to two texts; ``.id`` is that id."""

    def __init__(self, duplicate: str) -> None:
        super().__init__(f"id {duplicate!r} is given to more than one text")
        self.id = duplicate


def assign_ids(given: Sequence[str | None], first: int = 0) -> list[str]:
    """The id of each text: ``given[i]`` when not ``None``, else a default that collides with none.

    ``first`` is the number of the first position (0 for the API's list
    indexes, 1 for the command line's row numbers). Raises
    :class:`DuplicateIdError` when two texts were given the same id.
    """
    taken: set[str] = set()
    for value in given:
        if value is None:
            continue
        if value in taken:
            raise DuplicateIdError(value)
        taken.add(value)
    ids: list[str] = []
    for position, value in enumerate(given, start=first):
        if value is not None:
            ids.append(value)
            continue
        candidate = str(position)
        suffix = 0
        while candidate in taken:
            suffix += 1
            candidate = f"{position}-{suffix}"
        taken.add(candidate)
        ids.append(candidate)
    return ids
