"""`discourse evaluate --narrative`: labelled passages scored against a reference, as the service does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main

PASSAGES = [
    {
        "id": "a",
        "label": "agree",
        "genre": "opinion",
        "text": "NATO expansion threatened Russia's security, and the Euro-Atlantic security order "
        "has failed. Russia and China are right to build a new Eurasian security architecture.",
    },
    {
        "id": "u",
        "label": "unrelated",
        "genre": "other",
        "text": "Roast the tomatoes with garlic and basil for forty minutes, then blend them into a soup.",
    },
    {
        "id": "d",
        "label": "discuss",
        "genre": "news report",
        "text": "Russian officials said on Monday that NATO expansion threatens Russia, according to a "
        "statement; NATO has rejected the claim.",
    },
]


def write_passages(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_narrative_figures_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_passages(tmp_path / "passages.jsonl", PASSAGES)
    assert main(["evaluate", "--narrative", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 3
    assert set(report["per_class"]) == {"agree", "disagree", "discuss", "unrelated"}
    assert 0.0 <= report["macro_f1"] <= 1.0 and 0.0 <= report["related_accuracy"] <= 1.0
    assert report["similarity_roc_auc"] == 1.0  # the soup recipe shares no words with the seed
    assert set(report["accuracy_by_genre"]) == {"opinion", "other", "news report"}
    assert report["reference"] == "valdai-eurasian-security-2024"
    misses = {m["id"] for m in report["misses"]}
    # A passage is a miss exactly when its predicted label differs from its own.
    confusion = report["confusion"]["matrix"]
    assert len(misses) == 3 - sum(confusion[i][i] for i in range(4))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ('{"label": "agree"}', "line 2: expected an object with 'text'"),
        ('{"text": "x", "label": "maybe"}', "line 2: 'label' must be one of"),
    ],
)
def test_a_malformed_passage_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    path = tmp_path / "passages.jsonl"
    path.write_text(json.dumps(PASSAGES[0]) + "\n" + line + "\n", encoding="utf-8")
    assert main(["evaluate", "--narrative", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_evaluate_needs_pairs_or_narrative(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate"]) == 2
    assert "--narrative" in capsys.readouterr().err


def test_the_shipped_narrative_set_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parent / "data" / "narrative" / "passages.jsonl"
    assert main(["evaluate", "--narrative", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
