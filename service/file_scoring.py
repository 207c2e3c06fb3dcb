"""``discourse score``: score files of texts in this process, safely with the user's files.

Two passes over the input: the first checks every row (the API's rules, from
:mod:`service.textfiles`) and collects the ids, so that repeated ids are refused
and missing ids made unique before anything is written; the second scores the
valid rows in batches. Results and rejected rows are written to temporary files
beside their destinations and renamed into place when complete.

Exit status (also in ``discourse score --help`` and the README): 0 every row
scored; 1 an input, the model or the reference is unusable, or ``--strict``
met a rejected row (nothing written); 2 wrong usage, e.g. an output that is an
input; 3 done, but some rows were rejected (listed in the errors file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from service.config import Settings
from service.domain.errors import DiscourseError
from service.outputs import OutputError, atomic_text, refuse_inputs, same_file
from service.progress import Progress
from service.textfiles import (
    IdIndex,
    ReadOptions,
    RowError,
    TextFileError,
    TextRecord,
    format_of,
    iter_rows,
)

EXIT_OK = 0
EXIT_UNUSABLE = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
STDIN = "-"


class InputError(DiscourseError, ValueError):
    """An input cannot be read as a whole; the message names it."""


def read_options(args: argparse.Namespace) -> ReadOptions:
    """The reading options of ``discourse score``; the length limit is the API's setting."""
    return ReadOptions(args.text_column, args.id_column, Settings.from_env().max_text_chars)


def errors_path(out: Path) -> Path:
    """Where rejected rows go by default: beside ``out``, ``results.jsonl`` → ``results.errors.jsonl``."""
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.errors.jsonl")


def error_document(name: str, error: RowError) -> dict:
    """One line of the errors file: ``{"file", "line", "field", "reason"[, "id"]}``."""
    return {"file": name, **error.document()}


def score_file(args: argparse.Namespace, model_dir: Path) -> int:
    """Run ``discourse score FILE`` in this process; returns the exit status."""
    from service.runtime import load_runtime

    source = None if args.file == STDIN else Path(args.file)
    name = STDIN if source is None else str(source)
    try:
        fmt = args.input_format or ("jsonl" if source is None else format_of(source.name))
    except TextFileError as error:
        raise InputError(f"{name}: {error}; or give --format") from None
    for output, option in ((args.out, "--out"), (args.errors, "--errors")):
        if output is not None and output.is_dir():
            raise OutputError(f"{option} {output} is a folder (a folder is for --workers or --scheduler)")
    errors_out = args.errors or (errors_path(args.out) if args.out else None)
    if source is not None:
        for output, option in ((args.out, "--out"), (errors_out, "--errors")):
            if output is not None:
                refuse_inputs(output, [source], option)
    if args.out is not None and errors_out is not None and same_file(args.out, errors_out):
        raise OutputError(f"--errors {errors_out} is the same file as --out")
    options = read_options(args)
    runtime = load_runtime(model_dir, args.seeds)
    reference = runtime.scorer.reference(args.reference)

    with _opened(source) as stream:
        index, total, errors = _first_pass(stream, fmt, options, name, args.strict)
        if args.strict:
            first = _first_rejected(stream, fmt, options, index, errors)
            if first is not None:
                print(
                    f"discourse score: {name}, line {first.line}: {first.field}: {first.reason}",
                    file=sys.stderr,
                )
                print(
                    "discourse score: --strict: stopped at the first rejected row; nothing written",
                    file=sys.stderr,
                )
                return EXIT_UNUSABLE
        with ExitStack() as outputs:
            out = outputs.enter_context(atomic_text(args.out)) if args.out else sys.stdout
            rejected_out = outputs.enter_context(atomic_text(errors_out)) if errors_out else None
            progress = Progress(total)
            scored, rejected = 0, 0
            batch: list[TextRecord] = []
            for row in iter_rows(stream, fmt, options):
                final = index.finish(row)
                if isinstance(final, RowError):
                    rejected += 1
                    _report(final, name, rejected_out)
                    continue
                batch.append(final)
                if len(batch) == args.batch_size:
                    scored += _write_batch(
                        runtime.scorer, batch, reference.id, args.explain, args.format, out
                    )
                    progress.advance(len(batch))
                    batch = []
            if batch:
                scored += _write_batch(runtime.scorer, batch, reference.id, args.explain, args.format, out)
                progress.advance(len(batch))
            if total:
                progress.close()
    where = f" (listed in {errors_out})" if rejected and errors_out else ""
    print(f"discourse score: {scored} rows scored, {rejected} rejected{where}", file=sys.stderr)
    return EXIT_REJECTED if rejected else EXIT_OK


@contextmanager
def _opened(source: Path | None) -> Iterator[BinaryIO]:
    """The input as a seekable binary stream; standard input is spooled (memory, then disk)."""
    if source is None:
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            yield spool  # type: ignore[misc]
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise InputError(f"{source}: cannot be read ({error.strerror})") from None
    with handle:
        yield handle


def _first_pass(stream, fmt, options, name, strict) -> tuple[IdIndex, int, int]:
    """Check every row and note the ids: ``(index, rows to score at most, rows rejected)``."""
    index = IdIndex()
    total = errors = 0
    try:
        for row in iter_rows(stream, fmt, options):
            index.add(row)
            if isinstance(row, RowError):
                errors += 1
                if strict:
                    break
            else:
                total += 1
        total -= sum(len(lines) for lines in index.repeated.values())
    except TextFileError as error:
        raise InputError(f"{name}: {error}") from None
    return index, total, errors


def _first_rejected(stream, fmt, options, index: IdIndex, errors: int) -> RowError | None:
    """The first row the second pass would refuse, if any (for ``--strict``)."""
    if not errors and not index.repeated:
        return None
    for row in iter_rows(stream, fmt, options):
        final = index.finish(row)
        if isinstance(final, RowError):
            return final
    return None


def _report(error: RowError, name: str, out: TextIO | None) -> None:
    if out is None:
        print(f"discourse score: {name}, line {error.line}: {error.field}: {error.reason}", file=sys.stderr)
    else:
        out.write(json.dumps(error_document(name, error), ensure_ascii=False) + "\n")


def result_document(result) -> dict:
    """The JSON form of a :class:`service.domain.scorer.TextScore` (as the API returns it)."""
    document = dataclasses.asdict(result)
    if document["evidence"] is None:
        del document["evidence"]
    return document


def _write_batch(
    scorer, batch: list[TextRecord], reference_id: str, explain: bool, text_format: str, out: TextIO
) -> int:
    results = scorer.score(
        [r.text for r in batch],
        ids=[r.id for r in batch],
        reference_id=reference_id,
        explain=explain,
        formats=text_format,
    )
    for result in results:
        document = {"reference": reference_id, **result_document(result)}
        out.write(json.dumps(document, ensure_ascii=False) + "\n")
    return len(results)
