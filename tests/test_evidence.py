"""Evidence: passage offsets select the right characters in both texts; shared terms explain the cosine."""

from __future__ import annotations

import pytest

from service.domain.encoding import TextEncoder
from service.domain.evidence import Evidence, find_evidence
from service.domain.normalization import normalize
from service.domain.references import Claim, PreparedReference, Reference, prepare_reference
from service.domain.text import split_sentences, tokenize
from service.loaders.runtime import Runtime
from tests.helpers import tiny_encoder_config

BODY = (
    "Officials confirmed that a meteorite hit the market in Managua. "
    "The crater is five metres deep.\n\n"
    "Residents heard a loud boom at night. "
    "Experts from the university examined the rock fragments."
)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """A tiny encoder fitted on the reference body and some other texts."""
    return TextEncoder.fit(
        [BODY, "A shark attacked a surfer at the beach.", "The boom was a hoax, experts said."],
        config=tiny_encoder_config(),
    )


@pytest.fixture(scope="module")
def reference(encoder: TextEncoder) -> PreparedReference:
    """The meteorite reference, prepared with the tiny encoder."""
    claims = (Claim("hit", "A meteorite hit Managua."),)
    return prepare_reference(Reference(id="meteorite", title="Meteorite", body=BODY, claims=claims), encoder)


def evidence_for(encoder: TextEncoder, reference: PreparedReference, texts: list[str]) -> list[Evidence]:
    return find_evidence(encoder, encoder.encode(texts), reference)


def assert_offsets_are_right(text: str, body: str, evidence: Evidence) -> None:
    """Each match names a whole sentence of ``text`` and a passage of ``body``, by character offsets."""
    normalized = normalize(text)
    sentences = {normalized.source_span(s.start, s.end): s.text for s in split_sentences(normalized.text)}
    for match in evidence.passages:
        assert (match.text_start, match.text_end) in sentences
        # Offsets index the text as sent; normalising that passage gives the sentence read.
        assert (
            normalize(text[match.text_start : match.text_end]).text
            == sentences[(match.text_start, match.text_end)]
        )
        assert body[match.reference_start : match.reference_end] == match.reference_passage
        assert 0 < match.similarity <= 1


def test_a_copied_sentence_points_at_its_passage_in_the_body(
    encoder: TextEncoder, reference: PreparedReference
) -> None:
    text = "Something else first. Residents heard a loud boom at night. And a shark at the beach."
    (evidence,) = evidence_for(encoder, reference, [text])
    assert_offsets_are_right(text, BODY, evidence)
    best = evidence.passages[0]
    assert text[best.text_start : best.text_end] == "Residents heard a loud boom at night."
    assert best.reference_passage == "Residents heard a loud boom at night."
    assert BODY.index("Residents heard") == best.reference_start
    assert best.similarity == pytest.approx(1.0)


def test_passages_are_ranked_limited_and_only_positive(
    encoder: TextEncoder, reference: PreparedReference
) -> None:
    text = (
        "The crater in Managua is deep. A meteorite hit the market. Experts examined fragments. "
        "Residents heard a boom. Nothing here matches zzz."
    )
    (evidence,) = evidence_for(encoder, reference, [text])
    assert len(evidence.passages) == 3
    similarities = [m.similarity for m in evidence.passages]
    assert similarities == sorted(similarities, reverse=True)
    assert_offsets_are_right(text, BODY, evidence)
    assert all(m.text_start != text.index("Nothing") for m in evidence.passages)


def test_offsets_are_code_points_and_survive_invisible_characters(
    encoder: TextEncoder, reference: PreparedReference
) -> None:
    text = "🙂 Émigrés wrote:\u200b\n\nThe crater is\u00ad five metres deep. 🙂 Residents heard a loud boom."
    (evidence,) = evidence_for(encoder, reference, [text])
    assert evidence.passages
    assert_offsets_are_right(text, BODY, evidence)
    texts = {text[m.text_start : m.text_end] for m in evidence.passages}
    assert "The crater is\u00ad five metres deep." in texts


def test_every_text_of_a_batch_gets_its_own_evidence(
    encoder: TextEncoder, reference: PreparedReference
) -> None:
    texts = [
        "The crater is five metres deep.",
        "",
        "Sharks and surfers.",
        "A meteorite hit the market in Managua.",
    ]
    evidences = evidence_for(encoder, reference, texts)
    assert len(evidences) == 4
    for text, evidence in zip(texts, evidences, strict=True):
        assert_offsets_are_right(text, BODY, evidence)
    assert evidences[0].passages[0].reference_passage == "The crater is five metres deep."
    assert evidences[1] == Evidence((), ())
    assert evidences[3].passages[0].reference_passage.startswith("Officials confirmed that a meteorite")


def test_shared_terms_are_content_words_of_both_texts_weighted_by_their_cosine_share(
    encoder: TextEncoder, reference: PreparedReference
) -> None:
    text = "The meteorite crater in Managua: the experts and the residents."
    (evidence,) = evidence_for(encoder, reference, [text])
    terms = [t.term for t in evidence.shared_terms]
    assert set(terms) == {"meteorite", "crater", "managua", "experts", "residents"}
    assert set(terms) <= set(tokenize(text)) & set(tokenize(BODY))
    weights = [t.weight for t in evidence.shared_terms]
    assert weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)


def test_shared_terms_are_limited(encoder: TextEncoder, reference: PreparedReference) -> None:
    (evidence,) = find_evidence(encoder, encoder.encode([BODY]), reference, max_passages=1, max_terms=2)
    assert len(evidence.shared_terms) == 2
    assert len(evidence.passages) == 1


def test_evidence_against_the_shipped_reference(runtime: Runtime) -> None:
    scorer = runtime.scorer
    body = scorer.reference().reference.body
    text = (
        "Some say otherwise. As a result, Russia increasingly views NATO expansion as a threat to its "
        "security. Cooking pasta is fun."
    )
    (result,) = scorer.score([text], explain=True)
    assert result.evidence is not None
    assert_offsets_are_right(text, body, result.evidence)
    best = result.evidence.passages[0]
    assert (
        best.reference_passage
        == "As a result, Russia increasingly views NATO expansion as a threat to its security."
    )
    assert best.similarity == pytest.approx(1.0)
    assert {"nato", "expansion"} <= {t.term for t in result.evidence.shared_terms}
