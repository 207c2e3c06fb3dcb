"""The ``discourse`` command: predict-pairs, evaluate, score, and its errors (exit 1, file named)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from service.cli import main
from service.config import PROJECT_ROOT
from service.domain.stance import STANCE_LABELS
from service.training.fnc import fnc_score
from tests.helpers import TinyCorpus, tiny_corpus, train_tiny_model, write_fnc_csvs

DISCOURSE = str(Path(sys.executable).with_name("discourse"))
PREDICTION_HEADER = [
    "Headline",
    "Body ID",
    "Stance",
    "similarity",
    "p_agree",
    "p_disagree",
    "p_discuss",
    "p_unrelated",
]

TEXTS = [
    ("nato", "NATO expansion is a threat to Russia's security, and the Euro-Atlantic order has failed."),
    ("soup", "Roast the tomatoes with garlic and basil, then blend them into a smooth soup."),
    (
        "talks",
        "Russia and China agreed to discuss a new security architecture for Eurasia.\n\nIt may take years.",
    ),
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the tiny inline corpus (loads in milliseconds)."""
    root = tmp_path_factory.mktemp("tiny")
    train_tiny_model(root / "model", root / "data")
    return root / "model"


@pytest.fixture
def pair_files(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny corpus as labelled FNC-format CSV files."""
    return write_fnc_csvs(tmp_path / "pairs")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the command in-process; return (status, stdout, stderr)."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def predict_pairs_argv(stances: Path, bodies: Path, model: Path, out: Path | str) -> list[str]:
    """``discourse predict-pairs`` on FNC-format ``stances`` and ``bodies`` with ``model``, into ``out``."""
    files = ["--stances", str(stances), "--bodies", str(bodies)]
    return ["predict-pairs", *files, "--model", str(model), "--out", str(out)]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


# -- validate ---------------------------------------------------------------------


def test_validate_reports_the_chosen_story_splits_as_json(
    tmp_path: Path, pair_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    data_dir = pair_files[0].parent
    with threadpool_limits(limits=1):
        status, stdout, stderr = run(
            [
                "validate",
                "--data",
                str(data_dir),
                "--splits",
                "3,1",
                "--stance-kind",
                "trees",
                "--out",
                str(out),
                "--no-arc",
                "--json",
            ],
            capsys,
        )
    assert status == 0, stderr
    report = json.loads(stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert [split["split_seed"] for split in report["splits"]] == [3, 1]
    assert report["training"]["stance_kind"] == "trees"
    fnc_scores = [split["fnc_score"] for split in report["splits"]]
    assert report["mean"]["fnc_score"] == pytest.approx(sum(fnc_scores) / 2, abs=1e-4)
    assert "split 3: FNC score" in stderr and "done in" in stderr


def test_validate_prints_each_domains_figures_and_the_cross_domain_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tiny_corpus()
    # A second corpus in another voice, with its own claims and ids, as ARC is beside FNC-1.
    arc = TinyCorpus(
        rows=[(f"Debate: {h}", b, s) for h, b, s in base.rows],
        bodies={b: f"In my opinion, {text}" for b, text in base.bodies.items()},
    )
    write_fnc_csvs(tmp_path / "fnc", base)
    write_fnc_csvs(tmp_path / "arc", arc)
    out = tmp_path / "report.json"
    argv = ["validate", "--data", str(tmp_path / "fnc"), "--arc", str(tmp_path / "arc"), "--splits", "0,1"]
    argv += ["--cross-domain-splits", "0", "--stance-kind", "trees", "--out", str(out)]
    with threadpool_limits(limits=1):
        status, stdout, stderr = run(argv, capsys)
    assert status == 0, stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["domains"] == ["fnc-1", "arc"]
    split = report["splits"][0]
    # Each domain is reported on its own held-out pairs, and together they are all of them.
    assert split["domains"]["fnc-1"]["pairs"] + split["domains"]["arc"]["pairs"] == split["pairs"]
    assert {r["train_domain"] for r in report["cross_domain"]} == {"fnc-1", "arc"}
    for cross in report["cross_domain"]:
        assert cross["train_pairs"] < split["train_pairs"]
    lines = stdout.splitlines()
    assert lines[0].startswith("| domain | trained on | split | pairs | FNC score | macro-F1 | F1 agree")
    assert any(line.startswith("| fnc-1 | all domains | mean |") for line in lines)
    assert any(line.startswith("| arc | fnc-1 only | 0 |") for line in lines)
    assert any(line.startswith("| fnc-1 | arc only | 0 |") for line in lines)
    assert "Confusion matrix of arc, summed over splits 0, 1 (rows: true label):" in lines


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--splits", "1,x"], "expected comma-separated integers"),
        (["--splits", "2,2"], "distinct and non-negative"),
        (["--stance-kind", "forest"], "stance_kind must be one of"),
        (["--jobs", "0"], "must be at least 1, not 0"),
    ],
)
def test_validate_usage_errors_exit_2(
    arguments: list[str], message: str, pair_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["validate", "--data", str(pair_files[0].parent), "--no-arc", *arguments]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_train_refuses_fewer_than_one_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "model"), "--jobs", "0"])
    assert exit_.value.code == 2
    assert "--jobs: must be at least 1, not 0" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


class _ClosedPipe:
    """A stderr whose reader went away."""

    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_progress_to_a_reader_that_went_away_does_not_stop_the_work(
    tmp_path: Path, pair_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "stderr", _ClosedPipe())
    argv = [
        "validate",
        "--data",
        str(pair_files[0].parent),
        "--splits",
        "1",
        "--stance-kind",
        "trees",
        "--no-arc",
    ]
    with threadpool_limits(limits=1):
        status = main([*argv, "--out", str(out)])
    assert status == 0
    assert [split["split_seed"] for split in json.loads(out.read_text(encoding="utf-8"))["splits"]] == [1]


# -- predict-pairs and evaluate ---------------------------------------------------


def test_predict_pairs_writes_one_row_per_input_row_in_order(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tiny_corpus()
    # Repeat and reorder rows: the output must follow the input exactly.
    rows = [corpus.rows[5], corpus.rows[0], corpus.rows[5], *corpus.rows[10:20], corpus.rows[1]]
    stances, bodies = write_fnc_csvs(tmp_path, TinyCorpus(rows, corpus.bodies))
    out = tmp_path / "predictions.csv"
    status, _, err = run(predict_pairs_argv(stances, bodies, tiny_model, out), capsys)
    assert status == 0
    assert f"wrote {len(rows)} rows to {out}" in err
    header, *lines = read_csv(out)
    assert header == PREDICTION_HEADER
    assert [(line[0], line[1]) for line in lines] == [(h, b) for h, b, _ in rows]
    for line in lines:
        assert line[2] in STANCE_LABELS
        assert 0.0 <= float(line[3]) <= 1.0
        probabilities = [float(p) for p in line[4:]]
        assert sum(probabilities) == pytest.approx(1.0, abs=3e-4)
    assert lines[0] == lines[2]  # the same pair twice gets the same prediction


def test_predict_pairs_ignores_an_input_stance_column(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tiny_corpus()
    outputs = []
    variants = {
        "none": (corpus, False),
        "wrong": (TinyCorpus([(h, b, "agree") for h, b, _ in corpus.rows], corpus.bodies), True),
        "blank": (TinyCorpus([(h, b, "") for h, b, _ in corpus.rows], corpus.bodies), True),
    }
    for name, (variant, with_stance) in variants.items():
        stances, bodies = write_fnc_csvs(tmp_path / name, variant, stance_column=with_stance)
        out = tmp_path / f"{name}.csv"
        status, _, err = run(predict_pairs_argv(stances, bodies, tiny_model, out), capsys)
        assert status == 0, err
        outputs.append(read_csv(out))
    assert outputs[0] == outputs[1] == outputs[2]
    predicted = [line[2] for line in outputs[0][1:]]
    assert predicted != ["agree"] * len(predicted)


def test_evaluate_prints_a_json_report_consistent_with_the_predictions(
    tiny_model: Path, pair_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stances, bodies = pair_files
    status, out, _ = run(
        ["evaluate", "--stances", str(stances), "--bodies", str(bodies), "--model", str(tiny_model)], capsys
    )
    assert status == 0
    report = json.loads(out)
    assert report["model"] == {"id": "tiny-test-model", "version": "0.0.1"}
    assert report["pairs"] == len(tiny_corpus().rows)
    assert set(report["per_class"]) == set(STANCE_LABELS)
    for label in STANCE_LABELS:
        assert 0.0 <= report["per_class"][label]["f1"] <= 1.0
    assert report["macro_f1"] == pytest.approx(
        sum(c["f1"] for c in report["per_class"].values()) / 4, abs=1e-4
    )
    matrix = report["confusion"]["matrix"]
    assert report["confusion"]["labels"] == list(STANCE_LABELS)
    assert sum(map(sum, matrix)) == report["pairs"]
    assert [sum(row) for row in matrix] == [report["per_class"][label]["support"] for label in STANCE_LABELS]

    predictions = tmp_path / "predictions.csv"
    status, _, err = run(predict_pairs_argv(stances, bodies, tiny_model, predictions), capsys)
    assert status == 0, err
    truth = [stance for _, _, stance in tiny_corpus().rows]
    predicted = [line[2] for line in read_csv(predictions)[1:]]
    assert report["fnc_score"] == pytest.approx(round(fnc_score(truth, predicted), 2))


# -- score -------------------------------------------------------------------------


def api_results(client, texts: list[tuple[str, str]], explain: bool) -> list[dict]:
    response = client.post(
        "/v1/score", json={"texts": [{"id": i, "text": t} for i, t in texts], "explain": explain}
    )
    assert response.status_code == 200
    return response.get_json()["results"]


def without_null_evidence(result: dict) -> dict:
    return {k: v for k, v in result.items() if not (k == "evidence" and v is None)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def nato_rows(n: int) -> list[list[str]]:
    """``n`` distinct (id, text) rows."""
    return [[f"r{i}", f"Text {i}: NATO expansion and the security of Russia, row {i}."] for i in range(n)]


def test_score_jsonl_matches_the_api(tmp_path: Path, client, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.jsonl"
    lines = [
        json.dumps({"id": TEXTS[0][0], "text": TEXTS[0][1]}),
        "",  # blank lines are skipped
        json.dumps({"text": TEXTS[1][1]}),  # no id: its line number, 3
        json.dumps({"id": "7", "text": TEXTS[2][1], "source": "ignored"}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    status, _, err = run(["score", str(source), "--out", str(out), "--explain", "--batch-size", "2"], capsys)
    assert status == 0, err
    documents = read_jsonl(out)
    assert [d["id"] for d in documents] == ["nato", "3", "7"]
    assert {d.pop("reference") for d in documents} == {"valdai-eurasian-security-2024"}
    expected = api_results(client, [("nato", TEXTS[0][1]), ("3", TEXTS[1][1]), ("7", TEXTS[2][1])], True)
    assert documents == expected
    assert (tmp_path / "results.errors.jsonl").read_text(encoding="utf-8") == ""  # none rejected


def test_score_reads_html_as_markup_with_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = "<p>NATO <b>expansion</b> is a threat to Russia&#8217;s security.</p><p>The order failed.</p>"
    plain = "NATO expansion is a threat to Russia's security.\n\nThe order failed."
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"id": "h", "text": html}) + "\n", encoding="utf-8")
    plain_source = tmp_path / "plain.jsonl"
    plain_source.write_text(json.dumps({"id": "h", "text": plain}) + "\n", encoding="utf-8")
    results = {}
    for name, path, extra in (
        ("html", source, ["--format", "html"]),
        ("text", source, []),
        ("plain", plain_source, []),
    ):
        out = tmp_path / f"{name}-results.jsonl"
        status, _, err = run(["score", str(path), "--out", str(out), *extra], capsys)
        assert status == 0, err
        (results[name],) = read_jsonl(out)
    assert results["html"]["similarity"] == results["plain"]["similarity"]
    assert results["html"]["stance"] == results["plain"]["stance"]
    assert results["text"]["warnings"][0]["code"] == "markup_detected"


def test_score_csv_to_stdout_matches_the_api(
    tmp_path: Path, client, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(
        tmp_path / "texts.csv",
        ["id", "text", "ignored"],
        [*([i, t, "x"] for i, t in TEXTS), ["", "A row without an id, about NATO and Russia.", ""]],
    )
    status, out, err = run(["score", str(source)], capsys)
    assert status == 0, err
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["id"] for d in documents] == ["nato", "soup", "talks", "7"]  # "talks" spans lines 4-6
    assert all("evidence" not in d for d in documents)
    for document in documents:
        assert document.pop("reference") == "valdai-eurasian-security-2024"
    texts = [*TEXTS, ("7", "A row without an id, about NATO and Russia.")]
    assert documents == [without_null_evidence(r) for r in api_results(client, texts, False)]


def test_score_console_script_reads_standard_input(tmp_path: Path) -> None:
    content = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in TEXTS)
    result = subprocess.run(
        [DISCOURSE, "score", "-"], input=content, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["id"] for d in documents] == [i for i, _ in TEXTS]
    assert documents[0]["stance"]["label"] != "unrelated"
    assert documents[1]["stance"]["label"] == "unrelated"
    csv_content = "body,key\n" + "".join(f'"{t}",{i}\n' for i, t in TEXTS)
    result = subprocess.run(
        [DISCOURSE, "score", "-", "--input-format", "csv", "--text-column", "body", "--id-column", "key"],
        input=csv_content,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == documents


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"discourse {version('discourse-compare')}\n"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for code in (
        "0 all rows scored",
        "1 unusable input",
        "2 wrong usage",
        "3 done, but some rows were rejected",
    ):
        assert code in text


# -- score: safe with users' files ---------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_score_never_writes_over_its_input(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, spelling: str
) -> None:
    source = tmp_path / f"same{suffix}"
    if suffix == ".csv":
        write_csv(source, ["id", "text"], nato_rows(300))
    else:
        source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in nato_rows(300)))
    before = source.read_bytes()
    (tmp_path / "sub").mkdir()
    out = {
        "same": source,
        "dotted": tmp_path / "sub" / ".." / source.name,
        "symlink": tmp_path / "link",
        "hardlink": tmp_path / "hard",
    }[spelling]
    if spelling == "symlink":
        out.symlink_to(source)
    elif spelling == "hardlink":
        out.hardlink_to(source)
    for option in ("--out", "--errors"):
        status, _, err = run(["score", str(source), "--model", str(tiny_model), option, str(out)], capsys)
        assert status == 2
        assert f"{option} {out} is the input file {source}: refusing to write over an input" in err
        assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({source.name, "sub", out.name})


def test_score_a_bad_byte_rejects_that_row_only_naming_line_and_offset(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "latin.csv", ["id", "text"], nato_rows(300))
    data = source.read_bytes()
    row_250 = data.index(b"Text 249:")  # the 250th row, on line 251
    bad_at = row_250 + len("Text 249: NATO expansion and the security of Russia, row 249")
    data = data[:bad_at] + b"\xe9" + data[bad_at + 1 :]  # the final "." becomes a Latin-1 byte
    source.write_bytes(data)
    out = tmp_path / "results.jsonl"
    out.write_text("earlier results\n", encoding="utf-8")
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert status == 3
    assert "299 rows scored, 1 rejected" in err and "Traceback" not in err
    assert [d["id"] for d in read_jsonl(out)] == [f"r{i}" for i in range(300) if i != 249]
    assert read_jsonl(tmp_path / "results.errors.jsonl") == [
        {
            "file": str(source),
            "line": 251,
            "field": "encoding",
            "reason": f"not UTF-8: byte 0xe9 at byte offset {bad_at} of the file",
        }
    ]


def test_score_an_output_is_replaced_only_when_complete(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.file_scoring

    source = write_csv(tmp_path / "texts.csv", ["id", "text"], nato_rows(100))
    out = tmp_path / "results.jsonl"
    out.write_text("earlier results\n", encoding="utf-8")
    real_write = service.file_scoring._write_batch
    calls = []

    def failing_write(*args, **kwargs):  # a fault in the middle of the run (disk full, Ctrl-C)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(service.file_scoring, "_write_batch", failing_write)
    argv = ["score", str(source), "--model", str(tiny_model), "--out", str(out), "--batch-size", "10"]
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert out.read_text(encoding="utf-8") == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "texts.csv"]  # no temporary left
    monkeypatch.setattr(service.file_scoring, "_write_batch", real_write)
    assert run(argv, capsys)[0] == 0
    assert len(read_jsonl(out)) == 100
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_score_csv_rows_that_break_a_rule_go_to_the_errors_file(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.csv"
    source.write_text(
        "id,text\n"
        "1,NATO is not a threat to Russia, says the minister, and the alliance is purely defensive.\n"  # 2
        ",A text without an id, quoted properly,\n"  # 3: 3 fields
        '7,"Short, quoted, and fine."\n'  # 4
        ',"No id here, so it gets its line number."\n'  # 5
        "5,A given id that equals line five.\n"  # 6
        "8,   \n"  # 7: blank text
        '9,"A text split over\ntwo lines, quoted."\n'  # 8-9
        "7,The same id as line 4.\n"  # 10
        "10\n",  # 11: too few fields
        encoding="utf-8",
    )
    out = tmp_path / "out" / "deeper" / "results.jsonl"  # missing folders are created
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert status == 3, err
    assert "3 rows scored, 6 rejected" in err
    documents = read_jsonl(out)
    assert [(d["id"]) for d in documents] == ["5#2", "5", "9"]
    errors = read_jsonl(out.parent / "results.errors.jsonl")
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "row"),
        (3, "row"),
        (4, "id"),
        (7, "text"),
        (10, "id"),
        (11, "row"),
    ]
    assert errors[0]["reason"].startswith("4 fields where the header has 2 (more)")
    assert errors[3]["reason"] == "Must contain at least one non-whitespace character."
    assert errors[2]["reason"] == "Text ids must be unique: id '7' is also on line 10."
    assert errors[5]["reason"].startswith("1 fields where the header has 2 (fewer)")


def test_score_refuses_a_folder_as_output_file(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "texts.csv", ["id", "text"], nato_rows(3))
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(tmp_path)], capsys)
    assert status == 2
    assert f"--out {tmp_path} is a folder" in err and "Traceback" not in err


def test_score_strict_stops_at_the_first_rejected_row_and_writes_nothing(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "texts.csv", ["id", "text"], [*nato_rows(5), ["x", " "], *nato_rows(2)])
    out = tmp_path / "results.jsonl"
    out.write_text("earlier results\n", encoding="utf-8")
    status, _, err = run(
        ["score", str(source), "--model", str(tiny_model), "--out", str(out), "--strict"], capsys
    )
    assert status == 1
    assert f"{source}, line 7: text: Must contain at least one non-whitespace character." in err
    assert out.read_text(encoding="utf-8") == "earlier results\n"
    assert not (tmp_path / "results.errors.jsonl").exists()
    # Repeated ids are found by --strict too.
    write_csv(source, ["id", "text"], [*nato_rows(3), *nato_rows(1)])
    status, _, err = run(
        ["score", str(source), "--model", str(tiny_model), "--strict", "--out", str(out)], capsys
    )
    assert status == 1
    assert f"{source}, line 2: id: Text ids must be unique: id 'r0' is also on line 5." in err
    assert out.read_text(encoding="utf-8") == "earlier results\n"


def test_score_jsonl_rows_that_break_a_rule(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCOURSE_MAX_TEXT_CHARS", "60")  # the API's limit, read the same way
    source = tmp_path / "texts.jsonl"
    lines = [
        {"id": "a", "text": "NATO and Russia."},
        {"id": 7, "text": "An id that is a number."},
        {"id": "b", "text": "x" * 61},
        {"id": "c", "text": "x" * 60},
        {"text": ["not", "a string"]},
        {"id": "a", "text": "Again a."},
    ]
    source.write_text(
        "".join(json.dumps(line) + "\n" for line in lines) + "{broken\n" + "x" * (13 * 60 + 2**20) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "results.jsonl"
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert status == 3, err
    assert [d["id"] for d in read_jsonl(out)] == ["c"]
    errors = {e["line"]: e for e in read_jsonl(tmp_path / "results.errors.jsonl")}
    assert sorted(errors) == [1, 2, 3, 5, 6, 7, 8]
    assert errors[2]["reason"] == "Not a valid string (got a number)."
    assert errors[3]["reason"] == "At most 60 characters per text (this one has 61)."
    assert errors[5]["reason"] == "Not a valid string (got an array)."
    assert errors[7]["reason"].startswith("not JSON: ")
    assert errors[8]["reason"].startswith("row longer than")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("no-text.csv", "id,body\n1,hello\n", "no 'text' column (the header has: id, body)"),
        ("empty.csv", "", "empty: a CSV file starts with a header"),
        ("twice.csv", "text,text\na,b\n", "column 'text' appears twice"),
        ("texts.txt", "hello\n", "cannot tell the format from the name"),
        ("missing.jsonl", None, "cannot be read"),
    ],
)
def test_score_refuses_unreadable_input_naming_the_file(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | None,
    message: str,
) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_text(content, encoding="utf-8")
    out = tmp_path / "existing-results.jsonl"
    out.write_text("earlier results\n", encoding="utf-8")
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert status == 1
    assert err.startswith(f"discourse score: {source}")
    assert message in err
    assert "Traceback" not in err
    assert out.read_text(encoding="utf-8") == "earlier results\n"  # nothing scored, nothing replaced


def test_score_unknown_reference_exits_1_without_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"text": "NATO"}) + "\n", encoding="utf-8")
    result = subprocess.run(
        [DISCOURSE, "score", str(source), "--reference", "no-such-reference"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "discourse score: no reference with id 'no-such-reference'"


def test_score_batch_size_below_one_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tmp_path / "x.jsonl"), "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


# -- errors --------------------------------------------------------------------------


def test_predict_pairs_and_evaluate_refuse_bad_files_naming_them(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stances, bodies = write_fnc_csvs(tmp_path / "ok")
    no_body_id = tmp_path / "no-body-id.csv"
    no_body_id.write_text("Headline,Stance\nA headline,agree\n", encoding="utf-8")
    unlabelled, _ = write_fnc_csvs(tmp_path / "unlabelled", stance_column=False)
    out = str(tmp_path / "out.csv")
    model = ["--model", str(tiny_model)]
    cases = [
        (
            predict_pairs_argv(no_body_id, bodies, tiny_model, out),
            f"{no_body_id}: missing column(s) Body ID",
        ),
        (
            predict_pairs_argv(stances, tmp_path / "nope.csv", tiny_model, out),
            f"{tmp_path / 'nope.csv'}: cannot be read (No such file or directory)",
        ),
        (
            ["evaluate", "--stances", str(unlabelled), "--bodies", str(bodies), *model],
            f"{unlabelled}: a 'Stance' column is needed to evaluate",
        ),
        (
            [
                "evaluate",
                "--stances",
                str(stances),
                "--bodies",
                str(bodies),
                "--model",
                str(tmp_path / "no-model"),
            ],
            f"{tmp_path / 'no-model'}: model directory not found",
        ),
    ]
    for argv, message in cases:
        status, _, err = run(argv, capsys)
        assert status == 1, argv
        assert err == f"discourse {argv[0]}: {message}\n"


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: discourse" in capsys.readouterr().err


def test_the_console_script_is_installed() -> None:
    assert Path(DISCOURSE).exists(), "pip install -e . creates the discourse console script"
    assert (PROJECT_ROOT / "service" / "cli.py").exists()
