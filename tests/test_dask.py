"""``discourse score`` on a real local Dask cluster of 2 worker processes: the same output as one
process, scored in the workers, a killed worker's partitions rerun, and resumed runs."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from service.cli import main
from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
from service.corpus import (
    PartitionTask,
    expand_inputs,
    plan,
    score_partition,
    sha256_file,
)
from service.textfiles import ReadOptions

DISCOURSE = str(Path(sys.executable).with_name("discourse"))
WORDS = (
    "NATO expansion threatens Russia security China Eurasian architecture alliance treaty summit "
    "minister talks sanctions border troops defence cooperation order Atlantic Europe war peace "
    "soup garden football recipe market festival music weather holiday film"
).split()


def corpus_rows(n: int) -> list[list[str]]:
    """``n`` CSV rows ``[id, text]`` of about 400 characters, with every kind of problem sprinkled in."""
    rows = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * (i % 5 + 1)) % len(WORDS)] for k in range(60)]
        text = f"Row {i}. " + " ".join(words) + "."
        row_id = "" if i % 4 == 0 else f"doc-{i}"
        rows.append([row_id, text])
    rows[10] = ["doc-blank", "   "]  # blank text
    rows[20] = ["doc-7", rows[20][1]]  # the id of row 7 again
    if n > 32:
        rows[30] = ["34", rows[30][1]]  # the line number of row 32, which has no id: it gets "34#2"
    return rows


def write_corpus(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(corpus_rows(n))
        handle.write("doc-extra,two fields,and a third\n")  # wrong number of fields
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CSV corpus and what one process makes of it: (input, results, errors)."""
    root = tmp_path_factory.mktemp("corpus")
    source = write_corpus(root / "corpus.csv", 1200)
    out = root / "single.jsonl"
    assert main(["score", str(source), "--out", str(out)]) == 3
    return source, out, root / "single.errors.jsonl"


def parts_of(folder: Path, kind: str = "") -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(f"part-?????{kind}.jsonl")))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_two_workers_give_the_single_process_output_and_a_rerun_rescores_nothing(
    corpus: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, single, single_errors = corpus
    out = tmp_path / "run"
    argv = ["score", str(source), "--workers", "2", "--out", str(out), "--partition-size", "100"]
    assert main(argv) == 3  # rows were rejected, as in one process
    assert parts_of(out) == single.read_bytes()
    assert parts_of(out, ".errors") == (out / "errors.jsonl").read_bytes() == single_errors.read_bytes()

    manifest = manifest_of(out)
    parts = manifest["parts"]
    assert len(parts) == 13 and manifest["complete"] is True
    assert manifest["scored"] == len(single.read_text().splitlines())
    assert manifest["inputs"] == [
        {
            "path": str(source),
            "format": "csv",
            "bytes": source.stat().st_size,
            "sha256": sha256_file(source),
            "rows": 1201,
        }
    ]
    assert manifest["model"]["sha256"] == sha256_file(DEFAULT_MODEL_DIR / "card.json")
    assert manifest["settings"]["partition_size"] == 100
    for part in parts:
        assert part["sha256"] == sha256_file(out / part["file"])
        assert part["rows"] + part["errors"] == part["rows_read"]
    pids = {part["pid"] for part in parts}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, neither of them us
    assert {part["model_loads"] for part in parts} == {1}  # each loaded the model once

    # The same command again: every part is checked and kept, none is written again.
    files = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*")}
    capsys.readouterr()
    assert main(argv) == 3
    assert "13 of 13 parts are done and intact, kept" in capsys.readouterr().err
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*")} == files
    assert [p["pid"] for p in manifest_of(out)["parts"]] == [p["pid"] for p in parts]

    # A lost part and a damaged one are scored again, and only they.
    (out / "part-00003.jsonl").unlink()
    with open(out / "part-00007.jsonl", "a", encoding="utf-8") as damaged:
        damaged.write("{}\n")
    assert main(argv) == 3
    assert "11 of 13 parts are done and intact, kept" in capsys.readouterr().err
    again = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*")}
    changed = {name for name in files if again.get(name) != files[name]}
    assert changed == {
        "part-00003.jsonl",
        "part-00003.errors.jsonl",
        "part-00007.jsonl",
        "part-00007.errors.jsonl",
    }
    assert parts_of(out) == single.read_bytes()


@pytest.mark.slow
def test_a_killed_worker_s_partitions_run_again_with_identical_output(
    corpus: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, single, _ = corpus
    out = tmp_path / "run"
    command = [DISCOURSE, "score", str(source), "--workers", "2", "--out", str(out), "--partition-size", "40"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 90
    while victim is None and process.poll() is None and time.monotonic() < deadline:
        # A part being written is a temporary file named after the writing process:
        # .part-NNNNN.jsonl.<pid>.XXXX.tmp. Kill that worker once some parts are done.
        done = manifest_of(out)["parts"] if (out / "manifest.json").exists() else []
        writing = list(out.glob(".part-?????.jsonl.*.tmp")) if out.exists() else []
        if writing and sum(1 for p in done if p["sha256"]) >= 2:
            name = writing[0].name
            victim = (int(name.split(".")[3]), name[1:11])
            try:
                os.kill(victim[0], signal.SIGKILL)
                time.sleep(0.3)
            except ProcessLookupError:
                pass
            if not writing[0].exists():  # it finished that part just before: try again
                victim = None
        time.sleep(0.02)
    _, err = process.communicate(timeout=180)
    assert victim is not None, f"no part was caught being written: {err}"
    assert process.returncode == 3, err
    assert parts_of(out) == single.read_bytes()
    manifest = manifest_of(out)
    killed_part = next(p for p in manifest["parts"] if p["file"].startswith(victim[1]))
    assert killed_part["pid"] != victim[0]  # rerun by another process
    assert len({p["pid"] for p in manifest["parts"]} - {victim[0]}) >= 2  # the other worker and the new one
    assert not list(out.glob(".*.tmp"))


def test_partitions_of_several_inputs_in_any_process_make_the_whole(tmp_path: Path) -> None:
    """The plan and the partition work without Dask: three formats in a folder, ids across files."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    write_corpus(folder / "a.csv", 30)
    (folder / "b.jsonl").write_text(
        "".join(json.dumps({"text": f"NATO and Russia, item {i}."}) + "\n" for i in range(25)) + "[1]\n"
    )
    pq.write_table(
        pa.table({"id": ["doc-1", None, "p3"], "text": ["Parquet one.", "Parquet two.", " "]}),
        folder / "c.parquet",
    )
    (folder / "notes.txt").write_text("not an input")
    paths = expand_inputs(str(folder))
    assert [p.name for p in paths] == ["a.csv", "b.jsonl", "c.parquet"]
    assert expand_inputs(str(folder / "*.jsonl")) == [folder / "b.jsonl"]
    the_plan = plan(paths, ReadOptions(), partition_size=7)
    assert [p.rows for p in the_plan.partitions] == [7, 7, 7, 7, 3, 7, 7, 7, 5, 3]
    assert the_plan.repeated == {
        "doc-1": [f"{paths[0]}:3", f"{paths[2]}:1"],
        "doc-7": [f"{paths[0]}:9", f"{paths[0]}:22"],
    }

    out = tmp_path / "out"
    results = []
    for partition in the_plan.partitions:
        task = PartitionTask(
            partition,
            the_plan.inputs[partition.input],
            the_plan.where(partition),
            the_plan.repeated,
            ReadOptions(),
            str(out),
            str(DEFAULT_MODEL_DIR),
            sha256_file(DEFAULT_MODEL_DIR / "card.json"),
            str(DEFAULT_SEEDS_DIR),
            "valdai-eurasian-security-2024",
            False,
            64,
        )
        assert len(pickle.dumps(task)) < 5_000  # never the model, never the texts
        results.append(score_partition(task))
    ids = [json.loads(line)["id"] for line in io.StringIO(parts_of(out).decode())]
    assert ids[:2] == [f"{paths[0]}:2", "doc-2"]  # doc-1 is also in c.parquet: refused
    assert f"{paths[1]}:1" in ids and f"{paths[2]}:2" in ids and "doc-1" not in ids
    errors = [json.loads(line) for line in parts_of(out, ".errors").decode().splitlines()]
    assert {(Path(e["file"]).name, e["line"]) for e in errors} >= {
        ("a.csv", 3),
        ("c.parquet", 1),
        ("c.parquet", 3),
        ("b.jsonl", 26),
    }
    assert sum(r.rows + r.errors for r in results) == the_plan.rows


def test_cluster_runs_refuse_unsafe_outputs(
    corpus: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _, _ = corpus
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    cases = [
        (["--out", str(source.parent)], 2, "holds the input"),
        (["--out", str(source)], 2, "is a file"),
        ([], 2, "--out FOLDER is needed"),
        (["--out", str(stranger)], 1, "not empty and holds no manifest.json"),
    ]
    for extra, status, message in cases:
        assert main(["score", str(source), "--workers", "2", *extra]) == status
        err = capsys.readouterr().err
        assert message in err, err
    assert (stranger / "notes.txt").read_text() == "keep me"
    # --strict stops before any cluster starts: the plan already knows every rejected row.
    strict = tmp_path / "strict"
    assert main(["score", str(source), "--workers", "2", "--strict", "--out", str(strict)]) == 1
    assert "line 9: id: Text ids must be unique: id 'doc-7' is also on line 22." in capsys.readouterr().err
    assert not strict.exists()
    assert (
        main(["score", str(tmp_path / "nothing-*.csv"), "--workers", "2", "--out", str(tmp_path / "o")]) == 1
    )
    assert "no file matches" in capsys.readouterr().err
