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
    argv = ["validate", "--data", str(pair_files[0].parent), *arguments]
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
    argv = ["validate", "--data", str(pair_files[0].parent), "--splits", "1", "--stance-kind", "trees"]
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
    status, _, err = run(
        [
            "predict-pairs",
            "--stances",
            str(stances),
            "--bodies",
            str(bodies),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
        ],
        capsys,
    )
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
        status, _, err = run(
            [
                "predict-pairs",
                "--stances",
                str(stances),
                "--bodies",
                str(bodies),
                "--model",
                str(tiny_model),
                "--out",
                str(out),
            ],
            capsys,
        )
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
    run(
        [
            "predict-pairs",
            "--stances",
            str(stances),
            "--bodies",
            str(bodies),
            "--model",
            str(tiny_model),
            "--out",
            str(predictions),
        ],
        capsys,
    )
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


def test_score_jsonl_matches_the_api(tmp_path: Path, client, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.jsonl"
    lines = [
        json.dumps({"id": TEXTS[0][0], "text": TEXTS[0][1]}),
        "",  # blank lines are skipped
        json.dumps({"text": TEXTS[1][1]}),  # no id: its line number, 3
        json.dumps({"id": 7, "text": TEXTS[2][1]}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    status, _, err = run(["score", str(source), "--out", str(out), "--explain", "--batch-size", "2"], capsys)
    assert status == 0, err
    documents = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [d["id"] for d in documents] == ["nato", "3", "7"]
    assert {d.pop("reference") for d in documents} == {"valdai-eurasian-security-2024"}
    expected = api_results(client, [("nato", TEXTS[0][1]), ("3", TEXTS[1][1]), ("7", TEXTS[2][1])], True)
    assert documents == expected


def test_score_csv_to_stdout_matches_the_api(
    tmp_path: Path, client, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "ignored"])
        writer.writerows([[i, t, "x"] for i, t in TEXTS])
        writer.writerow(["", "A row without an id, about NATO and Russia.", ""])
    status, out, err = run(["score", str(source)], capsys)
    assert status == 0, err
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["id"] for d in documents] == ["nato", "soup", "talks", "4"]
    assert all("evidence" not in d for d in documents)
    for document in documents:
        assert document.pop("reference") == "valdai-eurasian-security-2024"
    texts = [*TEXTS, ("4", "A row without an id, about NATO and Russia.")]
    assert documents == [without_null_evidence(r) for r in api_results(client, texts, False)]


def test_score_console_script_in_a_subprocess(tmp_path: Path) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in TEXTS), encoding="utf-8")
    result = subprocess.run(
        [DISCOURSE, "score", str(source)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["id"] for d in documents] == [i for i, _ in TEXTS]
    assert documents[0]["stance"]["label"] != "unrelated"
    assert documents[1]["stance"]["label"] == "unrelated"


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("no-text.csv", "id,body\n1,hello\n", "no 'text' column"),
        ("bad.jsonl", '{"text": "fine"}\n{not json\n', "line 2: not JSON"),
        ("list.jsonl", '["text"]\n', "line 1: expected an object with a string 'text'"),
        ("number.jsonl", '{"text": 5}\n', "line 1: expected an object with a string 'text'"),
        ("latin1.csv", None, "not UTF-8 text"),
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
    elif name.startswith("latin1"):
        source.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    out = tmp_path / "existing-results.jsonl"
    out.write_text("earlier results\n", encoding="utf-8")
    status, _, err = run(["score", str(source), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert status == 1
    assert err.startswith(f"discourse score: {source}")
    assert message in err
    assert "Traceback" not in err
    if "line 2" not in message:  # nothing was scored: an existing output is left alone
        assert out.read_text(encoding="utf-8") == "earlier results\n"


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
            ["predict-pairs", "--stances", str(no_body_id), "--bodies", str(bodies), "--out", out, *model],
            f"{no_body_id}: missing column(s) Body ID",
        ),
        (
            [
                "predict-pairs",
                "--stances",
                str(stances),
                "--bodies",
                str(tmp_path / "nope.csv"),
                "--out",
                out,
                *model,
            ],
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
