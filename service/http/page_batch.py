"""Reading the many-texts upload of the web page with the command line's file rules.

Adapter over :func:`service.cli.read_texts` (the CLI's reader) until the shared
plain-Python reader of users' files lands; it keeps the CLI's whole-file rules
(UTF-8, a ``text`` column, one JSON object per line) and reports each row that
breaks a per-text rule (the API's: blank text, text or id too long, duplicate id)
with its row number, instead of scoring it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from marshmallow import ValidationError

from service.cli import InputFileError, read_texts
from service.config import Settings
from service.http.problems import flatten_messages
from service.http.schemas import TextInputSchema

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
"""File name endings the upload takes; the ending chooses the format, as for ``discourse score``."""

_TEXT_SCHEMA = TextInputSchema()


class BatchFileError(ValueError):
    """The uploaded file as a whole cannot be read; the message names the file and, if known, the line."""


def read_uploaded_texts(
    filename: str, data: bytes, settings: Settings
) -> tuple[list[tuple[int, str, str]], list[dict]]:
    """The ``(row, id, text)`` rows of an uploaded file, and the rows refused with their reasons.

    Each refused row is ``{"row": n, "id": ..., "message": ...}``. Raises
    :class:`BatchFileError` when the file as a whole is unusable (wrong ending,
    not UTF-8, no ``text`` column, a line that is not a JSON object).
    """
    name = os.path.basename(filename.replace("\\", "/")) or "upload"
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise BatchFileError(f"{name}: the file name must end in .csv or .jsonl (or .ndjson, .json)")
    with tempfile.TemporaryDirectory(prefix="discourse-upload-") as folder:
        path = Path(folder) / ("upload" + suffix)
        path.write_bytes(data)
        try:
            items = list(read_texts(path))
        except InputFileError as error:
            raise BatchFileError(str(error).replace(str(path), name)) from None
    rows: list[tuple[int, str, str]] = []
    refused: list[dict] = []
    seen: dict[str, int] = {}
    for number, (text_id, text) in enumerate(items, start=1):
        message = _row_problem(text_id, text, settings)
        if message is None and text_id in seen:
            message = f"id {text_id!r} is already used by row {seen[text_id]}"
        if message is not None:
            refused.append({"row": number, "id": text_id, "message": message})
            continue
        seen[text_id] = number
        rows.append((number, text_id, text))
    return rows, refused


def _row_problem(text_id: str, text: str, settings: Settings) -> str | None:
    try:
        _TEXT_SCHEMA.load({"id": text_id, "text": text})
    except ValidationError as error:
        return "; ".join(f"{e['field']}: {e['message']}" for e in flatten_messages(error.messages))
    if len(text) > settings.max_text_chars:
        return f"text: at most {settings.max_text_chars} characters per text (this one has {len(text)})"
    return None
