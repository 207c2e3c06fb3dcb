"""Scoring a corpus in partitions: the plan, the work of one partition, and the manifest.

Plain Python (no Dask import): :mod:`service.cluster` runs :func:`score_partition`
on Dask workers; the tests can run it anywhere.

A run reads its inputs once in the client (:func:`plan`): it hashes every file,
checks every row (the API's rules, :mod:`service.textfiles`), collects the ids
(so that repeated ids are refused and missing ids made unique across all
inputs) and cuts the rows into partitions of ``partition_size`` rows, each a
byte range of one file (a row range for Parquet). A partition task carries
only that range and a few ids, never texts or the model: each worker process
loads the model once from its artifact, checking its sha256 (:func:`worker_runtime`),
reads its range itself and writes ``part-NNNNN.jsonl`` (results) and
``part-NNNNN.errors.jsonl`` (rejected rows) into the output folder, each written
beside its destination and renamed when complete. The results of all parts, in
order, are exactly what ``discourse score`` writes in one process.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

from service.domain.errors import DiscourseError
from service.textfiles import (
    IdIndex,
    ReadOptions,
    RowError,
    TextFileError,
    TextRecord,
    TextRow,
    format_of,
    iter_rows,
)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_HASH_CHUNK = 1 << 20


class CorpusError(DiscourseError, ValueError):
    """The inputs or the output folder of a partitioned run cannot be used; the message says why."""


@dataclass(frozen=True)
class InputFile:
    """One input: its path, format, size in bytes and sha256."""

    path: str
    format: str
    bytes: int
    sha256: str
    rows: int = 0


@dataclass(frozen=True)
class Partition:
    """A range of rows of one input: ``start``/``stop`` are byte offsets (row indices for Parquet)."""

    number: int
    input: int
    start: int
    stop: int | None
    first_line: int
    rows: int
    # Ids made for the rows without one (line -> id), decided with all the inputs' ids in view.
    made_ids: dict[int, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"part-{self.number:05d}"


@dataclass
class Plan:
    """What a run will do: the inputs, their partitions, the ids that are refused as repeated."""

    inputs: list[InputFile]
    partitions: list[Partition]
    repeated: dict[str, list[str]]
    rows: int
    rejected_by_rules: int

    def where(self, partition: Partition) -> str:
        """The prefix of a line in ids and messages: the file name when there are several inputs."""
        return f"{self.inputs[partition.input].path}:" if len(self.inputs) > 1 else ""


@dataclass(frozen=True)
class PartitionTask:
    """Everything a worker needs for one partition, small enough for the task graph."""

    partition: Partition
    input: InputFile
    where: str
    repeated: dict[str, list[str]]
    options: ReadOptions
    out_dir: str
    model_dir: str
    model_sha256: str
    seeds_dir: str
    reference: str
    explain: bool
    batch_size: int
    text_format: str = "text"
    """How each text is read: text, html or markdown."""


@dataclass(frozen=True)
class PartResult:
    """What a finished partition reports back (and the manifest records)."""

    part: int
    file: str
    errors_file: str
    rows: int
    errors: int
    sha256: str
    errors_sha256: str
    worker: str
    pid: int
    seconds: float
    model_loads: int  # how many times this worker process has loaded a model: 1 when cached


def expand_inputs(spec: str) -> list[Path]:
    """The input files a command-line argument names: a file, a folder (its JSONL, CSV and
    Parquet files, not recursing) or a glob pattern; sorted by path.

    Raises :class:`CorpusError` when it names no readable file of a known format.
    """
    path = Path(spec)
    if path.is_dir():
        found = [p for p in sorted(path.iterdir()) if p.is_file() and _known(p.name)]
        if not found:
            raise CorpusError(f"{spec}: the folder holds no .jsonl, .csv or .parquet file")
        return found
    if path.is_file():
        return [path]
    if glob.has_magic(spec):
        found = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
        if not found:
            raise CorpusError(f"{spec}: no file matches")
        unknown = [str(p) for p in found if not _known(p.name)]
        if unknown:
            raise CorpusError(f"{unknown[0]}: cannot tell the format (use .jsonl, .csv or .parquet)")
        return found
    raise CorpusError(f"{spec}: no such file or folder")


def _known(name: str) -> bool:
    try:
        format_of(name)
    except TextFileError:
        return False
    return True


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def plan(paths: list[Path], options: ReadOptions, partition_size: int, fmt: str | None = None) -> Plan:
    """Read every input once: hash it, check its rows, note ids, cut partitions of ``partition_size``.

    Raises :class:`CorpusError` naming the file when one cannot be read at all.
    """
    inputs: list[InputFile] = []
    index = IdIndex()
    cuts: list[tuple[int, int, int, list[int], int]] = []  # input, start, first line, id-less lines, rows
    rows = rejected = 0
    several = len(paths) > 1
    for number, path in enumerate(paths):
        where = f"{path}:" if several else ""
        try:
            file_format = fmt or format_of(path.name)
            digest = sha256_file(path)
            size = path.stat().st_size
            count = 0
            with open(path, "rb") as stream:
                for row in iter_rows(stream, file_format, options):
                    if count % partition_size == 0:
                        cuts.append((number, row.offset, row.line, [], 0))
                    count += 1
                    index.add(row, where)
                    if isinstance(row, RowError):
                        rejected += 1
                    elif row.id is None:
                        cuts[-1][3].append(row.line)
                    cut = cuts[-1]
                    cuts[-1] = (cut[0], cut[1], cut[2], cut[3], cut[4] + 1)
        except TextFileError as error:
            raise CorpusError(f"{path}: {error}") from None
        except OSError as error:
            raise CorpusError(f"{path}: cannot be read ({error.strerror})") from None
        inputs.append(InputFile(str(path), file_format, size, digest, count))
        rows += count
    partitions = []
    for number, (input_number, start, first_line, id_less, count) in enumerate(cuts):
        following = cuts[number + 1] if number + 1 < len(cuts) else None
        stop = following[1] if following is not None and following[0] == input_number else None
        where = f"{paths[input_number]}:" if several else ""
        made = {
            # A row without an id is never refused: it gets a record.
            line: cast(TextRecord, index.finish(TextRow(line, None, ""), where)).id
            for line in id_less
        }
        partitions.append(Partition(number, input_number, start, stop, first_line, count, made))
    return Plan(inputs, partitions, index.repeated, rows, rejected)


# -- on the worker ---------------------------------------------------------------


_RUNTIMES: dict[tuple[str, str, str], object] = {}
_RUNTIMES_LOCK = threading.Lock()
_LOADS = [0]


def worker_runtime(model_dir: str, seeds_dir: str, model_sha256: str):
    """The runtime of this process for a model, loaded once and checked against ``model_sha256``
    (the sha256 of its ``card.json``, which pins the sha256 of every other file).

    Raises :class:`service.artifacts.ArtifactError` when the artifact on this
    machine is not the one the client planned with.
    """
    from service.artifacts import CARD_FILE, ArtifactError
    from service.runtime import load_runtime

    key = (model_dir, seeds_dir, model_sha256)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            card = Path(model_dir) / CARD_FILE
            actual = sha256_file(card)
            if actual != model_sha256:
                raise ArtifactError(
                    f"{card} on {socket.gethostname()}: sha256 {actual}, but the run uses {model_sha256}"
                )
            _RUNTIMES[key] = load_runtime(Path(model_dir), Path(seeds_dir))
            _LOADS[0] += 1
        return _RUNTIMES[key]


def score_partition(task: PartitionTask) -> PartResult:
    """Score one partition and write its part file and errors file; runs on a worker.

    Deterministic: the same task gives byte-identical files, wherever and
    however often it runs.
    """
    from service.file_scoring import result_document
    from service.outputs import atomic_text

    started = time.perf_counter()
    runtime = worker_runtime(task.model_dir, task.seeds_dir, task.model_sha256)
    scorer = runtime.scorer
    partition = task.partition
    out_dir = Path(task.out_dir)
    results_path = out_dir / f"{partition.name}.jsonl"
    errors_path = out_dir / f"{partition.name}.errors.jsonl"
    tag = f"{os.getpid()}"
    rows = errors = 0
    with (
        open(task.input.path, "rb") as stream,
        atomic_text(results_path, tag) as out,
        atomic_text(errors_path, tag) as rejected,
    ):
        batch: list[TextRecord] = []

        def flush() -> None:
            results = scorer.score(
                [r.text for r in batch],
                ids=[r.id for r in batch],
                reference_id=task.reference,
                explain=task.explain,
                formats=task.text_format,
            )
            for result in results:
                document = {"reference": task.reference, **result_document(result)}
                out.write(json.dumps(document, ensure_ascii=False) + "\n")
            batch.clear()

        source = iter_rows(
            stream, task.input.format, task.options, partition.start, partition.stop, partition.first_line
        )
        for row in source:
            final = _finish(row, task)
            if isinstance(final, RowError):
                errors += 1
                document = {"file": task.input.path, **final.document()}
                rejected.write(json.dumps(document, ensure_ascii=False) + "\n")
                continue
            batch.append(final)
            rows += 1
            if len(batch) == task.batch_size:
                flush()
        if batch:
            flush()
    return PartResult(
        partition.number,
        results_path.name,
        errors_path.name,
        rows,
        errors,
        sha256_file(results_path),
        sha256_file(errors_path),
        socket.gethostname(),
        os.getpid(),
        round(time.perf_counter() - started, 3),
        _LOADS[0],
    )


def _finish(row: TextRow | RowError, task: PartitionTask) -> TextRecord | RowError:
    """As :meth:`IdIndex.finish`, with the ids decided by the plan."""
    if isinstance(row, RowError):
        return row
    if row.id is None:
        return TextRecord(row.line, task.partition.made_ids[row.line], row.text)
    if row.id in task.repeated:
        index = IdIndex()
        index.repeated = {row.id: task.repeated[row.id]}
        return index.finish(row, task.where)
    return TextRecord(row.line, row.id, row.text)


# -- the manifest ----------------------------------------------------------------


def identity(plan_: Plan, model: dict, reference: dict, settings: dict) -> dict:
    """What makes two runs the same run: inputs (size, sha256), model, reference, settings."""
    return {
        "inputs": [asdict(i) for i in plan_.inputs],
        "model": model,
        "reference": reference,
        "settings": settings,
    }


def read_manifest(out_dir: Path) -> dict | None:
    """The manifest in ``out_dir``, or ``None`` when there is none."""
    path = out_dir / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CorpusError(
            f"{path}: unreadable manifest ({error}); remove the folder or choose another --out"
        ) from None


def finished_parts(manifest: dict | None, same_run: dict, out_dir: Path) -> dict[int, dict]:
    """The parts of an earlier run of the same command that are complete and intact (checked by sha256).

    Raises :class:`CorpusError` when ``out_dir`` holds another run's results
    or files that are not a run's.
    """
    if manifest is None:
        strangers = [p.name for p in out_dir.iterdir()] if out_dir.is_dir() else []
        if strangers:
            raise CorpusError(
                f"{out_dir}: not empty and holds no {MANIFEST} (e.g. {sorted(strangers)[0]}); "
                "choose an empty or new folder for --out"
            )
        return {}
    if manifest.get("format") != MANIFEST_FORMAT or {k: manifest.get(k) for k in same_run} != same_run:
        changed = [k for k in same_run if manifest.get(k) != same_run[k]]
        raise CorpusError(
            f"{out_dir} holds the results of another run (different {', '.join(changed) or 'format'}); "
            "choose another --out, or remove it to start again"
        )
    done = {}
    for part in manifest.get("parts", []):
        if part.get("sha256") is None:
            continue
        try:
            intact = sha256_file(out_dir / part["file"]) == part["sha256"] and (
                sha256_file(out_dir / part["errors_file"]) == part["errors_sha256"]
            )
        except OSError:
            intact = False
        if intact:
            done[part["part"]] = part
    return done


def write_manifest(out_dir: Path, manifest: dict) -> None:
    """Write ``manifest.json`` beside its destination and rename it into place."""
    from service.outputs import atomic_text

    with atomic_text(out_dir / MANIFEST) as out:
        out.write(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
