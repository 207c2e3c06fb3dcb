"""Work caps, chunked per-sentence work and checkpoints in the scoring domain (no Flask)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from service.domain import workload
from service.domain.scorer import Scorer
from service.domain.workload import (
    TEXTS_PER_CHUNK,
    WorkCounter,
    WorkLimitError,
    WorkLimits,
    char_chunks,
    text_chunks,
)
from service.loaders.runtime import Runtime

ENGLISH = (
    "NATO expansion threatens Russia's security, the minister said. Analysts disagree. "
    "A new Eurasian security architecture is needed, according to the report. "
    "Nobody denied that talks on arms control will resume next month."
)


@pytest.fixture
def scorer(runtime: Runtime) -> Scorer:
    return runtime.scorer


def test_sentences_without_words_are_left_out_of_the_per_sentence_data(scorer: Scorer) -> None:
    encoded = scorer.encoder.encode([". " * 5000 + "NATO grows. " + "! ? . " * 100, ". . . ."])
    assert encoded.sentence_word.shape[0] == 1
    assert [s.text for s in encoded.sentences[0]] == ["NATO grows."]
    assert encoded.sentences[1] == []
    assert encoded.n_tokens.tolist() == [2, 0]


def test_lead_sentences_still_count_the_sentences_without_words(scorer: Scorer) -> None:
    """The lead is the first two sentences as written: a wordless first one is one of them."""
    encoded = scorer.encoder.encode(["*** . Sanctions failed. Russia expands."])
    lead_terms = {scorer.encoder.vocabulary[j] for j in encoded.lead.indices}
    assert "sanctions" in lead_terms
    assert "russia" not in lead_terms and "expands" not in lead_terms


def test_a_text_over_the_sentence_cap_is_refused_naming_it(scorer: Scorer) -> None:
    limits = WorkLimits(max_sentences_per_text=3, max_tokens_per_text=100)
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["One two. Three four.", "Ab cd. Ef gh. Ij kl. Mn op."], limits=limits)
    (violation,) = caught.value.violations
    assert (violation.field, violation.limit) == ("texts.1.text", "max_sentences_per_text")
    assert "At most 3 sentences per text (this one has 4)" in violation.message


def test_a_text_over_the_token_cap_is_refused_naming_it(scorer: Scorer) -> None:
    limits = WorkLimits(max_tokens_per_text=5)
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["one two three four five six"], limits=limits)
    assert [(v.field, v.limit) for v in caught.value.violations] == [("texts.0.text", "max_tokens_per_text")]


def test_requests_over_the_totals_are_refused_with_the_field_texts(scorer: Scorer) -> None:
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["Ab cd. Ef gh."] * 3, limits=WorkLimits(max_sentences_per_request=5))
    assert [(v.field, v.limit) for v in caught.value.violations] == [("texts", "max_sentences_per_request")]
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["ab cd ef"] * 3, limits=WorkLimits(max_tokens_per_request=8))
    assert [(v.field, v.limit) for v in caught.value.violations] == [("texts", "max_tokens_per_request")]


def test_every_text_over_its_own_limit_is_named(scorer: Scorer) -> None:
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["ab cd ef gh", "ok", "ab cd ef gh ij"], limits=WorkLimits(max_tokens_per_text=3))
    assert [v.field for v in caught.value.violations] == ["texts.0.text", "texts.2.text"]


def test_texts_within_the_limits_are_scored(scorer: Scorer) -> None:
    limits = WorkLimits(max_sentences_per_text=4, max_tokens_per_text=40)
    assert len(scorer.score([ENGLISH], limits=limits)) == 1


def _as_dicts(results: list) -> list[dict]:
    return [dataclasses.asdict(r) for r in results]


def test_chunked_work_gives_exactly_the_same_scores(scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [ENGLISH, "Rain.", ". . .", ENGLISH.upper(), "Sanctions have not weakened the economy. " * 12]
    whole = _as_dicts(scorer.score(texts, explain=True))
    monkeypatch.setattr(workload, "SENTENCE_CHUNK_ROWS", 2)
    monkeypatch.setattr(workload, "CHAR_CHUNK", 64)
    assert _as_dicts(scorer.score(texts, explain=True)) == whole


def test_a_batch_scored_in_chunks_gives_each_text_its_scores_alone(scorer: Scorer) -> None:
    """Texts are scored TEXTS_PER_CHUNK at a time: a batch over two chunks, with a French text
    (scored against another variant of the reference) in the middle one, scores every
    text as it scores alone."""
    texts = [f"{ENGLISH} Item {i}." for i in range(2 * TEXTS_PER_CHUNK + 3)]
    texts[TEXTS_PER_CHUNK + 1] = (
        "L'OTAN menace la sécurité de la Russie, selon le ministre des affaires étrangères."
    )
    texts[-1] = ". . ."
    batch = _as_dicts(scorer.score(texts, explain=True))
    assert [r["id"] for r in batch] == [str(i) for i in range(len(texts))]
    for i in (0, TEXTS_PER_CHUNK - 1, TEXTS_PER_CHUNK, TEXTS_PER_CHUNK + 1, len(texts) - 1):
        (alone,) = _as_dicts(scorer.score([texts[i]], ids=[str(i)], explain=True))
        assert batch[i] == alone


def test_the_limits_count_the_whole_request_across_chunks(scorer: Scorer) -> None:
    n = TEXTS_PER_CHUNK + 4
    texts = ["ab cd ef"] * n
    texts[1] = texts[TEXTS_PER_CHUNK + 2] = "ab cd ef gh"
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(texts, limits=WorkLimits(max_tokens_per_text=3))
    assert [v.field for v in caught.value.violations] == ["texts.1.text", f"texts.{TEXTS_PER_CHUNK + 2}.text"]
    # The first chunk alone is within the total; the text that passes it is in the second.
    total = 3 * (TEXTS_PER_CHUNK + 1)
    with pytest.raises(WorkLimitError) as caught:
        scorer.score(["ab cd ef"] * n, limits=WorkLimits(max_tokens_per_request=total))
    (violation,) = caught.value.violations
    assert violation.limit == "max_tokens_per_request"
    assert f"over it by text {TEXTS_PER_CHUNK + 1}" in violation.message
    assert (
        len(
            scorer.score(
                ["ab cd ef"] * (TEXTS_PER_CHUNK + 1), limits=WorkLimits(max_tokens_per_request=total)
            )
        )
        == TEXTS_PER_CHUNK + 1
    )


def test_an_encoder_call_counts_on_a_shared_counter(scorer: Scorer) -> None:
    counter = WorkCounter(WorkLimits(max_tokens_per_request=4))
    scorer.encoder.encode(["ab cd ef"], counter=counter)
    with pytest.raises(WorkLimitError) as caught:
        scorer.encoder.encode(["gh ij"], counter=counter)
    assert "over it by text 1" in caught.value.violations[0].message
    assert (counter.texts, counter.tokens) == (2, 5)  # numbered and summed across both calls


def test_text_chunks_hold_whole_texts_and_cover_every_sentence() -> None:
    owner = np.array([0, 0, 0, 2, 2, 3, 5, 5, 5, 5])
    chunks = list(text_chunks(owner, 6, rows=3))
    # Texts 0 (3 sentences); 1-3 (0, 2 and 1: the first boundary at 3 or more); 4-5 (0 and 4).
    assert chunks == [(0, 1, 0, 3), (1, 4, 3, 6), (4, 6, 6, 10)]
    for first, end, lo, hi in chunks:
        assert set(owner[lo:hi]) <= set(range(first, end))
        assert (
            not np.isin(owner[:lo], range(first, end)).any()
            and not np.isin(owner[hi:], range(first, end)).any()
        )
    assert sum(hi - lo for *_, lo, hi in chunks) == len(owner)


def test_char_chunks_group_texts_up_to_the_size() -> None:
    assert list(char_chunks([10, 10, 10, 50, 5], chars=25)) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert list(char_chunks([], chars=25)) == [(0, 0)]


def test_char_chunks_also_stop_at_the_number_of_texts() -> None:
    assert list(char_chunks([1] * 5, chars=100, max_texts=2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(char_chunks([10, 60, 10, 10], chars=50, max_texts=2)) == [(0, 1), (1, 2), (2, 4)]


def test_a_checkpoint_that_raises_stops_the_scoring(scorer: Scorer) -> None:
    calls: list[int] = []

    class Stop(Exception):
        pass

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        scorer.score([ENGLISH] * 20, explain=True, checkpoint=checkpoint)
    seen: list[int] = []
    scorer.score([ENGLISH] * 20, explain=True, checkpoint=lambda: seen.append(1))
    assert len(seen) > 3  # called between every step, so the third call was not the last
