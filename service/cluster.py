"""``discourse score --workers N`` or ``--scheduler ADDRESS``: score a corpus on a Dask cluster.

The client plans the run (:func:`service.corpus.plan`), starts a local cluster
of ``N`` worker processes or connects to a running scheduler, submits one task
per partition that is not done yet, and records each finished part in the
manifest as it arrives, so that running the same command again resumes. Dask
reruns the partitions of a worker that dies on another worker (or on its
replacement); a partition's output does not depend on where it ran.

Needs the ``dask`` extra (``pip install -e '.[dask]'``); the service never imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from service.corpus import (
    MANIFEST_FORMAT,
    CorpusError,
    PartitionTask,
    expand_inputs,
    finished_parts,
    identity,
    plan,
    read_manifest,
    score_partition,
    sha256_file,
    write_manifest,
)
from service.file_scoring import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, read_options
from service.outputs import OutputError, atomic_text, same_file
from service.progress import Progress

# One BLAS thread per worker process: the processes are the parallelism.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def score_on_cluster(args: argparse.Namespace, model_dir: Path) -> int:
    """Run ``discourse score`` on Dask; returns the exit status (see :mod:`service.file_scoring`)."""
    from service.loaders.artifacts import CARD_FILE
    from service.loaders.runtime import load_runtime

    if args.out is None:
        raise OutputError("--out FOLDER is needed with --workers or --scheduler (part files go there)")
    if args.file == "-":
        raise OutputError("standard input cannot be split among workers: give a file, folder or glob")
    if args.errors is not None:
        raise OutputError("--errors: with --workers or --scheduler each part has its errors file in --out")
    out_dir: Path = args.out
    paths = expand_inputs(args.file)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file; with --workers or --scheduler it names a folder")
    for path in paths:
        if same_file(out_dir, path) or out_dir.resolve() in path.resolve().parents:
            raise OutputError(f"--out {out_dir} holds the input {path}: refusing to write among the inputs")

    options = read_options(args)
    runtime = load_runtime(model_dir, args.seeds)
    reference = runtime.scorer.reference(args.reference)
    model = {
        "id": runtime.model.model_id,
        "version": runtime.model.version,
        "sha256": sha256_file(model_dir / CARD_FILE),
        "files": runtime.model.card["files"],
    }
    del runtime  # the client scores nothing
    reference_document = {
        "id": reference.id,
        "sha256": hashlib.sha256(
            json.dumps(
                [reference.reference.body, [[c.id, c.text] for c in reference.claims]], ensure_ascii=False
            ).encode()
        ).hexdigest(),
    }
    settings = {
        "text_column": options.text_column,
        "id_column": options.id_column,
        "max_text_chars": options.max_text_chars,
        "partition_size": args.partition_size,
        "explain": args.explain,
        "format": args.input_format,
        "text_format": args.format,
    }
    size = sum(p.stat().st_size for p in paths)
    _say(f"reading {len(paths)} input file(s), {size / 1e6:.1f} MB: checking rows, cutting partitions")
    the_plan = plan(paths, options, args.partition_size, args.input_format)
    if args.strict and (the_plan.rejected_by_rules or the_plan.repeated):
        return _strict_stop(paths, options, the_plan, args.input_format)
    same_run = identity(the_plan, model, reference_document, settings)
    done = finished_parts(read_manifest(out_dir), same_run, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        **same_run,
        "rows": the_plan.rows,
        "parts": [_part_entry(p, the_plan, done.get(p.number)) for p in the_plan.partitions],
        "complete": False,
    }
    write_manifest(out_dir, manifest)
    todo = [p for p in the_plan.partitions if p.number not in done]
    if done:
        _say(f"resuming: {len(done)} of {len(the_plan.partitions)} parts are done and intact, kept")
    tasks = [
        PartitionTask(
            partition,
            the_plan.inputs[partition.input],
            the_plan.where(partition),
            {k: v for k, v in the_plan.repeated.items()},
            options,
            str(out_dir.resolve()),
            str(model_dir.resolve()),
            model["sha256"],
            str(Path(args.seeds).resolve()),
            reference.id,
            args.explain,
            args.batch_size,
            args.format,
        )
        for partition in todo
    ]
    if tasks:
        _run(args, tasks, manifest, out_dir)
    _remove_leftovers(out_dir)
    parts = manifest["parts"]
    rows = sum(p["rows"] for p in parts)
    errors = sum(p["errors"] for p in parts)
    manifest.update({"complete": True, "scored": rows, "rejected": errors})
    with atomic_text(out_dir / "errors.jsonl") as out:
        for part in parts:
            out.write((out_dir / part["errors_file"]).read_text(encoding="utf-8"))
    write_manifest(out_dir, manifest)
    where = f" (listed in {out_dir / 'errors.jsonl'})" if errors else ""
    _say(
        f"{rows} rows scored in {len(parts)} parts ({len(parts) - len(tasks)} kept from an earlier run), "
        f"{errors} rejected{where}"
    )
    return EXIT_REJECTED if errors else EXIT_OK


def _say(line: str) -> None:
    print(f"discourse score: {line}", file=sys.stderr, flush=True)


def _strict_stop(paths, options, the_plan, fmt) -> int:
    from service.corpus import _finish  # the same decision as the workers make

    for partition in the_plan.partitions:
        source = the_plan.inputs[partition.input]
        task = PartitionTask(
            partition,
            source,
            the_plan.where(partition),
            the_plan.repeated,
            options,
            "",
            "",
            "",
            "",
            "",
            False,
            1,
            "text",
        )
        from service.textfiles import RowError, iter_rows

        with open(source.path, "rb") as stream:
            rows = iter_rows(
                stream, source.format, options, partition.start, partition.stop, partition.first_line
            )
            for row in rows:
                final = _finish(row, task)
                if isinstance(final, RowError):
                    _say(f"{source.path}, line {final.line}: {final.field}: {final.reason}")
                    _say("--strict: stopped at the first rejected row; nothing written")
                    return EXIT_UNUSABLE
    return EXIT_UNUSABLE


def _part_entry(partition, the_plan, result: dict | None) -> dict:
    entry = {
        "part": partition.number,
        "file": f"{partition.name}.jsonl",
        "errors_file": f"{partition.name}.errors.jsonl",
        "input": the_plan.inputs[partition.input].path,
        "first_line": partition.first_line,
        "start": partition.start,
        "stop": partition.stop,
        "rows_read": partition.rows,
        "rows": None,
        "errors": None,
        "sha256": None,
        "errors_sha256": None,
    }
    if result is not None:
        entry.update({k: v for k, v in result.items() if k not in entry or entry[k] is None})
    return entry


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator:
    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise CorpusError(f"--scheduler {args.scheduler}: cannot connect ({error})") from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=_WORKER_ENV,
    )
    with cluster, Client(cluster) as client:
        yield client


def _run(args: argparse.Namespace, tasks: list[PartitionTask], manifest: dict, out_dir: Path) -> None:
    from dask.distributed import as_completed

    progress = Progress(sum(t.partition.rows for t in tasks))
    run_id = uuid.uuid4().hex[:8]
    with _client(args) as client:
        futures = [
            client.submit(score_partition, task, key=f"discourse-{task.partition.name}-{run_id}", pure=False)
            for task in tasks
        ]
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:
                for other in futures:
                    other.cancel()
                raise CorpusError(f"a partition failed: {type(error).__name__}: {error}") from None
            manifest["parts"][result.part].update(asdict(result))
            write_manifest(out_dir, manifest)
            progress.advance(result.rows + result.errors)
    progress.close()


def _remove_leftovers(out_dir: Path) -> None:
    """Temporary files of workers that died while writing (their parts ran again elsewhere)."""
    for leftover in out_dir.glob(".part-*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
