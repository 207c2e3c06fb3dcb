"""Reading files of texts to score (JSONL, CSV, Parquet), checked row by row with the API's rules.

Plain Python over binary streams or bytes, no Flask: ``discourse score`` reads its
input files with it, on one machine or on Dask workers, and the web page reads
uploads with it. Every row either becomes a :class:`TextRecord` or a
:class:`RowError` that names its line and the reason; nothing is cut, dropped or
scored silently. The id and text rules themselves live in
:mod:`service.domain.input_rules`, shared with the HTTP schemas.

Formats:

- JSONL: one JSON object per line with a string ``text`` (or ``text_column``)
  and an optional string ``id`` (or ``id_column``); blank lines are skipped,
  other keys are ignored;
- CSV: a header row, then rows with exactly as many fields as the header
  (RFC 4180 quoting; a field with a comma, quote or line break must be quoted);
  an empty id cell means "no id"; other columns are ignored;
- Parquet (needs ``pyarrow``, in the ``dask`` extra): a string text column and
  an optional string id column (null means "no id"); "line" means row number.

Files must be UTF-8 (a byte order mark is allowed). Memory stays bounded: a
line (or CSV row) longer than :func:`max_row_bytes` is refused without being
held whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from service.domain import input_rules
from service.domain.errors import DiscourseError

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"
_MISSING = "Missing data for required field."


class TextFileError(DiscourseError, ValueError):
    """A whole file cannot be read (no text column, not the format, …); the message says why.

    The command line prefixes the file's name.
    """


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file.

    ``id_column=None`` reads ids from an ``id`` column or key when there is one;
    a name given explicitly must exist. ``max_text_chars`` is the API's limit
    (``Settings.max_text_chars``).
    """

    text_column: str = "text"
    id_column: str | None = None
    max_text_chars: int = 100_000

    @property
    def id_name(self) -> str:
        return "id" if self.id_column is None else self.id_column


@dataclass(frozen=True)
class TextRow:
    """A row that passed the per-row rules; ``id`` is ``None`` when the file gives none.

    ``line`` is the 1-based line where the row starts (row number for Parquet);
    ``offset`` its byte offset in the file (row index for Parquet).
    """

    line: int
    id: str | None
    text: str
    offset: int = 0


@dataclass(frozen=True)
class RowError:
    """A row that is not scored: its line, the field at fault, and why.

    ``field`` is ``text``, ``id``, ``row`` (the row as a whole: not JSON, wrong
    number of CSV fields, too long) or ``encoding`` (not UTF-8; ``reason`` gives
    the byte offset in the file).
    """

    line: int
    field: str
    reason: str
    id: str | None = None
    offset: int = 0

    def document(self) -> dict:
        """``{"line", "field", "reason"}`` plus ``"id"`` when the row had one (JSON-ready)."""
        document: dict = {"line": self.line, "field": self.field, "reason": self.reason}
        if self.id is not None:
            document["id"] = self.id
        return document


@dataclass(frozen=True)
class TextRecord:
    """A row ready to score: its line and its final id (given, or made by the default-id rule)."""

    line: int
    id: str
    text: str


@dataclass
class TextFile:
    """The result of :func:`read_texts`: the rows to score and the rows refused, each in file order."""

    records: list[TextRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def format_of(name: str) -> str:
    """The format a file name implies by its suffix: ``jsonl``, ``csv`` or ``parquet``.

    Raises :class:`TextFileError` for any other suffix.
    """
    lowered = name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    raise TextFileError(f"cannot tell the format from the name: use .jsonl, .csv or .parquet (got {name!r})")


def max_row_bytes(max_text_chars: int) -> int:
    """Longest line or CSV row, in bytes, that is read: room for a text at the limit written
    with JSON escapes (up to 12 bytes per character) plus 1 MiB for the other fields."""
    return 12 * max_text_chars + (1 << 20)


def read_texts(data: bytes | BinaryIO, fmt: str, options: ReadOptions | None = None) -> TextFile:
    """Read a whole file (bytes or a binary stream) into records to score and row errors.

    ``fmt`` is ``jsonl``, ``csv`` or ``parquet`` (see :func:`format_of`). Ids are
    checked across the file: every row of a repeated id is refused, and rows
    without an id get their line number as id unless a given id equals it
    (:func:`service.domain.input_rules.default_id`). Raises
    :class:`TextFileError` when the file as a whole cannot be read. Everything
    is held in memory: for large files use :func:`iter_rows` and :class:`IdIndex`.
    """
    options = options or ReadOptions()
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    rows = list(iter_rows(stream, fmt, options))
    index = IdIndex.of(rows)
    result = TextFile()
    for row in rows:
        final = index.finish(row)
        if isinstance(final, TextRecord):
            result.records.append(final)
        else:
            result.errors.append(final)
    return result


class IdIndex:
    """The ids a file (or several) gives, to refuse repeated ones and make default ids.

    Built in a first pass (:meth:`add` for every row), used in the second
    (:meth:`finish`). Holds each given id once (about 100 bytes per row).
    """

    def __init__(self) -> None:
        self.first_line: dict[str, str] = {}
        self.repeated: dict[str, list[str]] = {}

    @classmethod
    def of(cls, rows: Iterable[TextRow | RowError], where: str = "") -> IdIndex:
        index = cls()
        for row in rows:
            index.add(row, where)
        return index

    def add(self, row: TextRow | RowError, where: str = "") -> None:
        """Note the id of ``row``; ``where`` prefixes its line (a file name when there are several)."""
        if row.id is None:  # a refused row's valid id counts too: fixing the row changes no other id
            return
        place = f"{where}{row.line}"
        first = self.first_line.setdefault(row.id, place)
        if first != place:
            self.repeated.setdefault(row.id, [first]).append(place)

    def finish(self, row: TextRow | RowError, where: str = "") -> TextRecord | RowError:
        """The record to score for ``row``, or the error that refuses it.

        A row without an id gets ``where`` + its line number, made unique
        against the given ids; a row whose id is repeated is refused, naming
        the other lines.
        """
        if isinstance(row, RowError):
            return row
        if row.id is None:
            return TextRecord(
                row.line, input_rules.default_id(f"{where}{row.line}", self.first_line), row.text
            )
        if row.id in self.repeated:
            place = f"{where}{row.line}"
            others = ", ".join(p for p in self.repeated[row.id] if p != place)
            reason = f"Text ids must be unique: id {row.id!r} is also on line {others}."
            return RowError(row.line, "id", reason, row.id, row.offset)
        return TextRecord(row.line, row.id, row.text)


def iter_rows(
    stream: BinaryIO,
    fmt: str,
    options: ReadOptions,
    start: int = 0,
    stop: int | None = None,
    first_line: int = 1,
) -> Iterator[TextRow | RowError]:
    """Yield each row of a file in order, checked by the per-row rules (not yet the id rules).

    ``start``/``stop`` (byte offsets of row starts, or row indices for Parquet)
    and ``first_line`` (the line number at ``start``) read a part of a file, as
    the offsets of the rows of a full read give them. Raises
    :class:`TextFileError` when the file cannot be read at all.
    """
    if fmt == "jsonl":
        yield from _jsonl_rows(stream, options, start, stop, first_line)
    elif fmt == "csv":
        yield from _csv_rows(stream, options, start, stop, first_line)
    elif fmt == "parquet":
        yield from _parquet_rows(stream, options, start, stop)
    else:
        raise TextFileError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


# -- lines --------------------------------------------------------------------------


def _lines(
    stream: BinaryIO, limit: int, start: int, stop: int | None
) -> Iterator[tuple[int, bytes | None, int, int]]:
    """Yield ``(offset, line, quotes, size)`` for each line from ``start`` to ``stop``.

    ``line`` is ``None`` for a line over ``limit`` bytes, which is read in
    chunks and never held whole; ``quotes`` counts its ``"`` bytes either way.
    """
    stream.seek(start)
    offset = start
    while stop is None or offset < stop:
        line = stream.readline(limit + 1)
        if not line:
            return
        if offset == 0 and line.startswith(_BOM):
            line = line[len(_BOM) :]
            offset += len(_BOM)
        size, quotes = len(line), line.count(b'"')
        if size > limit:
            while not line.endswith(b"\n"):
                line = stream.readline(1 << 20)
                if not line:
                    break
                size += len(line)
                quotes += line.count(b'"')
            yield offset, None, quotes, size
        else:
            yield offset, line, quotes, size
        offset += size


def _encoding_error(
    raw: bytes, offset: int, line: int, error: UnicodeDecodeError, row_offset: int | None = None
) -> RowError:
    """The error of a line that is not UTF-8 at ``offset`` (of a row starting at ``row_offset``)."""
    position = offset + error.start
    reason = f"not UTF-8: byte 0x{raw[error.start]:02x} at byte offset {position} of the file"
    return RowError(line, "encoding", reason, None, offset if row_offset is None else row_offset)


def _too_long(line: int, offset: int, options: ReadOptions) -> RowError:
    limit = max_row_bytes(options.max_text_chars)
    reason = (
        f"row longer than {limit} bytes: its text cannot be within the limit of "
        f"{options.max_text_chars} characters"
    )
    return RowError(line, "row", reason, None, offset)


def _checked(line: int, offset: int, text: object, id_: object, has_id: bool, options: ReadOptions):
    """The row, or the error of its id or text (the API's rules)."""
    if has_id:
        problem = input_rules.id_problem(id_)
        if problem:
            return RowError(line, "id", problem, None, offset)
    # Past the id check a given id is a string.
    given = id_ if has_id and isinstance(id_, str) else None
    if text is _ABSENT:
        return RowError(line, "text", _MISSING, given, offset)
    problem = input_rules.text_problem(text, options.max_text_chars)
    if problem:
        return RowError(line, "text", problem, given, offset)
    return TextRow(line, given, text, offset)  # type: ignore[arg-type]


_ABSENT = object()


# -- JSONL --------------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice")
            seen.add(key)
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _jsonl_rows(stream, options, start, stop, first_line) -> Iterator[TextRow | RowError]:
    limit = max_row_bytes(options.max_text_chars)
    for line, (offset, raw, _, _) in enumerate(_lines(stream, limit, start, stop), start=first_line):
        if raw is None:
            yield _too_long(line, offset, options)
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield _encoding_error(raw, offset, line, error)
            continue
        if not decoded.strip():
            continue
        try:
            item = json.loads(decoded, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            yield RowError(line, "row", f"not JSON: {error.msg} at column {error.colno}", None, offset)
            continue
        except ValueError as error:
            yield RowError(line, "row", f"not JSON: {error}", None, offset)
            continue
        if not isinstance(item, dict):
            reason = f"expected a JSON object with a {options.text_column!r} field"
            yield RowError(line, "row", reason, None, offset)
            continue
        has_id = options.id_name in item
        text = item.get(options.text_column, _ABSENT)
        yield _checked(line, offset, text, item.get(options.id_name), has_id, options)


# -- CSV ----------------------------------------------------------------------------


_QUOTED = re.compile(rb'(?:[^"]++|"")*+')


def _ends_in_quotes(line: bytes, in_quotes: bool) -> bool:
    """Whether a CSV line ends inside a quoted field (so the row goes on), from the state at its start.

    A quote opens a quoted field only at the start of a field; inside one, ``""``
    is a quote. A quote elsewhere is a plain character, as for the csv module.
    """
    if not in_quotes and b'"' not in line:
        return False
    position, end = 0, len(line)
    while True:
        if in_quotes:
            position = _QUOTED.match(line, position).end()  # type: ignore[union-attr]  # matches ''
            if position >= end:
                return True
            in_quotes = False
            position += 1  # the closing quote
        elif line.startswith(b'"', position):
            in_quotes = True
            position += 1
            continue
        comma = line.find(b",", position)
        if comma < 0:
            return False
        position = comma + 1


def _records(stream, limit, start, stop) -> Iterator[tuple[int, int, list[bytes] | None, int]]:
    """Group physical lines into CSV records (a quoted field may hold line breaks).

    Yields ``(offset, n_lines, lines, size)``; ``lines`` is ``None`` when the
    record is over ``limit`` bytes (then it is not kept).
    """
    lines: list[bytes] | None = []
    size = n_lines = 0
    in_quotes = False
    record_offset = start
    for offset, raw, _, line_size in _lines(stream, limit, start, stop):
        if n_lines == 0:
            record_offset = offset
        n_lines += 1
        size += line_size
        if raw is None or lines is None or size > limit:
            lines = None  # too long: forget what was kept, read on to the row's end
            in_quotes = in_quotes if raw is None else _ends_in_quotes(raw, in_quotes)
        else:
            lines.append(raw)
            in_quotes = _ends_in_quotes(raw, in_quotes)
        if in_quotes:
            continue
        yield record_offset, n_lines, lines, size
        lines, size, n_lines = [], 0, 0
    if n_lines:
        yield record_offset, n_lines, lines, size


def _decode_lines(lines: list[bytes], offset: int, line: int) -> list[str] | RowError:
    decoded = []
    row_offset = offset
    for n, raw in enumerate(lines):
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            return _encoding_error(raw, offset, line + n, error, row_offset)
        offset += len(raw)
    return decoded


def _parse_record(decoded: list[str], line: int, n_lines: int, offset: int) -> list[str] | RowError:
    try:
        rows = list(csv.reader(decoded, strict=True))
    except csv.Error as error:
        return RowError(line, "row", f"not CSV: {error}", None, offset)
    if len(rows) != 1:
        reason = f"lines {line}-{line + n_lines - 1} do not form one row (a stray quote?)"
        return RowError(line, "row", reason, None, offset)
    return rows[0]


def _csv_header(stream, options: ReadOptions) -> tuple[list[str], int, int]:
    """The header's fields, the byte offset after it and the number of lines it spans."""
    limit = max_row_bytes(options.max_text_chars)
    for offset, n_lines, lines, size in _records(stream, limit, 0, None):
        if lines is None:
            raise TextFileError(f"line 1: the header is longer than {limit} bytes")
        if not b"".join(lines).strip():
            raise TextFileError("line 1: the header is blank (a CSV file starts with its column names)")
        decoded = _decode_lines(lines, offset, 1)
        if isinstance(decoded, RowError):
            raise TextFileError(f"line {decoded.line}: {decoded.reason}")
        header = _parse_record(decoded, 1, n_lines, offset)
        if isinstance(header, RowError):
            raise TextFileError(f"line 1: {header.reason}")
        repeated = input_rules.duplicate_ids(header)
        if repeated:
            raise TextFileError(f"line 1: column {repeated[0]!r} appears twice in the header")
        if options.text_column not in header:
            raise TextFileError(f"no {options.text_column!r} column (the header has: {', '.join(header)})")
        if options.id_column is not None and options.id_column not in header:
            raise TextFileError(f"no {options.id_column!r} column (the header has: {', '.join(header)})")
        return header, offset + size, n_lines
    raise TextFileError("empty: a CSV file starts with a header of column names")


def _csv_rows(stream, options, start, stop, first_line) -> Iterator[TextRow | RowError]:
    stream.seek(0)
    header, body_start, header_lines = _csv_header(stream, options)
    if not start:
        start, first_line = body_start, 1 + header_lines
    text_at = header.index(options.text_column)
    id_at = header.index(options.id_name) if options.id_name in header else None
    limit = max_row_bytes(options.max_text_chars)
    line = first_line
    for offset, n_lines, lines, _ in _records(stream, limit, start, stop):
        here, line = line, line + n_lines
        if lines is None:
            yield _too_long(here, offset, options)
            continue
        if not b"".join(lines).strip(b"\r\n"):
            continue  # an empty line between rows
        decoded = _decode_lines(lines, offset, here)
        if isinstance(decoded, RowError):
            yield decoded
            continue
        fields_ = _parse_record(decoded, here, n_lines, offset)
        if isinstance(fields_, RowError):
            yield fields_
            continue
        if len(fields_) != len(header):
            more = "more" if len(fields_) > len(header) else "fewer"
            reason = (
                f"{len(fields_)} fields where the header has {len(header)} ({more}); "
                "a field with a comma, quote or line break must be quoted"
            )
            yield RowError(here, "row", reason, None, offset)
            continue
        id_ = fields_[id_at] if id_at is not None else ""
        yield _checked(here, offset, fields_[text_at], id_, id_ != "", options)


# -- Parquet ------------------------------------------------------------------------


def parquet_row_count(stream: BinaryIO) -> int:
    """Number of rows of a Parquet file (from its footer)."""
    parquet = _pyarrow_parquet()
    try:
        return parquet.ParquetFile(stream).metadata.num_rows
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise TextFileError(f"not a Parquet file ({error})") from None


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise TextFileError("reading Parquet needs pyarrow: pip install -e '.[dask]'") from None
    return parquet


def _parquet_rows(stream, options, start, stop) -> Iterator[TextRow | RowError]:
    parquet = _pyarrow_parquet()
    try:
        source = parquet.ParquetFile(stream)
    except Exception as error:  # see parquet_row_count
        raise TextFileError(f"not a Parquet file ({error})") from None
    names = source.schema_arrow.names
    if options.text_column not in names:
        raise TextFileError(f"no {options.text_column!r} column (the file has: {', '.join(names)})")
    if options.id_column is not None and options.id_column not in names:
        raise TextFileError(f"no {options.id_column!r} column (the file has: {', '.join(names)})")
    columns = [options.text_column] + ([options.id_name] if options.id_name in names else [])
    stop = source.metadata.num_rows if stop is None else stop
    first = 0
    for group in range(source.num_row_groups):
        count = source.metadata.row_group(group).num_rows
        if first + count > start and first < stop:
            table = source.read_row_group(group, columns=columns).to_pydict()
            texts = table[options.text_column]
            ids = table.get(options.id_name, [None] * count)
            for i in range(max(start - first, 0), min(stop - first, count)):
                index = first + i
                text = _ABSENT if texts[i] is None else texts[i]
                yield _checked(index + 1, index, text, ids[i], ids[i] is not None, options)
        first += count
