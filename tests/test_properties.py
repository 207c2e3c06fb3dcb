"""Hypothesis properties: any Unicode text scores without an exception and within bounds.

The domain is exercised directly (no Flask): emoji, right-to-left text, CJK,
combining marks, zero-width and control characters with NUL, lone surrogates,
one 100,000-character word, texts of only punctuation, numbers or stop words.
For every batch: one result per text in order with its id, finite similarities in
[0, 1], four stance scores in [0, 1] summing to 1 with a label that follows them,
one claim score per claim of the reference, and with ``explain`` evidence whose
offsets lie inside the text and the reference body.

The last tests send lone surrogates over HTTP as JSON escapes (``"\\ud800"``):
a 200 or a documented 4xx, never a 5xx.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
from service.domain.normalization import normalize
from service.domain.references import PreparedReference
from service.domain.scorer import TextScore
from service.domain.stance import STANCE_LABELS
from service.domain.text import split_sentences, tokenize
from service.http.schemas import WARNING_CODES as SCHEMA_WARNING_CODES
from service.loaders.runtime import Runtime, load_runtime

# Hypothesis draws many examples per test, so the runtime is loaded here once
# instead of through a fixture (the shipped model and references, as the fixture).
RUNTIME: Runtime = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR)
REFERENCE: PreparedReference = RUNTIME.scorer.reference()
THRESHOLD = RUNTIME.scorer.stance_model.related_threshold
WARNING_CODES = set(SCHEMA_WARNING_CODES)
ROUNDING = 1e-3  # scores are rounded to 4 decimals; the largest absorbs the rest

# -- strategies -----------------------------------------------------------------

HOSTILE_PIECES = (
    "👍🏽",  # emoji with a skin-tone modifier
    "👨\u200d👩\u200d👧",  # a ZWJ family sequence
    "🇺🇦",  # a flag (regional indicators)
    "مرحبا بالعالم",  # Arabic (RTL)
    "שלום עולם",  # Hebrew (RTL)
    "\u202eNATO\u202c",  # right-to-left override around a word
    "\u200e\u200f",  # LRM, RLM
    "北约扩张威胁俄罗斯",  # CJK without spaces
    "e\u0301\u0301\u0301",  # stacked combining marks
    "Z\u0336\u0337a\u0338l\u0335g\u0334o",  # "zalgo"
    "\u0301",  # a combining mark with nothing to combine with
    "\u200b\u200c\u200d\u2060\ufeff",  # zero-width characters and BOM
    "\x00",  # NUL
    "\x01\x1b[31m\x7f\x85",  # controls, an ANSI escape
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\ue000\U000f0000",  # private use
    "\ufffe\uffff\U0010ffff",  # non-characters
    "\u2028\u2029",  # line and paragraph separators
    "\r\n\t\x0b\x0c",
    "...!!!???",
    "1234567890 3.14159 -42 1e10",
)

_REFERENCE_WORDS = sorted(set(tokenize(REFERENCE.reference.body)))
_STOP_WORDS = sorted(ENGLISH_STOP_WORDS)

any_character = st.one_of(st.characters(), st.characters(categories=["Cs"]))
piece = st.one_of(
    st.sampled_from(HOSTILE_PIECES),
    st.sampled_from(_REFERENCE_WORDS),
    st.sampled_from(_STOP_WORDS),
    st.text(any_character, max_size=12),
    st.text(st.sampled_from(".,;:!?-—()[]{}\"'«»…"), min_size=1, max_size=8),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
)
separator = st.sampled_from([" ", "", "\n", ". ", "\n\n", "\t", "\u3000", "\u200b", "! "])
hostile_text = st.lists(st.tuples(piece, separator), max_size=40).map(
    lambda parts: "".join(p + s for p, s in parts)
)


def has_visible_character(text: str) -> bool:
    """Whether anything of ``text`` survives normalisation: a character that is not blank or invisible."""
    return bool(normalize(text).text.strip())


# -- the invariants -------------------------------------------------------------


def check_scores(scores: dict[str, float], label: str, related: float) -> None:
    """Four finite scores in [0, 1] summing to 1; the label follows them and the threshold."""
    assert list(scores) == list(STANCE_LABELS)
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()), scores
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-9), scores
    assert math.isfinite(related) and 0.0 <= related <= 1.0
    assert math.isclose(related + scores["unrelated"], 1.0, abs_tol=ROUNDING), (related, scores)
    assert label in STANCE_LABELS
    if abs(related - THRESHOLD) > ROUNDING:
        assert (label == "unrelated") == (related < THRESHOLD), (label, related, THRESHOLD)
    if label != "unrelated":
        best = max(scores[name] for name in STANCE_LABELS[:3])
        assert scores[label] >= best - ROUNDING, (label, scores)


def check_result(result: TextScore, text: str, text_id: str, explain: bool) -> None:
    """Every invariant of one text's result."""
    assert result.id == text_id
    assert math.isfinite(result.similarity) and 0.0 <= result.similarity <= 1.0
    codes = [w.code for w in result.warnings]
    assert set(codes) <= WARNING_CODES and len(codes) == len(set(codes))
    assert [c.id for c in result.claims] == [c.id for c in REFERENCE.claims]
    if result.stance is None:  # another language than the reference: similarity only
        assert "language_mismatch" in codes and result.related is None
        assert all(c.stance is None and c.related is None for c in result.claims)
    else:
        assert "language_mismatch" not in codes
        check_scores(result.stance.scores, result.stance.label, result.related)
    for claim in result.claims:
        assert math.isfinite(claim.similarity) and 0.0 <= claim.similarity <= 1.0
        if claim.stance is not None:
            check_scores(claim.stance.scores, claim.stance.label, claim.related)
    normalized = normalize(text)
    if not has_visible_character(text) or not tokenize(normalized.text):
        assert "no_words" in codes
    if not explain:
        assert result.evidence is None
        return
    assert result.evidence is not None
    body = REFERENCE.reference.body
    for passage in result.evidence.passages:
        assert 0 <= passage.text_start < passage.text_end <= len(text)
        # The offsets index the text as sent: that passage, normalised, is a whole sentence.
        sentence = normalize(text[passage.text_start : passage.text_end]).text
        assert sentence.strip() == sentence and sentence, repr(sentence)
        assert 0 <= passage.reference_start < passage.reference_end <= len(body)
        assert body[passage.reference_start : passage.reference_end] == passage.reference_passage
        assert math.isfinite(passage.similarity) and 0.0 <= passage.similarity <= 1.0
    # The words as the encoder sees them: per sentence (a run of over 600 characters is cut).
    max_chars = RUNTIME.scorer.encoder.config.max_sentence_chars
    words = {word for span in split_sentences(normalized.text, max_chars) for word in tokenize(span.text)}
    for term in result.evidence.shared_terms:
        assert term.term in words, term
        assert math.isfinite(term.weight) and 0.0 <= term.weight <= 1.0
    assert sum(t.weight for t in result.evidence.shared_terms) <= 1.0 + ROUNDING


def score_and_check(texts: Sequence[str], explain: bool, ids: Sequence[str] | None = None) -> list[TextScore]:
    """Score ``texts`` and check every result; return them."""
    results = RUNTIME.scorer.score(texts, ids=ids, explain=explain)
    expected_ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    assert len(results) == len(texts)
    for result, text, text_id in zip(results, texts, expected_ids, strict=True):
        check_result(result, text, text_id, explain)
    return results


# -- properties -------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(texts=st.lists(hostile_text, min_size=1, max_size=4), explain=st.booleans())
def test_any_unicode_text_scores_within_bounds(texts: list[str], explain: bool) -> None:
    """Any mix of hostile Unicode scores without an exception, every invariant holding."""
    score_and_check(texts, explain)


@settings(max_examples=100, deadline=None, database=None)
@given(texts=st.lists(st.text(any_character, min_size=1, max_size=300), min_size=1, max_size=3))
def test_arbitrary_code_points_score_with_evidence(texts: list[str]) -> None:
    """Uniformly drawn code points (surrogates included) score, with evidence, within bounds."""
    score_and_check(texts, explain=True)


@settings(max_examples=40, deadline=None, database=None)
@given(text=hostile_text, others=st.lists(hostile_text, max_size=3), position=st.integers(0, 3))
def test_a_text_scores_the_same_alone_and_in_any_batch(text: str, others: list[str], position: int) -> None:
    """Batching neither loses nor mixes up results: a text's result does not depend on its batch."""
    batch = list(others)
    batch.insert(min(position, len(batch)), text)
    ids = [f"id-{i}" for i in range(len(batch))]
    alone = score_and_check([text], explain=True, ids=["alone"])[0]
    in_batch = score_and_check(batch, explain=True, ids=ids)[batch.index(text)]
    assert (in_batch.similarity, in_batch.related, in_batch.stance) == (
        alone.similarity,
        alone.related,
        alone.stance,
    )
    assert in_batch.claims == alone.claims and in_batch.evidence == alone.evidence


DEGENERATE_TEXTS = {
    "only punctuation": "... !!! ??? — «» ;;; ()",
    "only numbers": "1 22 333 4444 55555 3.14159 -42 1e10 2024",
    "only stop words": " ".join(_STOP_WORDS[:60]),
    "one 100,000-character ASCII word": "a" * 100_000,
    "one 100,000-character Cyrillic word": "я" * 100_000,
    "100,000 emoji": "😀" * 100_000,
    "100,000 combining marks": "\u0301" * 100_000,
    "a letter and 99,999 combining marks": "e" + "\u0301" * 99_999,
    "CJK without spaces": "北约扩张威胁俄罗斯" * 11_000,
    "RTL with overrides": "\u202e" + "مرحبا بالعالم " * 5_000,
    "NUL between words": "NATO\x00expansion\x00threatened\x00Russia",
    "lone surrogates between words": "NATO \ud800 expansion \udfff threatened Russia",
    "zero-width joiners inside words": "N\u200dA\u200dT\u200dO expan\u200bsion secu\u2060rity",
}


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
@pytest.mark.parametrize("text", list(DEGENERATE_TEXTS.values()), ids=list(DEGENERATE_TEXTS))
def test_degenerate_texts_score_within_bounds(text: str, explain: bool) -> None:
    """Each degenerate text scores alone within bounds (the longest are at the 100,000 limit)."""
    assert len(text) <= 100_000
    score_and_check([text], explain)


def test_degenerate_texts_score_together_in_order() -> None:
    """All degenerate texts in one batch: one result each, in order, ids echoed."""
    texts = list(DEGENERATE_TEXTS.values())
    ids = [f"t{i}" for i in range(len(texts))][::-1]
    score_and_check(texts, explain=True, ids=ids)


def test_text_without_words_is_flagged() -> None:
    """Punctuation only: no words, flagged ``no_words`` and nothing matched as evidence."""
    result = score_and_check([DEGENERATE_TEXTS["only punctuation"]], explain=True)[0]
    assert [w.code for w in result.warnings] == ["no_words"]
    assert result.similarity == 0.0
    assert result.evidence is not None and result.evidence.shared_terms == ()


INVISIBLE_TEXTS = ["", "   ", "\x00", "\u200b", "\ud800", "\ue000", "\x00\u200b\ud800 \t\n"]


@pytest.mark.parametrize("texts", [[t] for t in INVISIBLE_TEXTS] + [INVISIBLE_TEXTS], ids=repr)
def test_batch_of_only_invisible_texts_is_scored(texts: list[str]) -> None:
    """Blank and invisible texts score as ``no_words``, alone or together.

    A batch without any visible character used to raise ValueError (HTTP 500):
    ``sklearn.preprocessing.normalize`` refused the batch's sentence matrix, which
    has no rows then.
    """
    for result in score_and_check(texts, explain=True):
        assert [w.code for w in result.warnings] == ["no_words"]


def test_invisible_texts_score_in_a_batch_with_a_visible_one() -> None:
    """With one visible text in the batch, every invisible one is scored and flagged ``no_words``."""
    results = score_and_check([*INVISIBLE_TEXTS, "NATO expansion"], explain=True)
    assert all([w.code for w in r.warnings] == ["no_words"] for r in results[:-1])


# -- lone surrogates over HTTP ------------------------------------------------------

surrogate_text = st.lists(
    st.one_of(st.characters(categories=["Cs"]), st.sampled_from([*_REFERENCE_WORDS, " ", ". "])),
    min_size=1,
    max_size=30,
).map("".join)


def _post_raw(client: FlaskClient, body: dict) -> tuple[int, str, dict]:
    """POST ``body`` with lone surrogates as ``\\uXXXX`` escapes (``ensure_ascii``) and parse the answer."""
    raw = json.dumps(body, ensure_ascii=True)
    response = client.post("/v1/score", data=raw, headers={"Content-Type": "application/json"})
    return response.status_code, response.mimetype, json.loads(response.get_data(as_text=True))


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the client keeps no state
)
@given(
    texts=st.lists(surrogate_text, min_size=1, max_size=3),
    ids=st.one_of(st.none(), st.lists(surrogate_text, min_size=3, max_size=3, unique=True)),
    reference=st.one_of(st.none(), surrogate_text),
)
def test_lone_surrogates_as_json_escapes_never_5xx(
    client: FlaskClient, texts: list[str], ids: list[str] | None, reference: str | None
) -> None:
    """Lone surrogates in texts, ids and the reference give a 200 or a documented 4xx."""
    body: dict = {"texts": [{"text": t} for t in texts]}
    if ids is not None:
        for item, text_id in zip(body["texts"], ids, strict=False):
            item["id"] = text_id
    if reference is not None:
        body["reference"] = reference
    status, mimetype, document = _post_raw(client, body)
    assert status in {200, 404, 422}, document
    if status != 200:
        assert mimetype == "application/problem+json" and document["status"] == status
        return
    # As the server reads them: two escapes that form a valid pair are one astral character.
    received = json.loads(json.dumps(body))["texts"]
    sent_ids = [item.get("id", str(i)) for i, item in enumerate(received)]
    assert [r["id"] for r in document["results"]] == sent_ids  # echoed, surrogates included


def test_lone_surrogate_escapes_are_echoed_and_scored(client: FlaskClient) -> None:
    """A concrete case: ``\\ud800`` in a text and ``\\udfff`` as the id give a 200 with the id echoed."""
    status, _, document = _post_raw(
        client, {"texts": [{"id": "\udfff", "text": "NATO \ud800 expansion threatens Russia"}]}
    )
    assert status == 200
    assert document["results"][0]["id"] == "\udfff"


def test_lone_surrogate_reference_is_unknown(client: FlaskClient) -> None:
    """A reference id that is a lone surrogate is a 404 unknown-reference problem."""
    status, mimetype, document = _post_raw(client, {"texts": [{"text": "NATO"}], "reference": "\ud800"})
    assert (status, mimetype) == (404, "application/problem+json")
    assert document["type"].endswith("/unknown-reference")
