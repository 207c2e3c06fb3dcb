"""The narrative development set: format of passages.jsonl and the counts its guideline states.

The set (tests/data/narrative/) holds real passages from public pages, labelled towards the
seed article; these tests keep it well-formed and keep GUIDELINE.md's figures true.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SET_DIR = ROOT / "tests" / "data" / "narrative"
PASSAGES = SET_DIR / "passages.jsonl"
GUIDELINE = SET_DIR / "GUIDELINE.md"
SEED = ROOT / "seeds" / "valdai-eurasian-security-2024.toml"

LABELS = ("agree", "disagree", "discuss", "unrelated")
CLAIM_STANCES = {"agree", "disagree", "discuss"}
GENRES = {
    "news report",
    "opinion",
    "official statement",
    "fact sheet",
    "encyclopedia",
    "forum/comment",
    "other",
}
REQUIRED = {
    "id": str,
    "label": str,
    "text": str,
    "url": str,
    "date": str,
    "source": str,
    "genre": str,
    "claims": list,
    "claim_stances": dict,
    "reason": str,
}
OPTIONAL = {"date_note": str}
MAX_WORDS = 150
MIN_PER_LABEL = 20
MIN_NEWS_REPORTS = 20
MIN_PASSAGES = 80
DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _load() -> list[dict]:
    records = []
    for number, line in enumerate(PASSAGES.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{PASSAGES.name} line {number}: empty line"
        record = json.loads(line)
        assert isinstance(record, dict), f"{PASSAGES.name} line {number}: not a JSON object"
        records.append(record)
    return records


@pytest.fixture(scope="module")
def passages() -> list[dict]:
    return _load()


@pytest.fixture(scope="module")
def claim_ids() -> set[str]:
    seed = tomllib.loads(SEED.read_text(encoding="utf-8"))
    return {claim["id"] for claim in seed["claims"]}


def _guideline_table(heading: str) -> dict[str, int]:
    """The two-column count table under `heading` in GUIDELINE.md, without its total row."""
    text = GUIDELINE.read_text(encoding="utf-8")
    section = text.split(f"### {heading}\n", 1)
    assert len(section) == 2, f"{GUIDELINE.name}: no '### {heading}' section"
    table: dict[str, int] = {}
    for line in section[1].splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].isdigit() and cells[0] != "total":
            table[cells[0]] = int(cells[1])
    assert table, f"{GUIDELINE.name}: the '{heading}' table has no rows"
    return table


def test_every_record_has_the_fields_with_their_types(passages: list[dict]) -> None:
    for record in passages:
        where = record.get("id", "<no id>")
        for field, kind in REQUIRED.items():
            assert isinstance(record.get(field), kind), f"{where}: field {field!r} is not {kind}"
        unknown = set(record) - set(REQUIRED) - set(OPTIONAL)
        assert not unknown, f"{where}: unknown fields {sorted(unknown)}"
        for field, kind in OPTIONAL.items():
            if field in record:
                assert isinstance(record[field], kind), f"{where}: {field!r} is not {kind}"
        for field in ("text", "source", "reason"):
            assert record[field].strip(), f"{where}: {field!r} is empty"


def test_ids_are_unique_and_name_their_label(passages: list[dict]) -> None:
    ids = Counter(record["id"] for record in passages)
    assert not [i for i, n in ids.items() if n > 1], "duplicate ids"
    for record in passages:
        assert re.fullmatch(rf"{record['label']}-\d{{2,3}}", record["id"]), record["id"]


def test_labels_and_genres_are_known(passages: list[dict]) -> None:
    for record in passages:
        assert record["label"] in LABELS, f"{record['id']}: label {record['label']!r}"
        assert record["genre"] in GENRES, f"{record['id']}: genre {record['genre']!r}"


def test_passages_are_short_excerpts(passages: list[dict]) -> None:
    for record in passages:
        words = len(record["text"].split())
        assert words <= MAX_WORDS, f"{record['id']}: {words} words (limit {MAX_WORDS})"
        assert record["text"] == record["text"].strip(), f"{record['id']}: untrimmed text"


def test_each_passage_names_its_http_source(passages: list[dict]) -> None:
    for record in passages:
        parts = urlsplit(record["url"])
        assert parts.scheme in {"http", "https"}, f"{record['id']}: url {record['url']!r}"
        assert parts.netloc, f"{record['id']}: url without host"


def test_dates_are_iso_or_unknown_with_a_note(passages: list[dict]) -> None:
    for record in passages:
        date = record["date"]
        if date == "unknown":
            assert record.get("date_note", "").strip(), f"{record['id']}: unknown date, no note"
        else:
            assert DATE.fullmatch(date), f"{record['id']}: date {date!r} is not ISO 8601"


def test_claims_exist_in_the_seed_and_carry_a_stance(passages: list[dict], claim_ids: set[str]) -> None:
    for record in passages:
        claims = record["claims"]
        assert len(set(claims)) == len(claims), f"{record['id']}: repeated claim id"
        assert set(claims) <= claim_ids, f"{record['id']}: {sorted(set(claims) - claim_ids)}"
        assert set(record["claim_stances"]) == set(claims), f"{record['id']}: stances ≠ claims"
        assert set(record["claim_stances"].values()) <= CLAIM_STANCES, record["id"]
        if record["label"] == "unrelated":
            assert not claims, f"{record['id']}: an unrelated passage addresses no claim"


def test_no_text_appears_twice(passages: list[dict]) -> None:
    normalised = Counter(" ".join(record["text"].lower().split()) for record in passages)
    assert not [text[:60] for text, n in normalised.items() if n > 1]


def test_the_set_is_big_and_balanced_enough(passages: list[dict]) -> None:
    labels = Counter(record["label"] for record in passages)
    assert len(passages) >= MIN_PASSAGES
    for label in LABELS:
        assert labels[label] >= MIN_PER_LABEL, f"only {labels[label]} {label} passages"
    news = [r for r in passages if r["genre"] == "news report" and r["label"] != "unrelated"]
    assert len(news) >= MIN_NEWS_REPORTS, f"only {len(news)} news reports of the events"


def test_the_guideline_states_the_counts_of_the_file(passages: list[dict]) -> None:
    assert _guideline_table("Passages per label") == dict(Counter(record["label"] for record in passages))
    assert _guideline_table("Passages per genre") == dict(Counter(record["genre"] for record in passages))
    news = sum(r["genre"] == "news report" and r["label"] != "unrelated" for r in passages)
    assert _guideline_table("News reports of the events")["news reports"] == news
