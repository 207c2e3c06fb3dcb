"""Reading files of texts (service.textfiles) and the id/text rules shared with the API."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain import input_rules
from service.textfiles import (
    IdIndex,
    ReadOptions,
    TextFileError,
    TextRecord,
    format_of,
    iter_rows,
    max_row_bytes,
    read_texts,
)


def jsonl(*items: object) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


# -- the shared rules ---------------------------------------------------------------


def test_a_missing_id_never_collides_with_a_given_one() -> None:
    assert input_rules.assign_ids([None, "0"]) == ["0#2", "0"]
    assert input_rules.assign_ids([None, "0", "0#2", None]) == ["0#3", "0", "0#2", "3"]
    assert input_rules.assign_ids(["a", None]) == ["a", "1"]


@given(st.lists(st.one_of(st.none(), st.sampled_from(["0", "1", "2", "0#2", "1#2", "x"])), max_size=12))
def test_assigned_ids_keep_given_ones_and_are_unique(given_ids: list[str | None]) -> None:
    given_unique = [g if g is None or given_ids.index(g) == i else None for i, g in enumerate(given_ids)]
    ids = input_rules.assign_ids(given_unique)
    assert len(set(ids)) == len(ids)
    assert all(g is None or g == i for g, i in zip(given_unique, ids, strict=True))


@pytest.mark.parametrize(
    "text",
    [" ", "\u3000\u2028\t", "", "x" * 100_001, "fine", "x" * 100_000],
)
def test_the_api_and_files_refuse_the_same_texts_with_the_same_reason(client, text: str) -> None:
    response = client.post("/v1/score", json={"texts": [{"id": "a", "text": text}]})
    from_file = read_texts(jsonl({"id": "a", "text": text}), "jsonl")
    if response.status_code == 200:
        assert from_file.errors == [] and [r.text for r in from_file.records] == [text]
    else:
        [api_error] = response.get_json()["errors"]
        [file_error] = from_file.errors
        assert (api_error["field"], file_error.field) == ("texts.0.text", "text")
        assert api_error["message"] == file_error.reason


@pytest.mark.parametrize("ids", [["a", "a"], ["x" * 257], [""]])
def test_the_api_and_files_refuse_the_same_ids(client, ids: list[str]) -> None:
    texts = [{"id": i, "text": "NATO"} for i in ids]
    assert client.post("/v1/score", json={"texts": texts}).status_code == 422
    result = read_texts(jsonl(*texts), "jsonl")
    assert result.records == [] and {e.field for e in result.errors} == {"id"}


# -- JSONL -------------------------------------------------------------------------


def test_jsonl_rows_and_errors_in_file_order() -> None:
    data = (
        b"\xef\xbb\xbf"
        + jsonl({"id": "2", "text": "a"}, {"text": "b"})
        + b"\n   \n"  # blank lines are skipped
        + b'{"text": "c", "text": "d"}\n'
        + b"[1]\n"
        + b'{"text": NaN}\n'
        + b'{"id": "x"}\n'
        + b'{"text": "caf\xe9"}\n'
        + jsonl({"id": None, "text": "e"})
    )
    result = read_texts(io.BytesIO(data), "jsonl")
    assert result.records == [TextRecord(1, "2", "a"), TextRecord(2, "2#2", "b")]
    assert [e.document() for e in result.errors] == [
        {"line": 5, "field": "row", "reason": "not JSON: key 'text' appears twice"},
        {"line": 6, "field": "row", "reason": "expected a JSON object with a 'text' field"},
        {"line": 7, "field": "row", "reason": "not JSON: NaN is not JSON"},
        {"line": 8, "field": "text", "reason": "Missing data for required field.", "id": "x"},
        {
            "line": 9,
            "field": "encoding",
            "reason": f"not UTF-8: byte 0xe9 at byte offset {data.index(b'caf') + 3} of the file",
        },
        {"line": 10, "field": "id", "reason": "Not a valid string (got null)."},
    ]


def test_a_huge_line_is_refused_without_being_held_in_memory() -> None:
    options = ReadOptions(max_text_chars=10_000)
    huge = b'{"text": "' + b"x" * (10 << 20) + b'"}\n'
    data = jsonl({"id": "before", "text": "a"}) + huge + jsonl({"id": "after", "text": "b"})
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        result = read_texts(stream, "jsonl", options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.id for r in result.records] == ["before", "after"]
    [error] = result.errors
    assert (error.line, error.field) == (2, "row")
    assert error.reason.startswith(f"row longer than {max_row_bytes(10_000)} bytes")
    assert peak < 4 * max_row_bytes(10_000) < len(huge) / 2


# -- CSV ---------------------------------------------------------------------------


def test_csv_is_read_strictly() -> None:
    data = (
        b"id,text,lang\r\n"
        b'1,"Quoted, with a comma and ""quotes""",en\r\n'  # 2
        b'2,"Over\r\ntwo lines",en\r\n'  # 3-4
        b"\r\n"  # 5: skipped
        b"3,NATO is not a threat to Russia, says the minister,en\r\n"  # 6: too many fields
        b"4,fine\r\n"  # 7: too few
        b'5,a 5" screen,en\r\n'  # 8: a quote inside a field is a character
        b",no id,en\r\n"  # 9
        b'7,"never closed,en\r\n'  # 10
    )
    result = read_texts(data, "csv")
    assert result.records == [
        TextRecord(2, "1", 'Quoted, with a comma and "quotes"'),
        TextRecord(3, "2", "Over\r\ntwo lines"),
        TextRecord(8, "5", 'a 5" screen'),
        TextRecord(9, "9", "no id"),
    ]
    assert [(e.line, e.field) for e in result.errors] == [(6, "row"), (7, "row"), (10, "row")]
    assert result.errors[0].reason.startswith("4 fields where the header has 3 (more)")
    assert result.errors[1].reason.startswith("2 fields where the header has 3 (fewer)")
    assert result.errors[2].reason == "not CSV: unexpected end of data"


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"", ReadOptions(), "empty"),
        (b"\n", ReadOptions(), "line 1: the header is blank"),
        (b"id,body\n", ReadOptions(), "no 'text' column (the header has: id, body)"),
        (b"id,text\n", ReadOptions(id_column="key"), "no 'key' column"),
        (b"text,text\n", ReadOptions(), "line 1: column 'text' appears twice"),
        (b"t\xe9xt\n", ReadOptions(), "line 1: not UTF-8: byte 0xe9 at byte offset 1"),
    ],
)
def test_csv_files_that_cannot_be_read_at_all(data: bytes, options: ReadOptions, message: str) -> None:
    with pytest.raises(TextFileError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        read_texts(data, "csv", options)


def test_other_columns_by_name() -> None:
    data = b"key,body\nk1,first\n,second\n"
    result = read_texts(data, "csv", ReadOptions(text_column="body", id_column="key"))
    assert result.records == [TextRecord(2, "k1", "first"), TextRecord(3, "3", "second")]


def test_a_part_of_a_file_reads_as_in_the_whole() -> None:
    data = b"id,text\n" + b"".join(f'{i},"row\n{i}"\n'.encode() for i in range(20))
    whole = list(iter_rows(io.BytesIO(data), "csv", ReadOptions()))
    start, stop = whole[5].offset, whole[12].offset
    part = list(iter_rows(io.BytesIO(data), "csv", ReadOptions(), start, stop, whole[5].line))
    assert part == whole[5:12]


def test_format_of() -> None:
    assert [format_of(n) for n in ("a.JSONL", "b.ndjson", "c.csv", "d.parquet")] == [
        "jsonl",
        "jsonl",
        "csv",
        "parquet",
    ]
    with pytest.raises(TextFileError, match="cannot tell the format"):
        format_of("notes.txt")


# -- Parquet -----------------------------------------------------------------------


def test_parquet_rows() -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", None, "a", "2"], "text": ["one", "two", " ", None]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)
    result = read_texts(buffer.getvalue(), "parquet")
    assert result.records == [TextRecord(2, "2#2", "two")]  # "2" is given, on a refused row
    assert [(e.line, e.field) for e in result.errors] == [(1, "id"), (3, "text"), (4, "text")]
    whole = list(iter_rows(io.BytesIO(buffer.getvalue()), "parquet", ReadOptions()))
    assert list(iter_rows(io.BytesIO(buffer.getvalue()), "parquet", ReadOptions(), 1, 3)) == whole[1:3]


def test_the_id_index_across_files_names_the_file() -> None:
    index = IdIndex()
    rows_a = list(iter_rows(io.BytesIO(jsonl({"id": "x", "text": "a"})), "jsonl", ReadOptions()))
    rows_b = list(
        iter_rows(io.BytesIO(jsonl({"text": "b"}, {"id": "x", "text": "c"})), "jsonl", ReadOptions())
    )
    for row in rows_a:
        index.add(row, "a.jsonl:")
    for row in rows_b:
        index.add(row, "b.jsonl:")
    assert index.finish(rows_b[0], "b.jsonl:") == TextRecord(1, "b.jsonl:1", "b")
    assert index.finish(rows_b[1], "b.jsonl:").reason.endswith("id 'x' is also on line a.jsonl:1.")


# -- progress ----------------------------------------------------------------------


def test_progress_writes_plain_lines_when_not_on_a_terminal() -> None:
    from service.progress import Progress

    stream = io.StringIO()
    quiet = Progress(10, stream, interval=3600)
    quiet.advance(5)
    assert stream.getvalue() == ""  # not before the interval
    quiet.close()
    chatty = Progress(10, stream, interval=0)
    chatty.advance(4)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("5/10 rows (50%), ") and " rows/s" in lines[0]
    assert lines[1].startswith("4/10 rows (40%), ") and lines[1].endswith(" left")
